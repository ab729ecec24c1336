from __future__ import annotations

import math

import pytest
import torch

from medattr import IntegratedGradients, SplitIntegratedGradients
from tests.conftest import SmallConvNet


class Saturating(torch.nn.Module):
    """f(x) = sigmoid(k (<w, x> - c)): saturates along the path from 0 to x."""

    def __init__(self, n: int, k: float = 12.0, c: float = 0.3) -> None:
        super().__init__()
        self.w = torch.full((n,), 1.0 / n)
        self.k, self.c = k, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.k * (x.flatten(1) @ self.w - self.c))[:, None]


def test_left_plus_right_is_ig_and_left_is_complete_to_alpha_star() -> None:
    x = torch.ones(1, 1, 4, 4, 4)
    model = Saturating(64)
    ig = IntegratedGradients(model).explain(x, 0.0, target=0, n_steps=200, method="riemann_middle")
    sig = SplitIntegratedGradients(model).explain(
        x, 0.0, target=0, n_steps=200, method="riemann_middle"
    )
    split = sig.extras["split"]
    torch.testing.assert_close(
        sig.attributions + split.right, ig.attributions, rtol=1e-5, atol=1e-8
    )
    # sum(left) ~ f(gamma(alpha*)) - f(x')
    left_sum = sig.attributions.sum().item()
    assert left_sum == pytest.approx(float(split.f_alpha_star[0] - sig.f_baseline[0]), abs=5e-3)
    assert abs(float(sig.convergence_delta[0])) < 5e-3


def test_alpha_star_matches_the_analytic_crossing() -> None:
    # along the path 0 -> 1: f(a) = sigmoid(k (a - c)); where does it cover 90 % of f(1) - f(0)?
    k, c, r = 12.0, 0.3, 0.9
    model = Saturating(8, k, c)
    x = torch.ones(1, 8)
    f0, f1 = 1 / (1 + math.exp(k * c)), 1 / (1 + math.exp(-k * (1 - c)))
    tau = f0 + r * (f1 - f0)
    a_exact = c + math.log(tau / (1 - tau)) / k
    sig = SplitIntegratedGradients(model).explain(
        x, 0.0, target=0, n_steps=101, method="riemann_trapezoid", ratio=r
    )
    step = 1 / 100
    a_star = float(sig.extras["split"].alpha_star[0])
    assert a_exact <= a_star < a_exact + step + 1e-9
    assert bool(sig.extras["split"].saturated[0])
    assert sig.extras["split"].path_outputs.shape == (1, 101)


def test_ratio_one_or_flat_path_keeps_everything_left(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    sig = SplitIntegratedGradients(relu_net).explain(
        volume_batch, volume_batch, target=0, n_steps=8
    )
    assert torch.all(sig.attributions == 0)  # baseline == input: nothing to attribute
    assert sig.extras["alpha_star"] == [1.0, 1.0]


def test_parts_and_batch(volume_batch: torch.Tensor) -> None:
    net = SmallConvNet("sigmoid", seed=3).eval()
    sig = SplitIntegratedGradients(net)
    left = sig.attribute(volume_batch, target=1, n_steps=16)
    right = sig.attribute(volume_batch, target=1, n_steps=16, part="right")
    full, delta = sig.attribute(
        volume_batch, target=1, n_steps=16, part="full", return_convergence_delta=True
    )
    ig, ig_delta = IntegratedGradients(net).attribute(
        volume_batch, target=1, n_steps=16, return_convergence_delta=True
    )
    torch.testing.assert_close(left + right, full)
    torch.testing.assert_close(full, ig, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(delta, ig_delta, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="ratio"):
        sig.attribute(volume_batch, target=1, ratio=1.5)
    with pytest.raises(ValueError, match="part"):
        sig.attribute(volume_batch, target=1, part="middle")
