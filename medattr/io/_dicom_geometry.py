"""Slice order, consistency checks, the voxel-to-patient affine and explicit resampling.

Conventions: DICOM patient coordinates are LPS (mm). The voxel grid is ``(i, j, k)`` =
(column, row, slice): ``i`` runs along the row direction cosine (first three values of
ImageOrientationPatient) in steps of the column spacing (``PixelSpacing[1]``), ``j`` along the
column direction cosine in steps of the row spacing (``PixelSpacing[0]``), and ``k`` along the
slice normal ``row x column``, slices sorted by their position along that normal (never by
InstanceNumber).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np

from medattr.io._dicom_slices import SliceInfo

__all__: list[str] = []

logger = logging.getLogger("medattr.io.dicom")

ORIENTATION_TOL = 1e-3  # max difference between direction cosines treated as equal
DUPLICATE_TOL = 1e-2  # mm along the normal: closer slices are the same position
SPACING_REL_TOL = 0.02  # a gap may differ from the typical gap by this fraction ...
SPACING_ABS_TOL = 0.011  # ... or by this many mm (positions rounded to 0.01 mm)
TILT_TOL = 0.1  # in-plane drift of slice origins, as a fraction of the pixel spacing


@dataclass
class Grid:
    """A regular voxel grid: the (i, j, k) -> LPS affine and the voxel data on it."""

    data: np.ndarray  # (I, J, K) float32
    affine_lps: np.ndarray  # (4, 4)


def plane_name(orientation: np.ndarray) -> str:
    """``axial`` / ``coronal`` / ``sagittal`` (nearest), or ``oblique``."""
    n = np.abs(np.cross(orientation[:3], orientation[3:]))
    axis = int(np.argmax(n))
    name = ("sagittal", "coronal", "axial")[axis]
    return name if n[axis] > 0.99 else f"oblique (nearest {name})"


def _orientation_groups(slices: list[SliceInfo]) -> list[list[int]]:
    groups: list[list[int]] = []
    for idx, s in enumerate(slices):
        for g in groups:
            if np.max(np.abs(slices[g[0]].orientation - s.orientation)) <= ORIENTATION_TOL:
                g.append(idx)
                break
        else:
            groups.append([idx])
    return sorted(groups, key=len, reverse=True)


def sort_slices(slices: list[SliceInfo]) -> list[SliceInfo]:
    """Slices ordered by position along the normal of the most common orientation."""
    main = slices[_orientation_groups(slices)[0][0]]
    n = main.normal()
    return sorted(slices, key=lambda s: (float(np.dot(s.position, n)), s.instance_number))


def _fmt_counts(counter: Counter) -> str:
    return ", ".join(f"{n} slice(s) {key}" for key, n in counter.most_common())


def geometry_problems(slices: list[SliceInfo]) -> list[str]:
    """Everything that stops ``slices`` (sorted) from forming a regular grid, in words."""
    problems = []
    sizes = Counter(f"{s.rows}x{s.columns}" for s in slices)
    if len(sizes) > 1:
        problems.append(f"mixed image sizes (rows x columns): {_fmt_counts(sizes)}")
    spacings = Counter(f"{s.spacing[0]:.4g}x{s.spacing[1]:.4g} mm" for s in slices)
    if len(spacings) > 1:
        problems.append(f"mixed pixel spacings: {_fmt_counts(spacings)}")
    groups = _orientation_groups(slices)
    if len(groups) > 1:
        desc = ", ".join(
            f"{len(g)} slice(s) {plane_name(slices[g[0]].orientation)} "
            f"{np.round(slices[g[0]].orientation, 3).tolist()}"
            for g in groups
        )
        problems.append(f"mixed slice orientations: {desc}")
    main = [slices[i] for i in sorted(groups[0])]
    if len(main) < 2:
        return problems
    n = main[0].normal()
    d = np.array([np.dot(s.position, n) for s in main])
    diffs = np.diff(d)
    dups = diffs < DUPLICATE_TOL
    if dups.any():
        at = ", ".join(f"{d[i]:.2f}" for i in np.flatnonzero(dups)[:5])
        problems.append(
            f"{int(dups.sum())} duplicate slice position(s) (at {at} mm along the slice normal)"
        )
    offsets = np.array([s.position - main[0].position for s in main])
    inplane = offsets - np.outer(offsets @ n, n)
    drift = float(np.max(np.linalg.norm(inplane, axis=1)))
    if drift > TILT_TOL * min(main[0].spacing):
        tilt = main[0].file.dataset.get("GantryDetectorTilt")
        tilt_txt = f", GantryDetectorTilt {float(tilt):g} deg" if tilt not in (None, "") else ""
        problems.append(
            f"gantry tilt or sheared stack: slice origins drift {drift:.2f} mm sideways from the "
            f"slice normal over {len(main)} slices{tilt_txt}"
        )
    real = diffs[~dups]
    if real.size:
        step = float(np.median(real))
        tol = max(SPACING_REL_TOL * step, SPACING_ABS_TOL)
        bad = np.flatnonzero(~dups & (np.abs(diffs - step) > tol))
        if bad.size:
            worst = bad[np.argmax(np.abs(diffs[bad] - step))]
            kind = "missing slices" if diffs[worst] > step else "uneven spacing"
            problems.append(
                f"{kind}: {bad.size} gap(s) differ from the typical {step:.3f} mm spacing, "
                f"largest {diffs[worst]:.3f} mm between slices at {d[worst]:.2f} and "
                f"{d[worst + 1]:.2f} mm along the slice normal"
            )
    return problems


def _affine(
    u: np.ndarray,
    v: np.ndarray,
    n: np.ndarray,
    spacing: tuple[float, float],
    step: float,
    origin: np.ndarray,
) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, 0] = u * spacing[1]
    aff[:3, 1] = v * spacing[0]
    aff[:3, 2] = n * step
    aff[:3, 3] = origin
    return aff


def _fallback_step(s: SliceInfo) -> float:
    ds = s.file.dataset
    for kw in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(kw)
        try:
            if value not in (None, "") and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return s.thickness if s.thickness else 1.0


def stack(slices: list[SliceInfo], pixels: list[np.ndarray]) -> Grid:
    """Regular slices (``geometry_problems`` found nothing) stacked into an (I, J, K) grid."""
    first = slices[0]
    u, v = first.orientation[:3], first.orientation[3:]
    n = first.normal()
    if len(slices) > 1:
        d = np.array([np.dot(s.position, n) for s in slices])
        step = float((d[-1] - d[0]) / (len(slices) - 1))
    else:
        step = _fallback_step(first)
    data = np.stack(pixels, axis=-1).transpose(1, 0, 2)  # (rows, cols, K) -> (cols, rows, K)
    return Grid(
        np.ascontiguousarray(data, dtype=np.float32),
        _affine(u, v, n, first.spacing, step, first.position),
    )


def resample(slices: list[SliceInfo], pixels: list[np.ndarray]) -> tuple[Grid, list[int]]:
    """Irregular slices interpolated (linearly) onto a regular grid.

    The grid takes the most common orientation, the matrix and pixel spacing of the middle
    slice of that orientation, and the typical (median) gap along the normal. Each slice is
    first resampled in-plane onto the grid's rows and columns at its own position (which
    undoes gantry tilt, shear and differing matrices); slices at the same position are
    averaged; the stack is then interpolated along the normal. Slices of other orientations
    are left out. Returns the grid and the indices (into ``slices``) that contributed.
    """
    from scipy import ndimage

    groups = _orientation_groups(slices)
    keep = sorted(groups[0])
    if len(groups) > 1:
        logger.warning(
            "resampling: left out %d slice(s) of other orientations", len(slices) - len(keep)
        )
    main = [slices[i] for i in keep]
    shapes = Counter((s.rows, s.columns, s.spacing) for s in main)
    ref_shape = shapes.most_common(1)[0][0]
    candidates = [s for s in main if (s.rows, s.columns, s.spacing) == ref_shape]
    ref = candidates[len(candidates) // 2]
    u, v = ref.orientation[:3], ref.orientation[3:]
    n = ref.normal()
    d_ref = float(np.dot(ref.position, n))
    fill = float(min(float(np.min(pixels[i])) for i in keep))
    planes: list[tuple[float, np.ndarray]] = []
    for i in keep:
        s, px = slices[i], pixels[i]
        delta = ref.position - s.position
        d_s = float(np.dot(s.position, n))
        matrix = np.array([ref.spacing[0] / s.spacing[0], ref.spacing[1] / s.spacing[1]])
        offset = np.array([np.dot(delta, v) / s.spacing[0], np.dot(delta, u) / s.spacing[1]])
        if (
            np.allclose(matrix, 1)
            and np.allclose(offset, 0, atol=1e-6)
            and px.shape == (ref.rows, ref.columns)
        ):
            aligned = px
        else:
            aligned = ndimage.affine_transform(
                px,
                matrix,
                offset=offset,
                output_shape=(ref.rows, ref.columns),
                order=1,
                mode="constant",
                cval=fill,
            ).astype(np.float32)
        planes.append((d_s, aligned))
    planes.sort(key=lambda p: p[0])
    # merge positions closer than DUPLICATE_TOL by averaging
    merged_d: list[float] = []
    merged: list[np.ndarray] = []
    counts: list[int] = []
    for d_s, img in planes:
        if merged_d and d_s - merged_d[-1] < DUPLICATE_TOL:
            merged[-1] = merged[-1] + img
            counts[-1] += 1
        else:
            merged_d.append(d_s)
            merged.append(img.astype(np.float64))
            counts.append(1)
    stack_ = np.stack([m / c for m, c in zip(merged, counts, strict=True)]).astype(np.float32)
    if sum(counts) > len(counts):
        logger.warning(
            "resampling: averaged %d slice(s) at duplicate positions", sum(counts) - len(counts)
        )
    d = np.asarray(merged_d)
    if len(d) > 1:
        step = float(np.median(np.diff(d)))
        nk = round((d[-1] - d[0]) / step) + 1
        z = d[0] + step * np.arange(nk)
        hi = np.clip(np.searchsorted(d, z, side="right"), 1, len(d) - 1)
        lo = hi - 1
        w = np.clip((z - d[lo]) / (d[hi] - d[lo]), 0.0, 1.0).astype(np.float32)
        out = stack_[lo] * (1 - w)[:, None, None] + stack_[hi] * w[:, None, None]
        largest = float(np.max(np.diff(d)))
        if largest > 1.5 * step:
            logger.warning(
                "resampling: interpolated across a %.2f mm gap (grid step %.3f mm)", largest, step
            )
    else:
        step = _fallback_step(ref)
        out = stack_
    origin = ref.position + (d[0] - d_ref) * n
    data = np.ascontiguousarray(out.transpose(2, 1, 0), dtype=np.float32)
    return Grid(data, _affine(u, v, n, ref.spacing, step, origin)), keep
