"""Shape conventions and input checks shared by the metrics (private to this subpackage).

Every metric works on a batch of volumes with ``spatial_dims`` spatial axes (3 by default):

- attributions ``(B, C, *spatial)`` or ``(B, *spatial)`` (the latter is read as one channel);
- masks ``(B, *spatial)``, ``(B, 1, *spatial)`` or ``(B, C, *spatial)``, boolean or 0/1.

The number of spatial axes is what tells the two layouts apart, so a 2D batch needs
``spatial_dims=2``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import Any

import torch
from torch import Tensor

from medattr.errors import InputError

__all__: list[str] = []


class Relevance(str, Enum):
    """How signed attributions are turned into relevance before a metric reads them.

    ``"positive"``: the positive part ``max(φ, 0)`` (negative evidence counts as none);
    ``"absolute"``: ``|φ|`` (evidence of either sign counts); ``"signed"``: ``φ`` unchanged.
    """

    POSITIVE = "positive"
    ABSOLUTE = "absolute"
    SIGNED = "signed"

    def apply(self, scores: Tensor) -> Tensor:
        if self is Relevance.POSITIVE:
            return scores.clamp_min(0)
        if self is Relevance.ABSOLUTE:
            return scores.abs()
        return scores


class ChannelReduction(str, Enum):
    """How a multi-channel attribution becomes per-voxel scores.

    ``"sum"``: add the channels (a voxel's relevance is the sum over its channels, which keeps
    completeness); ``"none"``: every (channel, voxel) element is scored on its own, and a
    single-channel mask applies to every channel.
    """

    SUM = "sum"
    NONE = "none"


class EmptyMask(str, Enum):
    """What a metric does with a sample whose mask is empty (or, for ROC AUC, full).

    ``"raise"``: an :class:`~medattr.errors.InputError`; ``"nan"``: that sample's value is NaN
    (the other samples are computed normally).
    """

    RAISE = "raise"
    NAN = "nan"


def option(enum: type[Enum], value: Any, name: str) -> Any:
    """Normalise a string-or-Enum option, with an error that lists the accepted values."""
    try:
        return enum(value)
    except ValueError:
        accepted = ", ".join(repr(m.value) for m in enum)
        raise InputError(f"{name} must be one of {accepted}; got {value!r}") from None


def plain_tensor(value: Any, name: str) -> Tensor:
    """``value`` as a plain tensor (a MONAI ``MetaTensor`` loses its metadata)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if hasattr(value, "as_tensor"):
        value = value.as_tensor()
    return value


def check_spatial_dims(spatial_dims: int) -> int:
    if isinstance(spatial_dims, bool) or not isinstance(spatial_dims, int) or spatial_dims < 1:
        raise InputError(f"spatial_dims must be a positive int, got {spatial_dims!r}")
    return spatial_dims


def as_channels_first(t: Tensor, name: str, spatial_dims: int) -> Tensor:
    """``(B, *spatial)`` or ``(B, C, *spatial)`` as ``(B, C, *spatial)``."""
    if t.dim() == spatial_dims + 1:
        return t.unsqueeze(1)
    if t.dim() == spatial_dims + 2:
        return t
    raise InputError(
        f"{name} must have shape (B, *spatial) or (B, C, *spatial) with {spatial_dims} spatial "
        f"axes, i.e. {spatial_dims + 1} or {spatial_dims + 2} dimensions; got shape "
        f"{tuple(t.shape)} ({t.dim()} dimensions). Pass spatial_dims for non-3D data."
    )


def check_finite(t: Tensor, name: str) -> None:
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or infinite values")


def as_bool_mask(mask: Tensor, name: str = "mask") -> Tensor:
    """A boolean mask; numeric masks must hold only 0 and 1 (soft masks are refused)."""
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise InputError(f"{name} must be boolean or 0/1, got a complex tensor")
    if mask.numel() and not bool(((mask == 0) | (mask == 1)).all()):
        lo, hi = float(mask.min()), float(mask.max())
        raise InputError(
            f"{name} must be binary (bool, or numbers that are all 0 or 1); got values in "
            f"[{lo:g}, {hi:g}]. Threshold a soft mask first, e.g. mask > 0.5."
        )
    return mask != 0


def reduce_channels(attr: Tensor, reduction: ChannelReduction) -> Tensor:
    """``(B, C, *spatial)`` to ``(B, 1, *spatial)`` (sum) or unchanged (none)."""
    if reduction is ChannelReduction.SUM and attr.shape[1] != 1:
        return attr.sum(dim=1, keepdim=True)
    return attr


def scores_and_mask(
    attributions: Tensor,
    mask: Tensor,
    spatial_dims: int,
    channel_reduction: ChannelReduction,
) -> tuple[Tensor, Tensor]:
    """Validate and pair an attribution batch with a mask batch.

    Returns
    -------
    scores, mask
        ``(B, G, *spatial)`` each (``G`` = 1 after a channel sum, else the number of
        channels), scores in floating point, mask boolean and expanded to the scores' shape.
    """
    spatial_dims = check_spatial_dims(spatial_dims)
    attr = as_channels_first(
        plain_tensor(attributions, "attributions"), "attributions", spatial_dims
    )
    m = as_channels_first(plain_tensor(mask, "mask"), "mask", spatial_dims)
    if not attr.is_floating_point():
        attr = attr.double()
    elif attr.dtype in (torch.float16, torch.bfloat16):
        attr = attr.float()  # channel sums and sorting in at least single precision
    if attr.shape[0] != m.shape[0]:
        raise InputError(
            f"attributions and mask must have the same batch size; got {attr.shape[0]} "
            f"(attributions shape {tuple(attr.shape)}) and {m.shape[0]} (mask shape "
            f"{tuple(m.shape)})"
        )
    if attr.shape[2:] != m.shape[2:]:
        raise InputError(
            f"the mask's spatial shape {tuple(m.shape[2:])} does not match the attributions' "
            f"{tuple(attr.shape[2:])} (attributions shape {tuple(attr.shape)}, mask shape "
            f"{tuple(m.shape)})"
        )
    if attr.numel() == 0:
        raise InputError(f"attributions are empty (shape {tuple(attr.shape)})")
    check_finite(attr, "attributions")
    m = as_bool_mask(m, "mask").to(attr.device)
    c_attr, c_mask = attr.shape[1], m.shape[1]
    if c_mask not in (1, c_attr):
        raise InputError(
            f"the mask has {c_mask} channels but the attributions have {c_attr}; give a mask "
            f"of shape (B, *spatial), (B, 1, *spatial) or one channel per attribution channel"
        )
    if channel_reduction is ChannelReduction.SUM:
        if c_mask > 1:
            raise InputError(
                f"a per-channel mask ({c_mask} channels) needs channel_reduction='none'; with "
                f"'sum' the channels are added and one mask per voxel is expected"
            )
        attr = reduce_channels(attr, channel_reduction)
    return attr, m.expand_as(attr)


def empty_rows(count: Tensor, total: int, what: str, policy: EmptyMask, full_too: bool) -> Tensor:
    """Rows of ``count`` (mask voxels per sample) that make the metric undefined.

    Raises under the ``"raise"`` policy; otherwise returns the boolean rows to set to NaN.
    """
    bad = count == 0
    if full_too:
        bad = bad | (count == total)
    if bool(bad.any()) and policy is EmptyMask.RAISE:
        rows = torch.nonzero(bad).flatten().tolist()
        full = " or covers every voxel" if full_too else ""
        raise InputError(
            f"mask is empty{full} for sample(s) {rows[:10]}{' …' if len(rows) > 10 else ''}, so "
            f"the {what} is undefined there; pass empty_mask='nan' to get NaN for such samples"
        )
    return bad


def spacing_tuple(spacing: Sequence[float] | Tensor | None, spatial_dims: int) -> tuple[float, ...]:
    """Voxel size per spatial axis (mm), ones when ``None``."""
    if spacing is None:
        return (1.0,) * spatial_dims
    values = spacing.tolist() if isinstance(spacing, Tensor) else list(spacing)
    if len(values) != spatial_dims:
        raise InputError(
            f"spacing must give one voxel size per spatial axis ({spatial_dims}); got {values!r}"
        )
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise InputError(f"spacing must be positive and finite (mm per voxel); got {values!r}")
    return out


def per_sample(
    value: Tensor | float | Sequence[float], batch: int, name: str, device: torch.device
) -> Tensor:
    """A number or ``(B,)`` sequence as a float64 ``(B,)`` tensor on ``device``."""
    t = torch.as_tensor(value.detach() if isinstance(value, Tensor) else value, dtype=torch.float64)
    t = t.to(device)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise InputError(
            f"{name} must be a number or have shape ({batch},); got shape {tuple(t.shape)}"
        )
    return t
