"""Reading a DICOM series into a :class:`~medattr.Volume`, robustly.

The series is found in a directory (searched recursively) or a list of files, chosen by
SeriesInstanceUID or a description pattern, and checked before any voxel is trusted: slices
are ordered by their position along the slice normal (not by InstanceNumber); missing slices,
uneven gaps, duplicate positions, gantry tilt or shear, and mixed orientations or matrix sizes
are refused with a message saying what is wrong, unless resampling is asked for explicitly.
Rescale slope and intercept are applied. Enhanced (multi-frame) CT and MR are read frame by
frame from their functional groups. Compressed transfer syntaxes are decoded by pydicom's
pixel-data plugins (pylibjpeg, python-gdcm).

DICOM patient coordinates are LPS; the returned volume's affine is RAS (the NIfTI and MONAI
convention): ``affine = diag(-1, -1, 1, 1) @ affine_lps``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medattr.affines import voxel_sizes
from medattr.errors import DicomSeriesError
from medattr.io._dicom_geometry import geometry_problems, plane_name, sort_slices, stack
from medattr.io._dicom_geometry import resample as resample_grid
from medattr.io._dicom_scan import SeriesGroup, collect_files, group_series, read_headers
from medattr.io._dicom_slices import SliceInfo, load_pixels, slices_of_file
from medattr.io._dicom_values import repair_header_values
from medattr.volume import Volume, VolumeSource

__all__ = [
    "LPS_TO_RAS",
    "DicomReference",
    "DicomSeriesSummary",
    "DicomSlice",
    "list_dicom_series",
    "read_dicom_series",
]

logger = logging.getLogger("medattr.io.dicom")

#: Flips x and y: LPS <-> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class DicomSlice:
    """A source image plane: which instance (and frame) it is and where it lies (LPS, mm)."""

    sop_instance_uid: str
    sop_class_uid: str
    frame_number: int | None
    position: tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class DicomReference:
    """What the DICOM writers need to know about the series a volume was read from.

    Attributes
    ----------
    study_instance_uid, series_instance_uid, frame_of_reference_uid
        UIDs of the source (the frame of reference is ``None`` if the source lacks one).
    series_number, modality, series_description
        Descriptive attributes of the source series.
    slices
        The source planes the volume was built from, ascending along the slice normal.
    datasets
        Headers of the source files (pixel data removed), in the order of ``slices``; these
        are the ``source_images`` handed to highdicom.
    affine_lps
        ``(4, 4)`` map from voxel ``(i, j, k)`` (column, row, slice) to LPS mm.
    resampled
        ``True`` if the grid was interpolated and no longer coincides with ``slices``.
    slice_thickness
        The source's nominal slice thickness in mm (SliceThickness, from the functional
        groups for Enhanced images), if given.
    header_repairs
        What was repaired in ``datasets`` (malformed dates, times, person names; by keyword,
        never by value) so that the writers can copy them; listed in the manifest's warnings.
    """

    study_instance_uid: str
    series_instance_uid: str
    frame_of_reference_uid: str | None
    series_number: int | None
    modality: str
    series_description: str
    slices: tuple[DicomSlice, ...]
    datasets: tuple[Dataset, ...] = field(repr=False)
    affine_lps: np.ndarray = field(repr=False)
    resampled: bool = False
    slice_thickness: float | None = None
    header_repairs: tuple[str, ...] = ()

    @property
    def affine_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.affine_lps

    def grid_positions(self, n_slices: int) -> np.ndarray:
        """LPS position (mm) of the first voxel of each of ``n_slices`` grid planes, ``(K, 3)``."""
        k = np.arange(n_slices, dtype=np.float64)
        return self.affine_lps[:3, 3][None, :] + k[:, None] * self.affine_lps[:3, 2][None, :]

    def nearest_slice(self, position: np.ndarray) -> DicomSlice:
        """The source plane closest (along the normal) to an LPS ``position``."""
        n = self.affine_lps[:3, 2] / np.linalg.norm(self.affine_lps[:3, 2])
        d = np.array([np.dot(s.position, n) for s in self.slices])
        return self.slices[int(np.argmin(np.abs(d - float(np.dot(position, n)))))]


@dataclass(frozen=True)
class DicomSeriesSummary:
    """A series found by :func:`list_dicom_series`; carries no patient identifiers."""

    series_instance_uid: str
    series_number: int | None
    modality: str
    description: str
    n_files: int
    n_frames: int
    problem: str | None
    text: str = field(default="", repr=False, compare=False)

    @property
    def readable(self) -> bool:
        """Whether the series can be read as a scalar volume."""
        return self.problem is None

    def __str__(self) -> str:
        return self.text


def _summary(group: SeriesGroup) -> DicomSeriesSummary:
    return DicomSeriesSummary(
        series_instance_uid=group.series_uid,
        series_number=group.number,
        modality=group.modality,
        description=group.description,
        n_files=len(group.files),
        n_frames=group.n_frames,
        problem=group.volume_problem(),
        text=group.describe(),
    )


def list_dicom_series(source: Source) -> list[DicomSeriesSummary]:
    """The series under ``source`` (a directory, searched recursively, or a list of files).

    Examples
    --------
    >>> for s in list_dicom_series("study/"):  # doctest: +SKIP
    ...     print(s)
    series 3 (CT 'Abdomen 1.0', 312 file(s), 312 frame(s), SeriesInstanceUID=1.2....)
    """
    root, files = collect_files(source)
    return [_summary(g) for g in group_series(read_headers(root, files))]


def _listing(groups: Sequence[SeriesGroup]) -> str:
    return "\n".join(f"  - {g.describe()}" for g in groups)


def _choose(
    groups: list[SeriesGroup], root: Path, series_uid: str | None, series_description: str | None
) -> SeriesGroup:
    images = [g for g in groups if g.volume_problem() is None]
    if series_uid is not None:
        chosen = [g for g in groups if g.series_uid == series_uid]
        if not chosen:
            raise DicomSeriesError(
                f"no series with SeriesInstanceUID {series_uid}; found:\n{_listing(groups)}", root
            )
        group = chosen[0]
    elif series_description is not None:
        try:
            pattern = re.compile(series_description, re.IGNORECASE)
        except re.error as exc:
            raise DicomSeriesError(
                f"series_description {series_description!r} is not a valid regular expression: "
                f"{exc}",
                root,
            ) from exc
        matches = [g for g in images if pattern.search(g.description)]
        if len(matches) != 1:
            what = "no image series" if not matches else f"{len(matches)} image series"
            shown = matches or groups
            raise DicomSeriesError(
                f"{what} whose SeriesDescription matches {series_description!r}; "
                f"{'they are' if matches else 'found'}:\n{_listing(shown)}",
                root,
            )
        group = matches[0]
    else:
        if not images:
            raise DicomSeriesError(f"no image series to read; found:\n{_listing(groups)}", root)
        if len(images) > 1:
            raise DicomSeriesError(
                f"{len(images)} image series found; choose one by SeriesInstanceUID or "
                f"series description (CLI: --series-uid / --series-description):\n"
                f"{_listing(images)}",
                root,
            )
        group = images[0]
    problem = group.volume_problem()
    if problem is not None:
        raise DicomSeriesError(f"cannot read {group.describe()}", root)
    return group


def _safe_name(group: SeriesGroup) -> str:
    modality = re.sub(r"[^A-Za-z0-9]", "", group.modality) or "DICOM"
    if group.number is not None:
        return f"{modality}_series{group.number}"
    return f"{modality}_series_{re.sub(r'[^0-9]', '', group.series_uid)[-8:]}"


def _frame_of_reference(slices: list[SliceInfo], root: Path) -> str | None:
    uids = {str(s.file.dataset.get("FrameOfReferenceUID", "") or "") for s in slices}
    if len(uids) > 1:
        raise DicomSeriesError(
            f"slices belong to {len(uids)} different frames of reference (FrameOfReferenceUID), "
            "so they cannot be put on one grid",
            root,
        )
    uid = uids.pop()
    return uid or None


def read_dicom_series(
    source: Source,
    *,
    series_uid: str | None = None,
    series_description: str | None = None,
    resample: bool = False,
) -> Volume:
    """Read one DICOM image series into a volume with a RAS affine.

    Parameters
    ----------
    source
        A directory (searched recursively), one file, or a sequence of files.
    series_uid
        SeriesInstanceUID of the series to read.
    series_description
        Regular expression searched (case-insensitively) in SeriesDescription; it must match
        exactly one image series. Used when ``series_uid`` is not given.
    resample
        Interpolate an irregular series (gaps, uneven spacing, duplicates, tilt or shear,
        mixed matrices or orientations) onto a regular grid instead of refusing it.

    Returns
    -------
    Volume
        ``array`` of shape ``(1, I, J, K)`` (column, row, slice), float32 after rescale;
        ``affine`` RAS in mm; ``source.dicom`` a :class:`DicomReference`.

    Raises
    ------
    DicomSeriesError
        With the path and the problem: nothing readable, several series and no choice,
        corrupt or truncated files, files without pixel data, or an irregular series.

    Examples
    --------
    >>> vol = read_dicom_series("study/CT")  # doctest: +SKIP
    >>> vol.array.shape, vol.source.name  # doctest: +SKIP
    ((1, 512, 512, 300), 'CT_series3')
    """
    root, files = collect_files(source)
    groups = group_series(read_headers(root, files))
    group = _choose(groups, root, series_uid, series_description)
    slices = sort_slices([s for f in group.files for s in slices_of_file(f, root)])
    frame_of_reference = _frame_of_reference(slices, root)
    problems = geometry_problems(slices)
    if problems and not resample:
        raise DicomSeriesError(
            "irregular series: " + "; ".join(problems) + ". Choose a consistent series, or "
            "ask for interpolation onto a regular grid (resample=True, CLI: --resample)",
            root,
        )
    pixels = load_pixels(slices, root)
    if problems:
        logger.warning("resampling series %s: %s", group.number, "; ".join(problems))
        grid, keep = resample_grid(slices, pixels)
        used = [slices[i] for i in keep]
        used.sort(key=lambda s: float(np.dot(s.position, grid.affine_lps[:3, 2])))
    else:
        grid, used = stack(slices, pixels), slices
    datasets: list[Dataset] = []
    seen: set[int] = set()
    for s in used:
        if id(s.file) not in seen:
            seen.add(id(s.file))
            datasets.append(s.file.dataset)
    repairs = repair_header_values(datasets)  # in memory only: the files are never touched
    for note in repairs:
        logger.warning("%s", note)
    first = group.first
    ref = DicomReference(
        study_instance_uid=str(first.StudyInstanceUID),
        series_instance_uid=group.series_uid,
        frame_of_reference_uid=frame_of_reference,
        series_number=group.number,
        modality=group.modality,
        series_description=group.description,
        slices=tuple(
            DicomSlice(
                s.sop_instance_uid,
                str(s.file.dataset.SOPClassUID),
                s.frame,
                (float(s.position[0]), float(s.position[1]), float(s.position[2])),
            )
            for s in used
        ),
        datasets=tuple(datasets),
        affine_lps=grid.affine_lps,
        resampled=bool(problems),
        slice_thickness=used[0].thickness,
        header_repairs=repairs,
    )
    shape = grid.data.shape
    spacing = np.asarray(voxel_sizes(grid.affine_lps))
    logger.info(
        "read series %s (%s, %s): %dx%dx%d voxels of %.3gx%.3gx%.3g mm%s",
        group.number,
        group.modality,
        plane_name(used[0].orientation),
        *shape,
        *spacing,
        ", resampled" if problems else "",
    )
    if root.is_file() and len(used) == 1:
        logger.warning(
            "read a single 2D slice from one file; pass the series directory (or "
            "all its files) to read the whole series"
        )
    source_info = VolumeSource(path=str(root), format="dicom", name=_safe_name(group), dicom=ref)
    return Volume(grid.data[None], LPS_TO_RAS @ grid.affine_lps, source=source_info)
