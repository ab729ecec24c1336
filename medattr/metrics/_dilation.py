"""Exact Euclidean (anisotropic) dilation of a mask, in torch, on any device.

The squared distance to the nearest mask voxel separates over the axes,

    d²(p) = min_q Σ_i s_i² (p_i − q_i)² + F(q),   F = 0 inside the mask, +inf outside,

so it is computed as one 1D min-plus pass per axis. Only offsets with ``|p_i − q_i| s_i ≤ r`` can
reach a distance ``≤ r``, so each pass looks ``floor(r / s_i)`` voxels either way and the result
is exact for every voxel within ``r`` of the mask (``inf`` elsewhere). Cost: ``Σ_i 2 floor(r/s_i)``
elementwise passes over the volume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__: list[str] = []


def dilate(mask: Tensor, radius: float, spacing: Sequence[float]) -> Tensor:
    """Voxels within Euclidean distance ``radius`` of ``mask`` (boolean, same shape).

    ``mask`` is ``(..., *spatial)`` with ``len(spacing)`` trailing spatial axes; distances are
    in the units of ``spacing`` (voxel centre to voxel centre).
    """
    if radius <= 0 or not bool(mask.any()):
        return mask
    dtype = torch.float32 if mask.device.type == "mps" else torch.float64
    d2 = torch.where(mask, 0.0, math.inf).to(dtype)
    for axis_from_end, s in enumerate(reversed(spacing)):
        axis = mask.dim() - 1 - axis_from_end
        reach = min(math.floor(radius / s * (1 + 1e-9)), mask.shape[axis] - 1)
        if reach <= 0:
            continue
        length = mask.shape[axis]
        pad = [0, 0] * (mask.dim() - axis - 1) + [reach, reach]
        padded = torch.nn.functional.pad(d2, pad, value=math.inf)
        best = d2
        for k in range(1, reach + 1):
            cost = (k * s) ** 2
            ahead = padded.narrow(axis, reach + k, length)
            behind = padded.narrow(axis, reach - k, length)
            best = torch.minimum(best, torch.minimum(ahead, behind) + cost)
        d2 = best
    return d2 <= radius**2 * (1 + 1e-9)


def count_within(points: Tensor, mask: Tensor, radius: float, spacing: Sequence[float]) -> Tensor:
    """How many ``points`` lie within ``radius`` of ``mask`` (both boolean, same shape).

    Only the box around the points, grown by the reach on each axis, can matter, so the mask is
    cropped to it before dilating: a single maximum costs a few thousand voxels, not the volume.
    """
    n = len(spacing)
    coords = torch.nonzero(points.reshape(-1, *points.shape[-n:]).any(0))
    if coords.numel() == 0:
        return points.sum()
    lo = coords.amin(0).tolist()
    hi = coords.amax(0).tolist()
    index: list[slice] = [slice(None)] * (points.dim() - n)
    for axis, s in enumerate(spacing):
        reach = math.floor(radius / s * (1 + 1e-9))
        size = points.shape[points.dim() - n + axis]
        index.append(slice(max(0, lo[axis] - reach), min(size, hi[axis] + reach + 1)))
    crop = tuple(index)
    grown = dilate(mask[crop], radius, spacing)
    return (points[crop] & grown).sum()
