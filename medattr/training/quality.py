"""Image quality inside a region: L1, SSIM and PSNR of an inpainted volume against the truth.

The BraTS healthy-tissue inpainting challenge scores SSIM, PSNR and MSE inside the inpainted
region; these are the same quantities for 3D volumes already in ``[0, data_range]`` units.
SSIM (Wang et al. 2004) uses a 3D Gaussian window (sigma 1.5 voxels, truncated at 3.5 sigma)
on the whole volume and averages the SSIM map over the region's voxels, so that the window
sees the region's surroundings as the inpainter did.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from medattr.errors import InputError

__all__ = ["masked_image_quality", "ssim_map"]


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x: Tensor, k: Tensor) -> Tensor:
    r = (k.numel() - 1) // 2
    out = x
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = r
        pad[2 * (2 - axis) + 1] = r
        out = torch.nn.functional.conv3d(
            torch.nn.functional.pad(out, pad, mode="replicate"), k.view(shape)
        )
    return out


def ssim_map(a: Tensor, b: Tensor, data_range: float = 1.0, sigma: float = 1.5) -> Tensor:
    """Voxel-wise SSIM of two ``(B, 1, D, H, W)`` volumes (Gaussian window, replicate borders)."""
    if a.shape != b.shape or a.dim() != 5 or a.shape[1] != 1:
        raise InputError(
            f"a and b must both be (B, 1, D, H, W); got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    k = _gaussian_kernel(sigma, a.dtype, a.device)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _blur(a, k), _blur(b, k)
    s_aa = _blur(a * a, k) - mu_a**2
    s_bb = _blur(b * b, k) - mu_b**2
    s_ab = _blur(a * b, k) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2)
    )


def masked_image_quality(
    pred: Tensor, target: Tensor, mask: Tensor, data_range: float = 1.0
) -> dict[str, list[float]]:
    """Per-volume L1, SSIM and PSNR (dB) inside ``mask``.

    Parameters
    ----------
    pred, target
        ``(B, 1, D, H, W)`` volumes in ``[0, data_range]`` units.
    mask
        ``(B, 1, D, H, W)``; voxels above 0.5 form the region (each volume needs at least one).
    data_range
        Intensity range for SSIM's constants and PSNR's peak.

    Returns
    -------
    dict
        ``{"l1": [...], "ssim": [...], "psnr": [...]}``, one value per volume.

    Examples
    --------
    >>> x = torch.rand(1, 1, 8, 8, 8)
    >>> m = torch.zeros_like(x); m[..., 2:6, 2:6, 2:6] = 1
    >>> q = masked_image_quality(x, x, m)
    >>> q["l1"], q["ssim"], q["psnr"]
    ([0.0], [1.0], [inf])
    """
    if pred.shape != target.shape or tuple(mask.shape) != tuple(pred.shape):
        raise InputError(
            f"pred, target and mask must have one shape; got {tuple(pred.shape)}, "
            f"{tuple(target.shape)} and {tuple(mask.shape)}"
        )
    m = mask > 0.5
    counts = m.flatten(1).sum(1)
    if bool((counts == 0).any()):
        raise InputError("every volume needs a non-empty mask")
    ssim = ssim_map(pred, target, data_range)
    diff = (pred.double() - target.double()).flatten(1)
    mf = m.flatten(1).double()
    l1 = (diff.abs() * mf).sum(1) / counts
    mse = (diff.pow(2) * mf).sum(1) / counts
    s = (ssim.flatten(1) * mf).sum(1) / counts
    psnr = [float("inf") if v == 0 else 10.0 * math.log10(data_range**2 / v) for v in mse.tolist()]
    return {"l1": l1.tolist(), "ssim": s.tolist(), "psnr": psnr}
