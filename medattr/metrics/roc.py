"""ROC AUC of an attribution map read as a voxel classifier of a ground-truth mask.

The area under the ROC curve equals the Mann–Whitney statistic: the probability that a
random mask voxel scores higher than a random background voxel, ties counting one half
(Hanley & McNeil, "The meaning and use of the area under a receiver operating characteristic
(ROC) curve", Radiology 143, 1982). It is computed exactly from mid-ranks, in integer
arithmetic, with one sort per sample, on whatever device the attributions are on.
"""

from __future__ import annotations

import torch
from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._validation import (
    ChannelReduction,
    EmptyMask,
    Relevance,
    check_finite,
    empty_rows,
    option,
    scores_and_mask,
)

__all__ = ["AttributionROCAUC", "roc_auc", "roc_auc_scores"]


def roc_auc_scores(scores: Tensor, labels: Tensor) -> Tensor:
    """Exact ROC AUC of each row of ``scores`` against the boolean row of ``labels``.

    Parameters
    ----------
    scores
        ``(B, N)`` real scores (higher means "more likely positive").
    labels
        ``(B, N)`` booleans.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64; NaN for a row without positives or without negatives.

    Examples
    --------
    >>> roc_auc_scores(torch.tensor([[0.1, 0.4, 0.35, 0.8]]), torch.tensor([[0, 0, 1, 1]]).bool())
    tensor([0.7500], dtype=torch.float64)
    """
    if scores.shape != labels.shape or scores.dim() != 2:
        raise InputError(
            f"scores and labels must both be (B, N); got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    check_finite(scores, "scores")
    labels = labels.to(device=scores.device, dtype=torch.bool)
    n = scores.shape[1]
    out = torch.full((scores.shape[0],), torch.nan, dtype=torch.float64, device=scores.device)
    positions = torch.arange(n, device=scores.device)
    for b in range(scores.shape[0]):
        pos = int(labels[b].sum())
        neg = n - pos
        if pos == 0 or neg == 0:
            continue
        values, order = torch.sort(scores[b])
        lab = labels[b][order]
        starts = torch.ones(n, dtype=torch.bool, device=scores.device)
        starts[1:] = values[1:] != values[:-1]
        ends = torch.ones(n, dtype=torch.bool, device=scores.device)
        ends[:-1] = starts[1:]
        # first and last sorted position of each run of equal values
        first = torch.where(starts, positions, 0).cummax(0).values
        last = torch.where(ends, positions, n).flip(0).cummin(0).values.flip(0)
        # twice the 1-based mid-rank of each element, in integers
        twice_rank = first + last + 2
        rank_sum2 = int(twice_rank[lab].sum())
        u2 = rank_sum2 - pos * (pos + 1)  # twice the Mann–Whitney U of the positives
        out[b] = u2 / (2.0 * pos * neg)
    return out


def roc_auc(
    attributions: Tensor,
    mask: Tensor,
    *,
    relevance: str | Relevance = "signed",
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
    empty_mask: str | EmptyMask = "raise",
) -> Tensor:
    """ROC AUC of the attribution scores against a binary mask, per sample.

    1: every mask voxel outranks every background voxel; 0.5: no better than chance (a constant
    map scores exactly 0.5); 0: the reverse ordering. Ties count one half (mid-ranks), so the
    value is exact and matches ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    attributions
        ``(B, C, *spatial)`` or ``(B, *spatial)``.
    mask
        ``(B, *spatial)``, ``(B, 1, *spatial)`` or ``(B, C, *spatial)``, boolean or 0/1.
    relevance
        Score each voxel by ``"signed"`` φ (default), ``"absolute"`` ``|φ|`` or ``"positive"``
        ``max(φ, 0)``.
    channel_reduction
        ``"sum"`` (default): one score per voxel, the sum over channels; ``"none"``: every
        (channel, voxel) element is a separate item.
    spatial_dims
        Number of spatial axes (3 unless given).
    empty_mask
        A mask with no voxel, or with every voxel, leaves AUC undefined: ``"raise"`` (default)
        or ``"nan"`` for that sample.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64, on the attributions' device.

    Examples
    --------
    >>> mask = torch.zeros(2, 4, 4, 4, dtype=torch.bool)
    >>> mask[:, 1:3, 1:3, 1:3] = True
    >>> roc_auc(torch.stack([mask.float()[0], -mask.float()[1]]), mask)
    tensor([1., 0.], dtype=torch.float64)
    """
    rel = option(Relevance, relevance, "relevance")
    policy = option(EmptyMask, empty_mask, "empty_mask")
    scores, m = scores_and_mask(
        attributions,
        mask,
        spatial_dims,
        option(ChannelReduction, channel_reduction, "channel_reduction"),
    )
    s = rel.apply(scores).flatten(1)
    m = m.flatten(1)
    empty_rows(m.sum(1), m.shape[1], "ROC AUC", policy, full_too=True)
    return roc_auc_scores(s, m)


class AttributionROCAUC:
    """Settings-first form of :func:`roc_auc` (for bundle configs).

    Examples
    --------
    >>> mask = torch.zeros(1, 3, 3, 3)
    >>> mask[0, 1, 1, 1] = 1
    >>> AttributionROCAUC()(torch.zeros(1, 1, 3, 3, 3), mask)
    tensor([0.5000], dtype=torch.float64)
    """

    def __init__(
        self,
        relevance: str | Relevance = "signed",
        channel_reduction: str | ChannelReduction = "sum",
        spatial_dims: int = 3,
        empty_mask: str | EmptyMask = "raise",
    ) -> None:
        self.relevance = option(Relevance, relevance, "relevance")
        self.channel_reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
        self.spatial_dims = spatial_dims
        self.empty_mask = option(EmptyMask, empty_mask, "empty_mask")

    def __call__(self, attributions: Tensor, mask: Tensor) -> Tensor:
        return roc_auc(
            attributions,
            mask,
            relevance=self.relevance,
            channel_reduction=self.channel_reduction,
            spatial_dims=self.spatial_dims,
            empty_mask=self.empty_mask,
        )
