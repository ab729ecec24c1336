"""Completeness error on hand-made sums and against the attribution methods' own delta."""

from __future__ import annotations

import math

import pytest
import torch

from medattr import IntegratedGradients
from medattr.errors import InputError
from medattr.metrics import CompletenessError, completeness_error, target_scores


def test_hand_made_sums(device: torch.device) -> None:
    phi = torch.zeros(3, 2, 2, 2, 2, device=device)
    phi[0, 0, 0, 0, 0] = 1.5
    phi[0, 1, 1, 1, 1] = 0.5  # sums over channels too: 2.0
    phi[1] = -0.25  # 16 elements: −4.0
    f_x = torch.tensor([3.0, 1.0, 2.0])
    f_b = torch.tensor([1.0, 2.0, 2.0])
    err = completeness_error(phi, f_x, f_b)
    assert err.device.type == device.type and err.dtype == torch.float64
    # |2 − 2| = 0, |−4 − (−1)| = 3, |0 − 0| = 0
    assert err.tolist() == [0.0, 3.0, 0.0]
    rel = completeness_error(phi, f_x, f_b, relative=True)
    assert rel[0].item() == 0.0 and rel[1].item() == 3.0 and math.isnan(rel[2].item())
    phi[2, 0, 0, 0, 0] = 1.0
    assert math.isinf(completeness_error(phi, f_x, f_b, relative=True)[2].item())


def test_numbers_and_sequences_broadcast() -> None:
    phi = torch.ones(2, 1, 2, 2, 2)
    assert completeness_error(phi, 10.0, 1.0).tolist() == [1.0, 1.0]
    assert completeness_error(phi, [8.0, 9.0], torch.tensor([[0.0], [0.0]])).tolist() == [0.0, 1.0]


def test_matches_integrated_gradients_delta() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(1, 2, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(2 * 64, 3),
    ).eval()
    x = torch.rand(2, 1, 4, 4, 4)
    exp = IntegratedGradients(model).explain(
        x, baselines=0.0, target=1, n_steps=8, internal_batch_size=16
    )
    err = completeness_error(exp.attributions, exp.f_input, exp.f_baseline)
    assert torch.allclose(err, exp.convergence_delta.abs(), atol=1e-6)
    # f(x) and f(x') recomputed independently
    f_x = target_scores(model, x, target=1)
    f_b = target_scores(model, torch.zeros_like(x), target=1)
    assert torch.allclose(f_x, exp.f_input, atol=1e-6) and torch.allclose(
        f_b, exp.f_baseline, atol=1e-6
    )
    rel = CompletenessError(relative=True)(exp.attributions, f_x, f_b)
    assert torch.allclose(rel, err / (f_x - f_b).abs(), atol=1e-6)


def test_linear_model_is_complete() -> None:
    w = torch.randn(1, 1, 3, 3, 3)

    def model(v: torch.Tensor) -> torch.Tensor:
        return (v * w).flatten(1).sum(1)

    x = torch.rand(4, 1, 3, 3, 3)
    phi = w * x  # exact IG against a zero baseline
    assert bool((completeness_error(phi, target_scores(model, x), 0.0) < 1e-5).all())


def test_errors() -> None:
    phi = torch.ones(2, 1, 2, 2, 2)
    with pytest.raises(InputError, match=r"f_input must be a number or have shape \(2,\)"):
        completeness_error(phi, torch.ones(3), 0.0)
    with pytest.raises(InputError, match="f_baseline"):
        completeness_error(phi, 1.0, torch.ones(2, 2))
    with pytest.raises(InputError, match="NaN"):
        completeness_error(phi * math.nan, 1.0, 0.0)
    with pytest.raises(TypeError, match=r"attributions must be a torch\.Tensor"):
        completeness_error([1.0, 2.0], 1.0, 0.0)  # type: ignore[arg-type]
