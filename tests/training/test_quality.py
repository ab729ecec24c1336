"""In-mask L1 / SSIM / PSNR."""

from __future__ import annotations

import math

import pytest
import torch

from medattr.errors import InputError
from medattr.training.quality import masked_image_quality, ssim_map


def _vol(seed: int) -> torch.Tensor:
    return torch.rand(2, 1, 12, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_identical_volumes_score_perfectly() -> None:
    x = _vol(0)
    q = masked_image_quality(x, x, torch.ones_like(x))
    assert q["l1"] == [0.0, 0.0] and q["psnr"] == [math.inf, math.inf]
    assert q["ssim"] == pytest.approx([1.0, 1.0])


def test_errors_only_count_inside_the_mask() -> None:
    x = _vol(0)
    y = x.clone()
    m = torch.zeros_like(x)
    m[..., :6, :, :] = 1
    y[..., 6:, :, :] = 0.0  # wrong only outside the mask
    y[0, ..., :6, :, :] += 0.1  # volume 0: +0.1 inside
    q = masked_image_quality(y, x, m)
    assert q["l1"] == pytest.approx([0.1, 0.0])
    assert q["psnr"][0] == pytest.approx(20.0)
    assert q["ssim"][0] < 1.0


def test_ssim_drops_with_noise() -> None:
    x = torch.linspace(0, 1, 16**3).view(1, 1, 16, 16, 16)
    noisy = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert float(ssim_map(x, noisy).mean()) < float(ssim_map(x, x + 0.01).mean()) < 1.0001


def test_shapes_and_empty_masks_are_refused() -> None:
    x = _vol(0)
    with pytest.raises(InputError, match="one shape"):
        masked_image_quality(x, x[:1], torch.ones_like(x))
    with pytest.raises(InputError, match="non-empty"):
        masked_image_quality(x, x, torch.zeros_like(x))
