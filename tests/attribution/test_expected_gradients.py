from __future__ import annotations

import pytest
import torch

from medattr import ExpectedGradients
from tests.conftest import LinearModel, SmallConvNet


def test_linear_model_is_weight_times_input_minus_drawn_references(
    volume_batch: torch.Tensor,
) -> None:
    model = LinearModel((1, 8, 8, 8))
    refs = torch.rand(6, 1, 8, 8, 8)
    exp = ExpectedGradients(model).explain(volume_batch, refs, target=1, n_samples=10, seed=4)
    draws = torch.tensor(exp.extras["reference_draws"])
    expected = torch.stack(
        [
            model.weight[1].view(1, 8, 8, 8) * (volume_batch[i] - refs[draws[i]].mean(0))
            for i in range(2)
        ]
    ).detach()
    torch.testing.assert_close(exp.attributions, expected, rtol=1e-4, atol=1e-6)
    assert (
        exp.convergence_delta.abs().max() < 1e-4
    )  # exact for linear models against the drawn refs


def test_reproducible_and_batched_equals_single(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    refs = torch.rand(4, 1, 8, 8, 8)
    eg = ExpectedGradients(relu_net)
    a = eg.attribute(volume_batch, refs, target=0, n_samples=8, seed=1, internal_batch_size=5)
    b = eg.attribute(volume_batch, refs, target=0, n_samples=8, seed=1, internal_batch_size="auto")
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    c = eg.attribute(volume_batch, refs, target=0, n_samples=8, seed=2)
    assert not torch.allclose(a, c)


def test_completeness_holds_in_expectation(volume_batch: torch.Tensor) -> None:
    net = SmallConvNet("sigmoid", seed=2).eval()
    refs = torch.rand(3, 1, 8, 8, 8)
    eg = ExpectedGradients(net)
    few = torch.stack(
        [
            eg.explain(volume_batch, refs, target=1, n_samples=4, seed=s).convergence_delta.abs()
            for s in range(6)
        ]
    ).mean()
    many = torch.stack(
        [
            eg.explain(volume_batch, refs, target=1, n_samples=128, seed=s).convergence_delta.abs()
            for s in range(6)
        ]
    ).mean()
    assert many < few


def test_rejects_bad_references(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="reference baselines must have shape"):
        ExpectedGradients(relu_net).attribute(volume_batch, torch.rand(3, 1, 4, 4, 4), target=0)
    with pytest.raises(TypeError, match="reference baselines"):
        ExpectedGradients(relu_net).attribute(volume_batch, 0.0, target=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_samples"):
        ExpectedGradients(relu_net).attribute(
            volume_batch, torch.rand(3, 1, 8, 8, 8), target=0, n_samples=0
        )
