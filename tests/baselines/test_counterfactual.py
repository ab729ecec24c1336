"""Counterfactual baselines on analytic stand-ins (the shipped models are tested separately)."""

from __future__ import annotations

import logging

import pytest
import torch

from medattr import IntegratedGradients
from medattr.baselines import BaselineContext
from medattr.baselines.counterfactual import (
    VAEGuidedBaseline,
    VAEGuidedResidualBaseline,
    VAEReconstructionBaseline,
)
from medattr.errors import InputError


class IdentityVAE:
    """Latent = the image itself; decode optionally blurs (a stand-in for VAE blur)."""

    def __init__(self, shape: tuple[int, ...], blur: float = 0.0) -> None:
        self.shape, self.blur = shape, blur

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flatten(1), torch.zeros_like(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        img = z.view(-1, *self.shape)
        return img * (1 - self.blur) + img.mean(dim=(2, 3, 4), keepdim=True) * self.blur


class MeanIntensityClassifier(torch.nn.Module):
    """Lesion logit grows with the mean intensity: logit = 20 (mean - 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 20.0 * (x.mean(dim=(1, 2, 3, 4)) - 0.5)
        return torch.stack([-s, s], dim=1)


@pytest.fixture
def lesion() -> torch.Tensor:
    x = torch.full((2, 1, 6, 6, 6), 0.47)
    x[:, :, 1:4, 1:4, 1:4] = 1.0  # a bright "lesion" raises the mean above 0.5 (p ~ 0.67)
    return x


def _ctx() -> BaselineContext:
    return BaselineContext(forward_func=MeanIntensityClassifier())


def test_reconstruction_reports_probabilities_and_distance(lesion: torch.Tensor) -> None:
    res = VAEReconstructionBaseline(IdentityVAE((1, 6, 6, 6), blur=0.5)).generate(lesion, _ctx())
    expected = lesion * 0.5 + lesion.mean(dim=(2, 3, 4), keepdim=True) * 0.5
    torch.testing.assert_close(res.baselines, expected)
    assert len(res.info["p_disease_input"]) == 2 and res.info["p_disease_input"][0] > 0.5
    assert res.info["distance_to_input"]["mean_abs"][0] > 0
    # blurring keeps the mean: still diseased, and said so
    assert res.info["reached_healthy"] == [False, False]


def test_guided_reaches_healthy_with_the_least_change(lesion: torch.Tensor) -> None:
    base = VAEGuidedBaseline(IdentityVAE((1, 6, 6, 6)), threshold=0.2, max_steps=300, lr=0.01)
    res = base.generate(lesion, _ctx())
    p = torch.softmax(MeanIntensityClassifier()(res.baselines), 1)[:, 1]
    assert torch.all(p <= 0.2)
    assert res.info["reached_healthy"] == [True, True]
    assert all(0 < s <= 300 for s in res.info["steps"])
    # it stopped at the first healthy step: just across the threshold, not far beyond it
    assert torch.all(p > 0.05)
    assert float((res.baselines - lesion).abs().max()) < 0.5


def test_guided_residual_difference_carries_no_reconstruction_blur(lesion: torch.Tensor) -> None:
    # the classifier's gradient is uniform, so the latent moves uniformly: with residual
    # correction x - x' = D(mu) - D(z_cf) is spatially constant; without it, x - x' also holds the
    # decoder's blur error x - D(x), which has the lesion's shape
    vae = IdentityVAE((1, 6, 6, 6), blur=0.3)
    kw = {"threshold": 0.2, "max_steps": 300, "lr": 0.01}
    residual = VAEGuidedResidualBaseline(vae, **kw).generate(lesion, _ctx())
    plain = VAEGuidedBaseline(vae, **kw).generate(lesion, _ctx())
    assert residual.info["reached_healthy"] == [True, True]
    assert plain.info["reached_healthy"] == [True, True]
    d_res = (lesion - residual.baselines).flatten(1)
    d_plain = (lesion - plain.baselines).flatten(1)
    assert float(d_res.std(1).max()) < 1e-5
    assert float(d_plain.std(1).min()) > 0.05


def test_failure_to_reach_healthy_is_flagged(
    lesion: torch.Tensor, caplog: pytest.LogCaptureFixture
) -> None:
    base = VAEGuidedBaseline(IdentityVAE((1, 6, 6, 6)), threshold=0.2, max_steps=0)
    with caplog.at_level(logging.WARNING, logger="medattr.baselines"):
        res = base.generate(lesion, _ctx())
    assert res.info["reached_healthy"] == [False, False]
    assert "still calls 2 of 2" in caplog.text


def test_guided_baseline_inside_an_attribution_method(lesion: torch.Tensor) -> None:
    model = MeanIntensityClassifier()
    base = VAEGuidedBaseline(IdentityVAE((1, 6, 6, 6)), threshold=0.2, max_steps=300, lr=0.01)
    exp = IntegratedGradients(model).explain(lesion, base, target=1, n_steps=16)
    assert exp.extras["baseline"]["reached_healthy"] == [True, True]
    assert torch.all(exp.f_baseline < exp.f_input)
    assert exp.convergence_delta.abs().max() < 1e-3


def test_bad_settings_and_inputs(lesion: torch.Tensor) -> None:
    vae = IdentityVAE((1, 6, 6, 6))
    with pytest.raises(InputError, match="needs the classifier"):
        VAEGuidedBaseline(vae).generate(lesion)
    with pytest.raises(InputError, match="threshold"):
        VAEReconstructionBaseline(vae, threshold=1.5)
    with pytest.raises(InputError, match="encode"):
        VAEReconstructionBaseline(object())

    class Spec:
        spatial_size = (8, 8, 8)

    class GridVAE(IdentityVAE):
        spec = Spec()

    with pytest.raises(InputError, match="grid"):
        VAEReconstructionBaseline(GridVAE((1, 6, 6, 6))).generate(lesion, _ctx())
