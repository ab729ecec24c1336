"""Localisation against a ground-truth mask: relevance mass and rank accuracy, pointing game.

Shapes (``spatial_dims`` = 3 unless given): attributions ``(B, C, *spatial)`` or
``(B, *spatial)``; mask ``(B, *spatial)``, ``(B, 1, *spatial)`` or ``(B, C, *spatial)``,
boolean or 0/1. With ``channel_reduction="sum"`` (default) the channels are added into one
score per voxel; with ``"none"`` each (channel, voxel) element is scored on its own and a
one-channel mask applies to every channel. Every metric returns a float64 tensor of shape
``(B,)`` on the attributions' device.

An empty mask makes these metrics undefined: ``empty_mask="raise"`` (default) raises an
:class:`~medattr.errors.InputError`, ``empty_mask="nan"`` yields NaN for that sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._dilation import count_within
from medattr.metrics._validation import (
    ChannelReduction,
    EmptyMask,
    Relevance,
    empty_rows,
    option,
    scores_and_mask,
    spacing_tuple,
)

__all__ = [
    "PointingGame",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
]


def _non_negative(relevance: str | Relevance, metric: str) -> Relevance:
    rel = option(Relevance, relevance, "relevance")
    if rel is Relevance.SIGNED:
        raise InputError(
            f"the {metric} needs non-negative relevance; relevance must be 'positive' or "
            f"'absolute', got 'signed'"
        )
    return rel


def relevance_mass_accuracy(
    attributions: Tensor,
    mask: Tensor,
    *,
    relevance: str | Relevance = "positive",
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
    empty_mask: str | EmptyMask = "raise",
) -> Tensor:
    r"""Share of the relevance that lies inside the mask.

    .. math:: \mathrm{mass} = \frac{\sum_{i \in M} R_i}{\sum_i R_i}, \qquad R_i = \max(\phi_i, 0)

    (Arras, Osman & Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81, 2022). 1 means all relevance is in the
    mask; a random map scores about the mask's volume fraction.

    Parameters
    ----------
    attributions
        ``(B, C, *spatial)`` or ``(B, *spatial)``.
    mask
        Ground-truth region, ``(B, *spatial)``, ``(B, 1, *spatial)`` or ``(B, C, *spatial)``.
    relevance
        ``"positive"`` (default): negative attributions count as no relevance, as in the paper;
        ``"absolute"``: ``R_i = |φ_i|``. Applied after the channel reduction.
    channel_reduction
        ``"sum"`` (default) or ``"none"`` (see the module notes).
    spatial_dims
        Number of spatial axes.
    empty_mask
        ``"raise"`` (default) or ``"nan"``.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64; NaN for a sample with no relevance at all (``Σ R = 0``), where the share is
        undefined.

    Examples
    --------
    >>> mask = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    >>> mask[0, :2] = True
    >>> attr = mask.float() * 3 - 1  # 3 - 1 = 2 inside, -1 outside
    >>> relevance_mass_accuracy(attr, mask)
    tensor([1.], dtype=torch.float64)
    >>> relevance_mass_accuracy(attr, mask, relevance="absolute")  # 32*2 / (32*2 + 32*1)
    tensor([0.6667], dtype=torch.float64)
    """
    rel = _non_negative(relevance, "relevance mass accuracy")
    policy = option(EmptyMask, empty_mask, "empty_mask")
    scores, m = scores_and_mask(
        attributions,
        mask,
        spatial_dims,
        option(ChannelReduction, channel_reduction, "channel_reduction"),
    )
    r = rel.apply(scores).flatten(1).double()
    m = m.flatten(1)
    bad = empty_rows(m.sum(1), m.shape[1], "relevance mass accuracy", policy, full_too=False)
    total = r.sum(1)
    inside = (r * m).sum(1)
    out = inside / total
    out = torch.where(total > 0, out, torch.nan)
    return torch.where(bad, torch.nan, out)


def relevance_rank_accuracy(
    attributions: Tensor,
    mask: Tensor,
    *,
    relevance: str | Relevance = "positive",
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
    empty_mask: str | EmptyMask = "raise",
) -> Tensor:
    """Fraction of the ``K`` most relevant voxels that fall inside the mask, ``K`` = mask size.

    (Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 81, 2022.) 1 means the mask's
    voxels are exactly the top ``K``; a random map scores about ``K / N``.

    Ties at the ``K``-th place are resolved by expectation, not by voxel order: if ``t`` voxels
    share the ``K``-th highest value and ``k`` places are left for them, each counts ``k / t``.
    The result is what a uniformly random tie-break gives on average, and does not depend on
    how the volume is laid out in memory (a constant map scores exactly ``K / N``).

    Parameters
    ----------
    attributions, mask, channel_reduction, spatial_dims, empty_mask
        As in :func:`relevance_mass_accuracy`.
    relevance
        ``"positive"`` (default): rank ``max(φ, 0)``, so every non-positive voxel ties at zero
        (negative evidence is not "pointed at"); ``"absolute"``: rank ``|φ|``; ``"signed"``: rank
        ``φ`` itself (negative voxels ordered among themselves).

    Returns
    -------
    Tensor of shape ``(B,)``
        float64 in ``[0, 1]``.

    Examples
    --------
    >>> mask = torch.tensor([[[[1, 1], [0, 0]], [[0, 0], [0, 0]]]])  # K = 2 of 8 voxels
    >>> attr = torch.tensor([[[[5.0, 1.0], [4.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    >>> relevance_rank_accuracy(attr, mask)  # the top 2 are 5 (inside) and 4 (outside)
    tensor([0.5000], dtype=torch.float64)
    """
    rel = option(Relevance, relevance, "relevance")
    policy = option(EmptyMask, empty_mask, "empty_mask")
    scores, m = scores_and_mask(
        attributions,
        mask,
        spatial_dims,
        option(ChannelReduction, channel_reduction, "channel_reduction"),
    )
    r = rel.apply(scores).flatten(1)
    m = m.flatten(1)
    counts = m.sum(1)
    bad = empty_rows(counts, m.shape[1], "relevance rank accuracy", policy, full_too=False)
    out = torch.full((r.shape[0],), torch.nan, dtype=torch.float64, device=r.device)
    for b in range(r.shape[0]):
        k = int(counts[b])
        if k == 0:
            continue
        row, inside = r[b], m[b]
        # the k-th largest value is the (n - k + 1)-th smallest
        threshold = torch.kthvalue(row, row.numel() - k + 1).values
        above, tied = row > threshold, row == threshold
        n_above = int(above.sum())
        hits = float((above & inside).sum())
        n_tied = int(tied.sum())
        hits += (k - n_above) * float((tied & inside).sum()) / n_tied
        out[b] = hits / k
    return torch.where(bad, torch.nan, out)


def pointing_game(
    attributions: Tensor,
    mask: Tensor,
    *,
    tolerance: float = 0.0,
    spacing: Sequence[float] | Tensor | None = None,
    relevance: str | Relevance = "signed",
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
    empty_mask: str | EmptyMask = "raise",
) -> Tensor:
    """Hit (1) if the voxel of highest attribution lies in the mask, else miss (0).

    (Zhang, Bargal, Lin, Brandt, Shen & Sclaroff, "Top-down Neural Attention by Excitation
    Backprop", IJCV 126, 2018.) The mask can be grown by a tolerance first, as in the paper
    (15 pixels there): a voxel counts as inside if its centre is within ``tolerance`` of a mask
    voxel's centre (Euclidean, exact).

    When several voxels share the maximum, the result is the fraction of them inside the
    (grown) mask: the expected hit under a random pick, independent of memory layout. With a
    unique maximum it is 0 or 1.

    Parameters
    ----------
    attributions, mask, channel_reduction, spatial_dims, empty_mask
        As in :func:`relevance_mass_accuracy`.
    tolerance
        Growth of the mask: in mm when ``spacing`` is given, otherwise in voxels. 0 (default)
        uses the mask as is.
    spacing
        Voxel size in mm along each spatial axis (anisotropic volumes are grown by an
        ellipsoid in voxel terms, a ball in mm).
    relevance
        Which voxel is "the maximum": ``"signed"`` (default, the largest ``φ``), or
        ``"absolute"`` (the largest ``|φ|``). ``"positive"`` equals ``"signed"`` unless every value
        is ≤ 0, in which case all non-positive voxels tie.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64 in ``[0, 1]``; the mean over samples is the pointing accuracy.

    Examples
    --------
    >>> mask = torch.zeros(1, 5, 5, 5, dtype=torch.bool)
    >>> mask[0, 2, 2, 2] = True
    >>> attr = torch.zeros(1, 5, 5, 5)
    >>> attr[0, 2, 2, 4] = 1.0  # two voxels away from the mask
    >>> pointing_game(attr, mask), pointing_game(attr, mask, tolerance=2)
    (tensor([0.], dtype=torch.float64), tensor([1.], dtype=torch.float64))
    >>> pointing_game(attr, mask, tolerance=2.5, spacing=(1.0, 1.0, 1.5))  # 3 mm away
    tensor([0.], dtype=torch.float64)
    """
    rel = option(Relevance, relevance, "relevance")
    policy = option(EmptyMask, empty_mask, "empty_mask")
    tol = float(tolerance)
    if not tol >= 0 or tol == float("inf"):
        raise InputError(f"tolerance must be a finite number ≥ 0, got {tolerance!r}")
    scores, m = scores_and_mask(
        attributions,
        mask,
        spatial_dims,
        option(ChannelReduction, channel_reduction, "channel_reduction"),
    )
    steps = spacing_tuple(spacing, spatial_dims)
    bad = empty_rows(m.flatten(1).sum(1), m[0].numel(), "pointing game", policy, full_too=False)
    r = rel.apply(scores)
    top = r == r.flatten(1).amax(dim=1).view(-1, *([1] * (r.dim() - 1)))
    n_top = top.flatten(1).sum(1).double()
    if tol > 0:
        hits = torch.stack([count_within(top[b], m[b], tol, steps) for b in range(r.shape[0])])
    else:
        hits = (top & m).flatten(1).sum(1)
    out = hits.double() / n_top
    return torch.where(bad, torch.nan, out)


class RelevanceMassAccuracy:
    """Settings-first form of :func:`relevance_mass_accuracy` (for bundle configs).

    Examples
    --------
    >>> metric = RelevanceMassAccuracy(relevance="absolute")
    >>> metric(torch.ones(2, 1, 2, 2, 2), torch.ones(2, 2, 2, 2))
    tensor([1., 1.], dtype=torch.float64)
    """

    def __init__(
        self,
        relevance: str | Relevance = "positive",
        channel_reduction: str | ChannelReduction = "sum",
        spatial_dims: int = 3,
        empty_mask: str | EmptyMask = "raise",
    ) -> None:
        self.relevance = _non_negative(relevance, "relevance mass accuracy")
        self.channel_reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
        self.spatial_dims = spatial_dims
        self.empty_mask = option(EmptyMask, empty_mask, "empty_mask")

    def __call__(self, attributions: Tensor, mask: Tensor) -> Tensor:
        return relevance_mass_accuracy(
            attributions,
            mask,
            relevance=self.relevance,
            channel_reduction=self.channel_reduction,
            spatial_dims=self.spatial_dims,
            empty_mask=self.empty_mask,
        )


class RelevanceRankAccuracy:
    """Settings-first form of :func:`relevance_rank_accuracy` (for bundle configs).

    Examples
    --------
    >>> RelevanceRankAccuracy()(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2))
    tensor([1.], dtype=torch.float64)
    """

    def __init__(
        self,
        relevance: str | Relevance = "positive",
        channel_reduction: str | ChannelReduction = "sum",
        spatial_dims: int = 3,
        empty_mask: str | EmptyMask = "raise",
    ) -> None:
        self.relevance = option(Relevance, relevance, "relevance")
        self.channel_reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
        self.spatial_dims = spatial_dims
        self.empty_mask = option(EmptyMask, empty_mask, "empty_mask")

    def __call__(self, attributions: Tensor, mask: Tensor) -> Tensor:
        return relevance_rank_accuracy(
            attributions,
            mask,
            relevance=self.relevance,
            channel_reduction=self.channel_reduction,
            spatial_dims=self.spatial_dims,
            empty_mask=self.empty_mask,
        )


class PointingGame:
    """Settings-first form of :func:`pointing_game` (for bundle configs).

    Examples
    --------
    >>> game = PointingGame(tolerance=5.0, spacing=(1.0, 1.0, 2.5))  # 5 mm
    >>> game(torch.rand(1, 1, 8, 8, 8), torch.ones(1, 8, 8, 8))
    tensor([1.], dtype=torch.float64)
    """

    def __init__(
        self,
        tolerance: float = 0.0,
        spacing: Sequence[float] | None = None,
        relevance: str | Relevance = "signed",
        channel_reduction: str | ChannelReduction = "sum",
        spatial_dims: int = 3,
        empty_mask: str | EmptyMask = "raise",
    ) -> None:
        self.tolerance = float(tolerance)
        self.spacing = None if spacing is None else spacing_tuple(spacing, spatial_dims)
        self.relevance = option(Relevance, relevance, "relevance")
        self.channel_reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
        self.spatial_dims = spatial_dims
        self.empty_mask = option(EmptyMask, empty_mask, "empty_mask")

    def __call__(
        self, attributions: Tensor, mask: Tensor, spacing: Sequence[float] | Tensor | None = None
    ) -> Tensor:
        """``spacing`` here overrides the one given at construction (per-study voxel sizes)."""
        return pointing_game(
            attributions,
            mask,
            tolerance=self.tolerance,
            spacing=self.spacing if spacing is None else spacing,
            relevance=self.relevance,
            channel_reduction=self.channel_reduction,
            spatial_dims=self.spatial_dims,
            empty_mask=self.empty_mask,
        )
