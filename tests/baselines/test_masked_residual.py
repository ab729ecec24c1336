"""The residual VAE counterfactual with the residual applied only outside the anomaly mask."""

from __future__ import annotations

import pytest
import torch

from medattr.baselines import BaselineContext
from medattr.baselines.counterfactual import (
    InpaintCounterfactualBaseline,
    VAEGuidedMaskedResidualBaseline,
    VAEGuidedResidualBaseline,
)
from medattr.baselines.counterfactual.inpaint import feather_mask
from medattr.errors import InputError
from tests.baselines._standins import SHAPE, SP, FlatHealthy, LesionLogit, healthy


class FlatVAE:
    """A healthy-only stand-in VAE: latent = one intensity level; decodes a flat volume."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.mean(dim=(1, 2, 3, 4))[:, None]
        return m, torch.zeros_like(m)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, :1, None, None, None].expand(-1, 1, *SHAPE) + 0.0 * z.sum()


@pytest.fixture(scope="module")
def inpainter() -> FlatHealthy:
    return FlatHealthy()


def _study() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    twin = healthy(7)
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in SHAPE], indexing="ij"))
    ball = ((idx - torch.tensor([12, 10, 13]).view(3, 1, 1, 1)) ** 2).sum(0) <= 9
    return twin + 0.3 * ball[None, None], twin, ball[None, None]


def test_the_residual_no_longer_puts_the_lesion_back(inpainter: FlatHealthy) -> None:
    x, twin, lesion = _study()
    ctx = BaselineContext(spacing=SP, forward_func=LesionLogit())
    kw = {"threshold": 0.2, "max_steps": 20, "lr": 0.01}
    masked = VAEGuidedMaskedResidualBaseline(FlatVAE(), inpainter, **kw).generate(x, ctx)
    plain = VAEGuidedResidualBaseline(FlatVAE(), **kw).generate(x, ctx)
    err = lambda b: float((b - twin).abs()[lesion].mean())  # noqa: E731
    assert err(masked.baselines) < 0.3 * err(plain.baselines)
    assert masked.info["reached_healthy"] == [True] and masked.info["steps"] == [0]
    # at step 0 the baseline is the input outside the feathered mask (residual + D(mu) = x)
    found = InpaintCounterfactualBaseline(inpainter).masks(x, SP)[0].mask
    mask = torch.from_numpy(found)[None, None]
    assert bool(mask[lesion].all()) and masked.info["mask_voxels"][0] == int(mask.sum())
    _, support = feather_mask(mask, 4.5, SP)
    torch.testing.assert_close(masked.baselines[~support], x[~support], atol=1e-6, rtol=0)


def test_an_empty_mask_leaves_a_healthy_input_as_it_is(inpainter: FlatHealthy) -> None:
    x = healthy(9)
    ctx = BaselineContext(spacing=SP, forward_func=LesionLogit())
    res = VAEGuidedMaskedResidualBaseline(FlatVAE(), inpainter, max_steps=5).generate(x, ctx)
    assert res.info["mask_empty"] == [True] and res.info["steps"] == [0]
    torch.testing.assert_close(res.baselines, x, atol=1e-6, rtol=0)


def test_it_needs_the_classifier(inpainter: FlatHealthy) -> None:
    with pytest.raises(InputError, match="needs the classifier"):
        VAEGuidedMaskedResidualBaseline(FlatVAE(), inpainter).generate(healthy(0))
