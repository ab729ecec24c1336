"""Deletion and insertion curves: how fast the target score falls (rises) as the voxels an
attribution ranks highest are removed (inserted).

Deletion starts from the input ``x`` and replaces the top-ranked fraction of voxels by a
replacement volume; insertion starts from the replacement and puts back ``x``'s top-ranked
voxels (Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
Models", BMVC 2018; the deletion curve is the "most relevant first" region perturbation of
Samek, Binder, Montavon, Lapuschkin & Müller, "Evaluating the Visualization of What a Deep
Neural Network Has Learned", IEEE TNNLS 28, 2017). A good attribution gives a low deletion AUC
and a high insertion AUC.

What "removed" means is the replacement volume, given explicitly:

- the baseline the attribution was computed against (e.g. a counterfactual, which makes the
  curves consistent with the attribution's own notion of absence), or
- a fixed reference shared by all methods (a constant, or a blurred copy of ``x``), which makes
  curves of different methods comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._validation import (
    ChannelReduction,
    as_channels_first,
    check_finite,
    check_spatial_dims,
    option,
    plain_tensor,
)
from medattr.metrics.scoring import TargetScorer, _check_batch_size
from medattr.targets import TargetLike

__all__ = [
    "PerturbationCurve",
    "PerturbationCurveMetric",
    "PerturbationMode",
    "deletion_curve",
    "insertion_curve",
    "perturbation_curve",
    "voxel_order",
]


class PerturbationMode(str, Enum):
    """``"deletion"``: from ``x`` towards the replacement; ``"insertion"``: the reverse."""

    DELETION = "deletion"
    INSERTION = "insertion"


@dataclass
class PerturbationCurve:
    """A deletion or insertion curve for each sample (CPU tensors, whatever the model's device).

    Attributes
    ----------
    mode
        ``"deletion"`` or ``"insertion"``.
    fractions
        float64 ``(S,)``: the fraction of voxels perturbed at each step, from 0 to 1 (the exact
        count divided by the number of voxels, so repeated values can occur on tiny volumes).
    scores
        float64 ``(B, S)``: the target score at each step. Deletion starts at ``f(x)`` and ends
        at ``f(replacement)``; insertion the other way round.
    auc
        float64 ``(B,)``: trapezoidal area under ``scores`` over ``fractions`` (width 1).
    n_voxels
        Number of units ordered and perturbed per sample (voxels, or channel-voxels with
        ``channel_reduction="none"``).
    """

    mode: str
    fractions: Tensor
    scores: Tensor
    auc: Tensor
    n_voxels: int

    @property
    def f_input(self) -> Tensor:
        """Score at the unperturbed input ``x`` (``(B,)``)."""
        return (
            self.scores[:, 0]
            if self.mode == PerturbationMode.DELETION.value
            else self.scores[:, -1]
        )

    @property
    def f_replacement(self) -> Tensor:
        """Score at the replacement volume (``(B,)``)."""
        return (
            self.scores[:, -1]
            if self.mode == PerturbationMode.DELETION.value
            else self.scores[:, 0]
        )

    def normalized_auc(self) -> Tensor:
        """AUC rescaled so that the replacement's score is 0 and ``x``'s score is 1:
        ``(auc − f(replacement)) / (f(x) − f(replacement))`` (NaN where they are equal). Makes
        samples with different score ranges comparable."""
        span = self.f_input - self.f_replacement
        out = (self.auc - self.f_replacement) / span
        return torch.where(span != 0, out, torch.nan)

    def summary(self) -> dict[str, object]:
        """JSON-able lists for reports."""
        return {
            "mode": self.mode,
            "fractions": self.fractions.tolist(),
            "scores": self.scores.tolist(),
            "auc": self.auc.tolist(),
            "n_voxels": self.n_voxels,
        }


def _fractions(steps: int | Sequence[float] | Tensor) -> Tensor:
    if isinstance(steps, bool):
        raise InputError(f"steps must be an int ≥ 1 or a sequence of fractions, got {steps!r}")
    if isinstance(steps, int):
        if steps < 1:
            raise InputError(
                f"steps must be ≥ 1 (the number of intervals between 0 and 1), got {steps}"
            )
        return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    f = torch.as_tensor(steps, dtype=torch.float64).flatten()
    ok = (
        f.numel() >= 2
        and bool((f[1:] > f[:-1]).all())
        and float(f[0]) == 0.0
        and float(f[-1]) == 1.0
    )
    if not ok:
        raise InputError(
            f"steps given as fractions must increase strictly from 0 to 1 (both included); got "
            f"{f.tolist()}"
        )
    return f


def voxel_order(attributions: Tensor) -> Tensor:
    """Rank of each element of each row of ``attributions`` ``(B, N)`` in descending order.

    Ties are broken by position: of two equal scores, the one earlier in C order (lower flat
    index) ranks first, so the order is deterministic on every device.

    Examples
    --------
    >>> voxel_order(torch.tensor([[0.5, 2.0, 0.5, 1.0]]))
    tensor([[2, 0, 3, 1]])
    """
    order = torch.sort(attributions, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ranks


def perturbation_curve(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    replacement: Tensor | float,
    *,
    mode: str | PerturbationMode = "deletion",
    target: TargetLike = None,
    steps: int | Sequence[float] | Tensor = 20,
    batch_size: int = 8,
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
) -> PerturbationCurve:
    """Deletion or insertion curve of each sample; see :func:`deletion_curve`."""
    mode_ = option(PerturbationMode, mode, "mode")
    reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
    spatial_dims = check_spatial_dims(spatial_dims)
    batch_size = _check_batch_size(batch_size)
    fractions = _fractions(steps)

    x = plain_tensor(inputs, "inputs")
    if x.dim() != spatial_dims + 2:
        raise InputError(
            f"inputs must have shape (B, C, *spatial) with {spatial_dims} spatial axes; got shape "
            f"{tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise InputError(f"inputs must be floating point, got {x.dtype}")
    batch, channels, spatial = x.shape[0], x.shape[1], tuple(x.shape[2:])
    attr = as_channels_first(
        plain_tensor(attributions, "attributions"), "attributions", spatial_dims
    )
    if (
        attr.shape[0] != batch
        or tuple(attr.shape[2:]) != spatial
        or attr.shape[1] not in (1, channels)
    ):
        raise InputError(
            f"attributions of shape {tuple(attr.shape)} do not fit inputs of shape "
            f"{tuple(x.shape)}; expected {tuple(x.shape)}, {(batch, 1, *spatial)} or "
            f"{(batch, *spatial)}"
        )
    check_finite(attr, "attributions")
    if reduction is ChannelReduction.SUM:
        voxel_scores = attr.sum(1, keepdim=True) if attr.shape[1] > 1 else attr
    else:
        voxel_scores = attr.expand(batch, channels, *spatial)
    groups = voxel_scores.shape[1]  # 1: whole voxels are perturbed; C: single channel-voxels

    if isinstance(replacement, Tensor):
        repl = plain_tensor(replacement, "replacement").to(device=x.device, dtype=x.dtype)
        try:
            repl = repl.expand_as(x)
        except RuntimeError:
            raise InputError(
                f"replacement of shape {tuple(repl.shape)} cannot be broadcast to the inputs' "
                f"shape {tuple(x.shape)}"
            ) from None
    elif isinstance(replacement, int | float) and not isinstance(replacement, bool):
        repl = torch.full((), float(replacement), dtype=x.dtype, device=x.device).expand_as(x)
    else:
        raise TypeError(
            f"replacement must be a tensor or a number, got {type(replacement).__name__}"
        )
    check_finite(repl, "replacement")

    scorer = TargetScorer(model, x, target, batch_size)
    flat = voxel_scores.reshape(batch, -1).to(x.device)
    n_units = flat.shape[1]
    ranks = voxel_order(flat)
    counts = torch.round(fractions * n_units).long()
    unique_counts, step_of = torch.unique(counts, return_inverse=True)
    # the point with nothing of x changed is x itself: reuse f(x) from binding
    same_as_x = 0 if mode_ is PerturbationMode.DELETION else n_units
    jobs = [
        (b, j)
        for b in range(batch)
        for j in range(unique_counts.numel())
        if int(unique_counts[j]) != same_as_x
    ]
    values = torch.empty(batch, unique_counts.numel(), dtype=torch.float64)
    values[:, unique_counts == same_as_x] = scorer.f_input.cpu().unsqueeze(1)
    counts_dev = unique_counts.to(x.device)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        sample = torch.tensor([b for b, _ in chunk], device=x.device)
        step = torch.tensor([j for _, j in chunk], device=x.device)
        chosen = ranks[sample] < counts_dev[step].unsqueeze(1)  # (n, units): perturbed units
        chosen = chosen.view(len(chunk), groups, *spatial)
        if mode_ is PerturbationMode.DELETION:
            points = torch.where(chosen, repl[sample], x[sample])
        else:
            points = torch.where(chosen, x[sample], repl[sample])
        scores = scorer(points, sample).cpu()
        for (b, j), v in zip(chunk, scores.tolist(), strict=True):
            values[b, j] = v
    curve = values[:, step_of]
    frac = counts.double() / n_units
    auc = torch.trapezoid(curve, frac, dim=1)
    return PerturbationCurve(
        mode=mode_.value, fractions=frac, scores=curve, auc=auc, n_voxels=n_units
    )


def deletion_curve(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    replacement: Tensor | float,
    *,
    target: TargetLike = None,
    steps: int | Sequence[float] | Tensor = 20,
    batch_size: int = 8,
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
) -> PerturbationCurve:
    """Replace the most relevant voxels first and record the target score.

    At step ``k`` the ``round(t_k N)`` voxels ranked highest by the attribution (descending,
    ties broken by flat index, see :func:`voxel_order`) take the replacement's values; the
    rest keep ``x``'s. All channels of a voxel are replaced together.

    Parameters
    ----------
    model
        ``model(x) -> output`` for ``(N, C, *spatial)`` volumes, in ``eval()`` mode. Run under
        ``torch.no_grad``; the perturbed volumes go through it ``batch_size`` at a time.
    inputs
        ``(B, C, *spatial)``, as the model takes them.
    attributions
        ``(B, C, *spatial)``, ``(B, 1, *spatial)`` or ``(B, *spatial)``: what orders the voxels.
    replacement
        What a removed voxel becomes: a tensor broadcastable to ``inputs`` (the attribution's
        baseline, a blurred copy of ``x``, a per-channel constant ``(1, C, 1, 1, 1)``) or a
        number.
    target
        The score to record: ``None`` (scalar model output), an ``int`` class index, ``"predicted"``
        (fixed at ``x``), a :class:`~medattr.targets.Target`, or a callable
        ``score_fn(output) -> Tensor (N,)``.
    steps
        Number of equal steps from 0 to 1 (``steps + 1`` points, default 20), or the fractions
        themselves (increasing, from 0 to 1).
    batch_size
        Perturbed volumes per forward pass.
    channel_reduction
        ``"sum"`` (default): rank voxels by the channel sum; ``"none"``: rank and replace
        (channel, voxel) elements one by one (attributions must then have ``inputs``' shape or
        one channel).
    spatial_dims
        Number of spatial axes.

    Returns
    -------
    PerturbationCurve
        ``fractions``, ``scores`` ``(B, steps + 1)`` and ``auc`` ``(B,)`` (lower is better for
        deletion). ``scores[:, 0]`` is ``f(x)`` and ``scores[:, -1]`` is ``f(replacement)``.

    Examples
    --------
    >>> w = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    >>> model = lambda v: v.flatten(1) @ w  # a linear score, one scalar per volume
    >>> x = torch.ones(1, 1, 2, 2, 2)
    >>> curve = deletion_curve(model, x, w.view(1, 1, 2, 2, 2) * x, 0.0, steps=4)
    >>> curve.scores  # removing 2 voxels of the 8 per step: 10 → 3 → 0 → 0 → 0
    tensor([[10.,  3.,  0.,  0.,  0.]], dtype=torch.float64)
    >>> curve.auc
    tensor([2.], dtype=torch.float64)
    """
    return perturbation_curve(
        model,
        inputs,
        attributions,
        replacement,
        mode="deletion",
        target=target,
        steps=steps,
        batch_size=batch_size,
        channel_reduction=channel_reduction,
        spatial_dims=spatial_dims,
    )


def insertion_curve(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    replacement: Tensor | float,
    *,
    target: TargetLike = None,
    steps: int | Sequence[float] | Tensor = 20,
    batch_size: int = 8,
    channel_reduction: str | ChannelReduction = "sum",
    spatial_dims: int = 3,
) -> PerturbationCurve:
    """Start from the replacement and insert ``x``'s most relevant voxels first.

    The mirror of :func:`deletion_curve` (same parameters): at step ``k`` the top
    ``round(t_k N)`` voxels hold ``x``'s values and the rest the replacement's. ``scores[:, 0]``
    is ``f(replacement)``, ``scores[:, -1]`` is ``f(x)``; higher AUC is better.

    Examples
    --------
    >>> w = torch.tensor([4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    >>> model = lambda v: v.flatten(1) @ w
    >>> x = torch.ones(1, 1, 2, 2, 2)
    >>> insertion_curve(model, x, w.view(1, 1, 2, 2, 2), 0.0, steps=4).scores
    tensor([[ 0.,  7., 10., 10., 10.]], dtype=torch.float64)
    """
    return perturbation_curve(
        model,
        inputs,
        attributions,
        replacement,
        mode="insertion",
        target=target,
        steps=steps,
        batch_size=batch_size,
        channel_reduction=channel_reduction,
        spatial_dims=spatial_dims,
    )


class PerturbationCurveMetric:
    """Settings-first form of :func:`deletion_curve` / :func:`insertion_curve`.

    Parameters
    ----------
    model
        The model, in ``eval()`` mode.
    mode
        ``"deletion"`` (default) or ``"insertion"``.
    target, steps, batch_size, channel_reduction, spatial_dims
        As in :func:`deletion_curve`.

    Examples
    --------
    >>> model = lambda v: v.flatten(1).sum(1)
    >>> metric = PerturbationCurveMetric(model, mode="insertion", steps=8)
    >>> x = torch.ones(1, 1, 2, 2, 2)
    >>> metric(x, torch.rand(1, 1, 2, 2, 2), replacement=0.0).auc
    tensor([4.], dtype=torch.float64)
    """

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        mode: str | PerturbationMode = "deletion",
        target: TargetLike = None,
        steps: int | Sequence[float] = 20,
        batch_size: int = 8,
        channel_reduction: str | ChannelReduction = "sum",
        spatial_dims: int = 3,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        self.model = model
        self.mode = option(PerturbationMode, mode, "mode")
        self.target = target
        _fractions(steps)
        self.steps = steps
        self.batch_size = _check_batch_size(batch_size)
        self.channel_reduction = option(ChannelReduction, channel_reduction, "channel_reduction")
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def __call__(
        self, inputs: Tensor, attributions: Tensor, replacement: Tensor | float
    ) -> PerturbationCurve:
        return perturbation_curve(
            self.model,
            inputs,
            attributions,
            replacement,
            mode=self.mode,
            target=self.target,
            steps=self.steps,
            batch_size=self.batch_size,
            channel_reduction=self.channel_reduction,
            spatial_dims=self.spatial_dims,
        )
