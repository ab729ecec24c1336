"""Score one attribution map of one study: localisation against the lesion mask, faithfulness
to the model, and (for a few studies) robustness.

Region: localisation is measured among the voxels of the study's region (the brain for MNI
studies, the body for phantoms): the lesion always lies there, and a map is judged on whether
it singles out the lesion within the organ, not on whether it ignores the empty background.
Deletion and insertion likewise perturb region voxels only, in the map's order, over the first
``perturbation_fraction`` of them (uniform steps); outside voxels keep the input's values.

Perturbation AUCs are normalised per study: the mean score over the perturbed range, rescaled
so that the score with the whole region replaced is 0 and the input's is 1. Deletion: lower is
better (the score falls as soon as the top voxels go); insertion: higher is better. Where
replacing the region barely changes the score (``|f(x) - f(r)| < 0.1 max(1, |f(x)|, |f(r)|)``)
the rescaling is meaningless and the value is NaN (counted as missing).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from medattr.benchmarking.config import BenchmarkConfig
from medattr.benchmarking.studies import BenchStudy
from medattr.metrics import (
    max_sensitivity,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    roc_auc,
    voxel_order,
)

__all__ = [
    "METRICS",
    "Metric",
    "faithfulness",
    "localisation",
    "normalised_auc",
    "perturbation_counts",
    "sensitivity",
    "sensitivity_inputs",
]


class Metric:
    """A reported metric: key, label, whether higher is better, and its group."""

    def __init__(self, key: str, label: str, higher_is_better: bool, group: str) -> None:
        self.key, self.label, self.higher_is_better, self.group = (
            key,
            label,
            higher_is_better,
            group,
        )

    def better(self, a: float, b: float) -> bool:
        return a > b if self.higher_is_better else a < b


METRICS: tuple[Metric, ...] = (
    Metric("mass", "relevance mass", True, "localisation"),
    Metric("rank", "relevance rank", True, "localisation"),
    Metric("pointing", "pointing game", True, "localisation"),
    Metric("roc_auc", "ROC AUC", True, "localisation"),
    Metric("completeness", "completeness error", False, "faithfulness"),
    Metric("deletion_own", "deletion (own x')", False, "faithfulness"),
    Metric("insertion_own", "insertion (own x')", True, "faithfulness"),
    Metric("deletion_fixed", "deletion (fixed)", False, "faithfulness"),
    Metric("insertion_fixed", "insertion (fixed)", True, "faithfulness"),
    Metric("max_sensitivity", "max-sensitivity", False, "robustness"),
)
"""Every metric the report shows, in order."""


def _voxel_scores(attr: Tensor) -> Tensor:
    """``(1, C, *spatial)`` -> ``(*spatial)``: channels summed."""
    return attr[0].sum(0)


def localisation(attr: Tensor, study: BenchStudy, cfg: BenchmarkConfig) -> dict[str, float]:
    """Relevance mass and rank accuracy, ROC AUC and the pointing game within the region."""
    scores = _voxel_scores(attr).double()
    region = study.region[0]
    lesion = study.mask[0]
    a = scores[region][None, None]  # (1, 1, N_region)
    m = lesion[region][None]  # (1, N_region)
    out = {
        "mass": float(relevance_mass_accuracy(a, m, spatial_dims=1, empty_mask="nan")[0]),
        "rank": float(relevance_rank_accuracy(a, m, spatial_dims=1, empty_mask="nan")[0]),
        "roc_auc": float(roc_auc(a, m, spatial_dims=1, empty_mask="nan")[0]),
    }
    # pointing game on the grid (the tolerance is in mm); outside voxels can never be the peak
    floor = float(scores.min()) - 1.0
    inside = torch.where(region, scores, torch.full_like(scores, floor))
    out["pointing"] = float(
        pointing_game(
            inside[None],
            lesion[None],
            tolerance=cfg.pointing_tolerance_mm,
            spacing=study.spacing,
            empty_mask="nan",
        )[0]
    )
    return out


def perturbation_counts(n_region: int, cfg: BenchmarkConfig) -> list[int]:
    """Numbers of region voxels perturbed at each point of a deletion / insertion curve:
    ``perturbation_steps`` equal steps over the first ``perturbation_fraction`` of the region,
    starting at 0 (duplicates on tiny regions are kept: the curve is then flat there)."""
    top = n_region * cfg.perturbation_fraction
    return [round(top * k / cfg.perturbation_steps) for k in range(cfg.perturbation_steps + 1)]


def _scores(
    model: Callable[[Tensor], Tensor],
    score: Callable[[Tensor], Tensor],
    points: list[Tensor],
    batch_size: int,
) -> list[float]:
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(points), batch_size):
            out += score(model(torch.cat(points[i : i + batch_size]))).double().tolist()
    return out


def normalised_auc(scores: Sequence[float], f_input: float, f_replacement: float) -> float:
    """Mean of a curve's scores over equally spaced points (trapezoid rule), rescaled so that
    the replacement's score is 0 and the input's is 1; NaN where they (nearly) coincide.

    Examples
    --------
    >>> normalised_auc([3.0, 1.0, 1.0], f_input=3.0, f_replacement=1.0)  # drops at once
    0.25
    """
    span = f_input - f_replacement
    if abs(span) < 0.1 * max(1.0, abs(f_input), abs(f_replacement)) or len(scores) < 2:
        return math.nan
    s = list(scores)
    mean = (sum(s) - 0.5 * (s[0] + s[-1])) / (len(s) - 1)
    return (mean - f_replacement) / span


def faithfulness(
    model: Callable[[Tensor], Tensor],
    score: Callable[[Tensor], Tensor],
    attr: Tensor,
    study: BenchStudy,
    f_input: float,
    replacements: dict[str, Tensor],
    cfg: BenchmarkConfig,
    batch_size: int = 8,
) -> dict[str, float]:
    """Normalised deletion and insertion AUCs for each named replacement volume.

    ``replacements`` maps a tag (``"own"``, ``"fixed"``) to a replacement volume; ``f_input``
    is ``f(x)``. Region voxels are ranked by the channel sum of ``attr`` (ties broken by
    position, as :func:`medattr.metrics.voxel_order`) and replaced (deletion) or restored into
    the replaced region (insertion); voxels outside the region keep the input's values
    throughout. Both curves are rescaled between ``f(x)`` (1) and the score with the whole
    region replaced (0), which is the insertion curve's first point. Points are scored in
    batches of ``batch_size``; ``f(x)`` is not recomputed. The curves equal those of
    :func:`medattr.metrics.perturbation_curve` when the region is the whole volume (see the
    tests).
    """
    scores = _voxel_scores(attr)
    region = study.region[0]
    flat_region = region.reshape(-1)
    idx = flat_region.nonzero().squeeze(1)
    ranks = voxel_order(scores.reshape(-1)[idx][None].double())[0]
    counts = perturbation_counts(int(idx.numel()), cfg)
    x = study.x
    points: list[Tensor] = []
    plan: list[tuple[str, str, int]] = []
    for tag, repl in replacements.items():
        for mode in ("deletion", "insertion"):
            for j, c in enumerate(counts):
                if mode == "deletion" and c == 0:
                    continue  # f(x)
                chosen = torch.zeros(flat_region.numel(), dtype=torch.bool)
                chosen[idx[ranks < c]] = True
                chosen = chosen.view(1, 1, *x.shape[2:])
                if mode == "deletion":
                    points.append(torch.where(chosen, repl, x))
                else:
                    # insertion restores the top voxels into the replacement; outside the
                    # region the input stays as it is until the curve's last point
                    base = torch.where(region[None, None], repl, x)
                    points.append(torch.where(chosen, x, base))
                plan.append((tag, mode, j))
    values = _scores(model, score, points, batch_size)
    curves: dict[tuple[str, str], list[float]] = {}
    for (tag, mode, j), v in zip(plan, values, strict=True):
        curves.setdefault((tag, mode), [math.nan] * len(counts))[j] = v
    out: dict[str, float] = {}
    for tag in replacements:
        dele = curves[(tag, "deletion")]
        dele[0] = f_input
        ins = curves[(tag, "insertion")]
        f_replaced = ins[0]  # the whole region replaced, nothing restored
        out[f"deletion_{tag}"] = normalised_auc(dele, f_input, f_replaced)
        out[f"insertion_{tag}"] = normalised_auc(ins, f_input, f_replaced)
        out[f"f_region_replaced_{tag}"] = f_replaced
    return out


def sensitivity_inputs(x: Tensor, cfg: BenchmarkConfig) -> list[Tensor]:
    """The perturbed inputs :func:`sensitivity` will explain, in order (drawn as
    :func:`medattr.metrics.max_sensitivity` draws them), so that expensive baselines can be made
    for all of them at once."""
    g = torch.Generator(device="cpu").manual_seed(int(cfg.seed))
    r = float(cfg.sensitivity_radius)
    return [
        x + torch.rand(x.shape, generator=g, dtype=torch.float32).mul_(2 * r).sub_(r).to(x)
        for _ in range(cfg.sensitivity_samples)
    ]


def sensitivity(
    explain: Callable[[Tensor], Tensor],
    study: BenchStudy,
    explanation: Tensor,
    cfg: BenchmarkConfig,
) -> float:
    """Max-sensitivity (relative L2 change) of ``explain`` around the study's input."""
    value = max_sensitivity(
        explain,
        study.x,
        radius=cfg.sensitivity_radius,
        n_samples=cfg.sensitivity_samples,
        seed=cfg.seed,
        explanation=explanation,
    )
    return float(value[0])
