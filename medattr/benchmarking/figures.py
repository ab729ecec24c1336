"""PNG figures of a benchmark run: metric bars with 95 % CIs, baseline diagnostics, and example
slices (each baseline, its difference from the input, and its IG map next to the lesion mask).

Slices are axial, shown in radiological convention (patient's right on the image's left,
anterior at the top), through the slice where the lesion is largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medattr._fs import atomic_path
from medattr.benchmarking.config import EG_BASELINE, ordered_baselines, ordered_methods
from medattr.benchmarking.evaluate import METRICS
from medattr.render import blend_rgb, robust_limit, window_limits

__all__ = ["baseline_figure", "example_figure", "metric_figure"]

_METHOD_COLOURS = {
    "ig": "#1f77b4",
    "smoothgrad": "#2ca02c",
    "split-ig": "#ff7f0e",
    "eg": "#9467bd",
}
_METHOD_LABELS = {
    "ig": "IG",
    "smoothgrad": "SmoothGrad (IG)",
    "split-ig": "Split IG",
    "eg": "Expected Gradients",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, dpi: int = 110) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
    _pyplot().close(fig)


def metric_columns(cells: Iterable[tuple[str, str, str]]) -> list[str]:
    """The x axis of a metric figure: each baseline of ``cells`` (``(method, baseline, metric)``
    keys) once, in report order, Expected Gradients' healthy references last."""
    present = {k[1] for k in cells}
    names = ordered_baselines(sorted(b for b in present if b != EG_BASELINE))
    return [*names, EG_BASELINE] if EG_BASELINE in present else names


def metric_figure(summary: dict[str, Any], group: str, path: str | Path) -> Path | None:
    """Grouped bars (baselines on the x axis, one bar per method) with 95 % CI error bars for
    every metric of ``group`` (``"localisation"``, ``"faithfulness"`` or ``"robustness"``)."""
    cells = {(c["method"], c["baseline"], c["metric"]): c for c in summary["cells"]}
    metrics = [m for m in METRICS if m.group == group and any(k[2] == m.key for k in cells)]
    if group == "faithfulness":
        metrics += [
            m for m in METRICS if m.group == "robustness" and any(k[2] == m.key for k in cells)
        ]
    if not metrics:
        return None
    plt = _pyplot()
    columns = metric_columns(cells)
    methods = ordered_methods(k[0] for k in cells)
    ncol = 2 if len(metrics) <= 4 else 3
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(6.2 * ncol, 3.4 * nrow), squeeze=False, constrained_layout=True
    )
    width = 0.8 / max(len(methods), 1)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for j, method in enumerate(methods):
            xs: list[float] = []
            ys: list[float] = []
            err: list[list[float]] = [[], []]
            for i, b in enumerate(columns):
                c = cells.get((method, b, metric.key))
                if c is None or not math.isfinite(c["mean"]):
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(c["mean"])
                lo = c["lo"] if math.isfinite(c["lo"]) else c["mean"]
                hi = c["hi"] if math.isfinite(c["hi"]) else c["mean"]
                err[0].append(max(c["mean"] - lo, 0.0))
                err[1].append(max(hi - c["mean"], 0.0))
            if xs:
                ax.bar(
                    xs,
                    ys,
                    width,
                    yerr=err,
                    capsize=2,
                    color=_METHOD_COLOURS.get(method, "gray"),
                    label=_METHOD_LABELS.get(method, method),
                )
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels(columns, rotation=35, ha="right", fontsize=8)
        arrow = "higher is better" if metric.higher_is_better else "lower is better"
        ax.set_title(f"{metric.label} ({arrow})", fontsize=10)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        f"{group.capitalize()}: mean and 95 % bootstrap CI over "
        f"{len(summary['studies'])} lesion studies",
        fontsize=11,
    )
    out = Path(path)
    _save(fig, out)
    return out


def baseline_figure(summary: dict[str, Any], path: str | Path) -> Path | None:
    """What each baseline is: disease probability, share called healthy, and distance to the
    input inside and outside the lesion (means and 95 % CIs over the lesion studies)."""
    stats = summary.get("baselines") or {}
    names = ordered_baselines(b for b in stats if b != EG_BASELINE)
    if not names:
        return None
    plt = _pyplot()
    panels = [
        (("p_disease_baseline",), "p(disease | x')"),
        (("healthy",), "share called healthy"),
        (("distance_lesion", "distance_outside"), "mean |x - x'|: in lesion / outside"),
        (("twin_error_lesion", "twin_error_outside"), "mean |x' - twin|: in lesion / outside"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(20, 3.6), constrained_layout=True)
    for ax, (keys, title) in zip(axes, panels, strict=True):
        width = 0.8 / len(keys)
        for j, key in enumerate(keys):
            xs: list[float] = []
            ys: list[float] = []
            err: list[list[float]] = [[], []]
            for i, b in enumerate(names):
                c = stats[b].get(key)
                if c is None or not math.isfinite(c["mean"]):
                    continue
                xs.append(i + (j - (len(keys) - 1) / 2) * width)
                ys.append(c["mean"])
                lo = c["lo"] if math.isfinite(c["lo"]) else c["mean"]
                hi = c["hi"] if math.isfinite(c["hi"]) else c["mean"]
                err[0].append(max(c["mean"] - lo, 0.0))
                err[1].append(max(hi - c["mean"], 0.0))
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=key.split("_")[-1])
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    out = Path(path)
    _save(fig, out)
    return out


def _axial(vol: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of an (i→R, j→A, k→S) volume, radiological display."""
    return np.ascontiguousarray(vol[::-1, ::-1, k].T)


def example_figure(
    blob: dict[str, Any], study_id: str, path: str | Path, baselines: Sequence[str]
) -> Path:
    """Grid for one study: a first column with the input and the lesion mask, then one column per
    baseline with the baseline, ``x - x'`` and its IG map (lesion outlined).

    ``x - x'`` shares one colour scale across columns (the lesion's own contrast), so baselines
    that change much more than the lesion stand out; each IG map is scaled to its own 99.5th
    percentile of ``|IG|``.
    """
    plt = _pyplot()

    def arr(key: str) -> np.ndarray:
        return torch.as_tensor(blob[key]).detach().float().numpy().reshape(blob["x"].shape[-3:])

    x, twin = arr("x"), arr("twin")
    mask = torch.as_tensor(blob["mask"]).numpy().reshape(x.shape).astype(bool)
    k = int(np.argmax(mask.sum(axis=(0, 1)))) if mask.any() else x.shape[2] // 2
    win = window_limits(x)
    lesion = np.abs(x - twin)[mask]
    diff_lim = float(np.percentile(lesion, 99.5)) if lesion.size else robust_limit(x - twin)
    names = [b for b in baselines if f"baseline/{b}" in blob]
    extra_eg = "eg" in blob
    ncols = 1 + len(names) + (1 if extra_eg else 0)
    fig, axes = plt.subplots(
        3, ncols, figsize=(2.3 * ncols, 7.2), squeeze=False, constrained_layout=True
    )
    m2 = _axial(mask.astype(np.float32), k)

    def outline(ax: Any) -> None:
        if m2.max() > 0:
            ax.contour(m2, levels=[0.5], colors="yellow", linewidths=0.7)

    axes[0, 0].imshow(_axial(x, k), cmap="gray", vmin=win[0], vmax=win[1])
    axes[0, 0].set_title("input x", fontsize=9)
    axes[1, 0].imshow(_axial(x - twin, k), cmap="RdBu_r", vmin=-diff_lim, vmax=diff_lim)
    axes[1, 0].set_title("x - twin (lesion)", fontsize=9)
    axes[2, 0].imshow(_axial(x, k), cmap="gray", vmin=win[0], vmax=win[1])
    outline(axes[2, 0])
    axes[2, 0].set_title("lesion mask", fontsize=9)
    for c, name in enumerate(names, start=1):
        b = arr(f"baseline/{name}")
        ig = arr(f"ig/{name}")
        axes[0, c].imshow(_axial(b, k), cmap="gray", vmin=win[0], vmax=win[1])
        axes[0, c].set_title(name, fontsize=9)
        axes[1, c].imshow(_axial(x - b, k), cmap="RdBu_r", vmin=-diff_lim, vmax=diff_lim)
        lim = robust_limit(ig)
        axes[2, c].imshow(blend_rgb(_axial(x, k), _axial(ig, k), window=win, limit=lim))
        outline(axes[2, c])
    if extra_eg:
        eg = arr("eg")
        c = ncols - 1
        axes[0, c].axis("off")
        axes[1, c].axis("off")
        axes[2, c].imshow(
            blend_rgb(_axial(x, k), _axial(eg, k), window=win, limit=robust_limit(eg))
        )
        outline(axes[2, c])
        axes[0, c].set_title("EG (healthy refs)", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("baseline x'", fontsize=9)
    axes[1, 0].set_ylabel("x - x'", fontsize=9)
    axes[2, 0].set_ylabel("IG attribution", fontsize=9)
    fig.suptitle(f"{study_id}: axial slice {k} (lesion outlined in yellow)", fontsize=10)
    out = Path(path)
    _save(fig, out, dpi=100)
    return out
