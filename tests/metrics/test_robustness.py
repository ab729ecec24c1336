"""Max-sensitivity on explanations whose change under noise is known."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from medattr import IntegratedGradients
from medattr.errors import InputError
from medattr.metrics import MaxSensitivity, max_sensitivity


def grad_times_input(w: torch.Tensor):
    """Gradient × input of the linear model Σ w·x: φ(x) = w ⊙ x, so φ(x+δ) − φ(x) = w ⊙ δ."""
    return lambda x: w * x


def test_linear_gradient_times_input_bound_and_typical_value(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, 1, 16, 16, 16, generator=gen).to(device)
    x = (torch.rand(3, 1, 16, 16, 16, generator=gen) + 0.5).to(device)
    r = 0.05
    got = max_sensitivity(grad_times_input(w), x, radius=r, n_samples=8)
    assert got.shape == (3,) and got.dtype == torch.float64 and got.device.type == device.type
    phi_norm = torch.linalg.vector_norm((w * x).flatten(1).double(), dim=1)
    w_norm = torch.linalg.vector_norm(w.double())
    bound = r * w_norm / phi_norm  # ‖w ⊙ δ‖ ≤ r ‖w‖ for ‖δ‖∞ ≤ r
    assert bool((got <= bound).all())
    # with 4096 elements ‖w ⊙ δ‖ concentrates at r ‖w‖ / √3 (E δ_i² = r² / 3)
    typical = bound / math.sqrt(3)
    assert torch.allclose(got, typical, rtol=0.05)


def test_linf_and_unnormalised() -> None:
    w = torch.tensor([1.0, -4.0, 2.0, 0.5]).view(1, 1, 1, 2, 2)
    x = torch.ones(2, 1, 1, 2, 2)
    raw = max_sensitivity(
        grad_times_input(w), x, radius=0.1, n_samples=50, norm="linf", normalize=False
    )
    # max_i |w_i δ_i| ≤ 0.1 · 4, and close to it after 50 draws (|δ| near 0.1 on the −4 weight)
    assert bool((raw <= 0.4 + 1e-7).all()) and bool((raw > 0.3).all())
    rel = max_sensitivity(grad_times_input(w), x, radius=0.1, n_samples=50, norm="linf")
    assert torch.allclose(rel, raw / 4.0)


def test_constant_explanation_and_zero_radius() -> None:
    x = torch.rand(2, 1, 4, 4, 4)
    const = max_sensitivity(lambda v: torch.full_like(v, 3.0), x, radius=0.5)
    assert const.tolist() == [0.0, 0.0]
    zero = max_sensitivity(lambda v: torch.zeros_like(v), x, radius=0.5)
    assert zero.tolist() == [0.0, 0.0]  # stayed zero: no change at all
    still = max_sensitivity(grad_times_input(torch.ones(1)), x, radius=0.0)
    assert still.tolist() == [0.0, 0.0]


def test_zero_explanation_that_changes_is_nan() -> None:
    x = torch.zeros(1, 1, 2, 2, 2)
    out = max_sensitivity(lambda v: v.clone(), x, radius=0.1, n_samples=2)
    assert math.isnan(out.item())
    raw = max_sensitivity(lambda v: v.clone(), x, radius=0.1, n_samples=2, normalize=False)
    assert 0 < raw.item() <= 0.1 * math.sqrt(8)


def test_seeded_and_more_samples_never_lower() -> None:
    w = torch.randn(1, 1, 6, 6, 6, generator=torch.Generator().manual_seed(1))
    x = torch.rand(2, 1, 6, 6, 6)
    fn = grad_times_input(w)
    a = max_sensitivity(fn, x, radius=0.1, n_samples=5, seed=3)
    b = max_sensitivity(fn, x, radius=0.1, n_samples=5, seed=3)
    c = max_sensitivity(fn, x, radius=0.1, n_samples=5, seed=4)
    more = max_sensitivity(fn, x, radius=0.1, n_samples=20, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((more >= a).all())  # the first 5 draws are shared


def test_integrated_gradients_of_linear_model_and_explanation_objects() -> None:
    w = torch.randn(1, 1, 4, 4, 4, generator=torch.Generator().manual_seed(2))

    def model(v: torch.Tensor) -> torch.Tensor:
        return (v * w).flatten(1).sum(1)

    ig = IntegratedGradients(model)
    x = torch.rand(2, 1, 4, 4, 4) + 0.5
    x0 = x.clone()
    via_ig = max_sensitivity(
        lambda v: ig.attribute(v, n_steps=4, internal_batch_size=8), x, radius=0.05, n_samples=3
    )
    via_formula = max_sensitivity(grad_times_input(w), x, radius=0.05, n_samples=3)
    assert torch.allclose(via_ig, via_formula, rtol=1e-4)
    # an object with .attributions (an Explanation) and a precomputed Φ(x)
    wrapped = max_sensitivity(
        lambda v: SimpleNamespace(attributions=w * v),
        x,
        radius=0.05,
        n_samples=3,
        explanation=w * x,
    )
    assert torch.allclose(wrapped, via_formula)
    assert torch.equal(x, x0)


def test_errors_and_class_form() -> None:
    x = torch.rand(2, 1, 3, 3, 3)
    with pytest.raises(InputError, match="radius"):
        max_sensitivity(lambda v: v, x, radius=-0.1)
    with pytest.raises(InputError, match="n_samples"):
        max_sensitivity(lambda v: v, x, n_samples=0)
    with pytest.raises(InputError, match="norm must be one of"):
        max_sensitivity(lambda v: v, x, norm="l1")
    with pytest.raises(InputError, match="batch size 2"):
        max_sensitivity(lambda v: v[0], x)
    calls = iter([x, x[:, :, :2]])
    with pytest.raises(InputError, match="for a perturbed input"):
        max_sensitivity(lambda v: next(calls), x, n_samples=1)
    with pytest.raises(InputError, match="floating point"):
        max_sensitivity(lambda v: v, torch.ones(2, 1, 3, 3, 3, dtype=torch.long))
    metric = MaxSensitivity(radius=0.1, n_samples=3, seed=7)
    fn = grad_times_input(torch.rand(1, 1, 3, 3, 3))
    assert torch.equal(metric(fn, x), max_sensitivity(fn, x, radius=0.1, n_samples=3, seed=7))
