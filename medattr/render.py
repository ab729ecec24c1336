"""Pictures of attributions: colour blends over anatomy and PNG montages.

Conventions: volumes are reoriented to RAS before display; axial and coronal views follow the
radiological convention (patient's right on the image's left); orientation letters are drawn on
every panel. Attribution colour scales are symmetric around zero (red: evidence for the
target, blue: against) unless the map is non-negative.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import nibabel as nib
import numpy as np

from medattr._colour import blend_rgb, robust_limit, window_limits
from medattr._fs import atomic_path
from medattr.affines import voxel_sizes
from medattr.io.writers import Stage, StudyOutput, Writer, register_writer

__all__ = [
    "PngWriter",
    "blend_rgb",
    "comparison_panel",
    "montage",
    "peak_index",
    "robust_limit",
    "to_ras",
    "window_limits",
]


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder/flip the last three axes of ``array`` so that they run R, A, S.

    Returns the reoriented array and the spacing along the new axes.
    """
    ornt = nib.orientations.io_orientation(affine)
    out = (
        nib.orientations.apply_orientation(array, ornt)
        if array.ndim == 3
        else np.stack([nib.orientations.apply_orientation(a, ornt) for a in array])
    )
    spacing = np.asarray(voxel_sizes(affine))
    new_spacing = np.empty(3)
    for src, (dst, _flip) in enumerate(ornt):
        new_spacing[int(dst)] = spacing[src]
    return out, new_spacing


def peak_index(attr: np.ndarray) -> tuple[int, int, int]:
    """Voxel of the strongest positive attribution (of |attribution| if none is positive)."""
    a = np.asarray(attr)
    idx = int(np.argmax(a)) if a.max() > 0 else int(np.argmax(np.abs(a)))
    return tuple(int(v) for v in np.unravel_index(idx, a.shape))  # type: ignore[return-value]


_VIEWS = (
    # view name, RAS axis sliced, letter at the top of the image, letter at its left
    ("axial", 2, "A", "R"),
    ("coronal", 1, "S", "R"),
    ("sagittal", 0, "S", "A"),
)
_OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def _plane(vol: np.ndarray, axis: int, index: int) -> np.ndarray:
    """2D image for display: rows top->bottom, columns left->right, per _VIEWS conventions."""
    s = np.take(vol, index, axis=axis)
    # remaining axes in RAS order: axial (R, A), coronal (R, S), sagittal (A, S)
    img = s.T[::-1]  # rows: second axis descending (A or S at top); cols: first axis ascending
    if axis in (2, 1):
        img = img[:, ::-1]  # radiological: R on the left
    else:
        img = img[:, ::-1]  # sagittal: anterior on the left
    return img


def _aspect(spacing: np.ndarray, axis: int) -> float:
    rest = [a for a in range(3) if a != axis]
    return float(spacing[rest[1]] / spacing[rest[0]])


def montage(
    anatomy: np.ndarray,
    attr: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    peak: Sequence[int] | None = None,
    window: tuple[float, float] | None = None,
    colorbar_label: str = "attribution",
    dpi: int = 110,
) -> tuple[int, int, int]:
    """PNG with the three orthogonal planes through the attribution peak, heatmap over anatomy.

    ``anatomy`` and ``attr`` are 3D arrays on the voxel grid of ``affine``. Returns the peak voxel
    (in the input grid). The file is written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    anatomy = np.asarray(anatomy, dtype=np.float32)
    attr = np.asarray(attr, dtype=np.float32)
    pk = tuple(int(v) for v in (peak if peak is not None else peak_index(attr)))
    marker = np.zeros(attr.shape, dtype=np.float32)
    marker[pk] = 1.0
    anat_r, spacing = to_ras(anatomy, affine)
    attr_r, _ = to_ras(attr, affine)
    pk_r = tuple(int(v) for v in np.argwhere(to_ras(marker, affine)[0] > 0)[0])
    lim = robust_limit(attr)
    win = window or window_limits(anatomy)
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 4.6), constrained_layout=True)
    for ax, (name, axis, top, left) in zip(axes, _VIEWS, strict=True):
        rgb = blend_rgb(
            _plane(anat_r, axis, pk_r[axis]),
            _plane(attr_r, axis, pk_r[axis]),
            window=win,
            limit=lim,
        )
        ax.imshow(rgb, aspect=_aspect(spacing, axis), interpolation="nearest")
        ax.set_title(f"{name} (slice {pk_r[axis]})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        kw: dict[str, Any] = {
            "color": "yellow",
            "fontsize": 9,
            "fontweight": "bold",
            "transform": ax.transAxes,
        }
        ax.text(0.5, 0.98, top, ha="center", va="top", **kw)
        ax.text(0.5, 0.02, _OPPOSITE[top], ha="center", va="bottom", **kw)
        ax.text(0.01, 0.5, left, ha="left", va="center", **kw)
        ax.text(0.99, 0.5, _OPPOSITE[left], ha="right", va="center", **kw)
    sm = plt.cm.ScalarMappable(norm=Normalize(-lim, lim), cmap="RdBu_r")
    fig.colorbar(sm, ax=axes, fraction=0.025, pad=0.01, label=colorbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return pk  # type: ignore[return-value]


def comparison_panel(
    columns: Sequence[tuple[str, np.ndarray, str]],
    affine: np.ndarray,
    path: str | os.PathLike[str],
    *,
    anatomy: np.ndarray,
    peak: Sequence[int],
    title: str = "",
    dpi: int = 100,
) -> None:
    """A grid: a column per ``(label, volume, kind)``, rows axial/coronal/sagittal through ``peak``.

    ``kind`` is ``"gray"`` (shown with the anatomy's window), ``"diff"`` (signed, gray-centred),
    ``"attr"`` (heatmap over ``anatomy``) or ``"mask"`` (contour over ``anatomy``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marker = np.zeros(anatomy.shape, dtype=np.float32)
    marker[tuple(int(v) for v in peak)] = 1.0
    pk_r = tuple(int(v) for v in np.argwhere(to_ras(marker, affine)[0] > 0)[0])
    anat_r, spacing = to_ras(np.asarray(anatomy, np.float32), affine)
    win = window_limits(anatomy)
    fig, axes = plt.subplots(
        3, len(columns), figsize=(2.6 * len(columns), 7.8), squeeze=False, constrained_layout=True
    )
    for c, (label, vol, kind) in enumerate(columns):
        vol_r, _ = to_ras(np.asarray(vol, np.float32), affine)
        lim = robust_limit(vol) if kind in ("attr", "diff") else 1.0
        for r, (name, axis, _top, _left) in enumerate(_VIEWS):
            ax = axes[r, c]
            plane = _plane(vol_r, axis, pk_r[axis])
            base = _plane(anat_r, axis, pk_r[axis])
            if kind == "gray":
                ax.imshow(
                    plane, cmap="gray", vmin=win[0], vmax=win[1], aspect=_aspect(spacing, axis)
                )
            elif kind == "diff":
                ax.imshow(plane, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect=_aspect(spacing, axis))
            elif kind == "mask":
                ax.imshow(
                    base, cmap="gray", vmin=win[0], vmax=win[1], aspect=_aspect(spacing, axis)
                )
                if plane.max() > 0:
                    ax.contour(plane, levels=[0.5], colors="yellow", linewidths=0.8)
            else:
                ax.imshow(
                    blend_rgb(base, plane, window=win, limit=lim), aspect=_aspect(spacing, axis)
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)


@register_writer("png")
class PngWriter(Writer):
    """PNG: three planes through the attribution peak, and the input / (anomaly mask) /
    baseline / difference / attribution panel."""

    def write(self, result: StudyOutput, stage: Stage) -> dict[str, Any]:
        vol = result.volume
        name = vol.name
        exp = result.explanation
        outputs: dict[str, Any] = {}
        fname = f"{name}_montage.png"
        title = (
            f"{name}: {exp.method}, baseline {result.baseline_info.get('name', '')}; "
            f"f(x)={float(exp.f_input[0]):.3f}, f(x')={float(exp.f_baseline[0]):.3f}, "
            f"delta={float(exp.convergence_delta[0]):+.2e}"
        )
        montage(
            vol.array[0],
            result.display,
            vol.affine,
            stage(fname),
            title=title,
            colorbar_label="attribution (target units per voxel)",
        )
        outputs["montage_png"] = fname
        if result.baseline_source is not None:
            pname = f"{name}_panel.png"
            anatomy, base = result.anatomy, result.baseline_source
            columns = [("input", anatomy, "gray")]
            masks = getattr(result, "baseline_masks", None) or {}
            if "anomaly_mask" in masks:
                # where the baseline changed the anatomy (empty: it found nothing)
                found = masks["anomaly_mask"].astype(np.float32)
                columns.append(("anomaly mask", found, "mask"))
            columns += [
                (f"baseline: {result.config.baseline}", base, "gray"),
                ("input - baseline", anatomy - base, "diff"),
                ("attribution", result.display, "attr"),
            ]
            comparison_panel(
                columns,
                vol.affine,
                stage(pname),
                anatomy=anatomy,
                peak=peak_index(result.display),
                title=(
                    f"{name}: {exp.method}; f(x)={float(exp.f_input[0]):.3f}, "
                    f"f(x')={float(exp.f_baseline[0]):.3f}"
                ),
            )
            outputs["panel_png"] = pname
        outputs["mapping"] = {"png": str(result.config.display_mapping)}
        return outputs
