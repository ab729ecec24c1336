"""Reading volumes and writing attribution outputs with their geometry intact.

Readers: NIfTI and DICOM series (:func:`read_volume`). Writers: one registered class per
``--format`` name (:func:`register_writer`, :mod:`medattr.io.writers`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from medattr._fs import atomic_path, atomic_write_bytes, atomic_write_text, staged_directory
from medattr.errors import InputError, VolumeError
from medattr.io.channels import ChannelSource, read_channels, read_study
from medattr.io.dicom import (
    DicomReference,
    DicomSeriesSummary,
    DicomSlice,
    list_dicom_series,
    read_dicom_series,
)
from medattr.io.dicom_derived import AlgorithmInfo
from medattr.io.dicom_pm import display_scale, write_dicom_parametric_map
from medattr.io.dicom_sc import write_dicom_rgb
from medattr.io.dicom_seg import AttributionSign, top_percent_mask, write_dicom_seg
from medattr.io.nifti import is_nifti_path, nifti_stem, read_nifti, write_nifti
from medattr.io.windows import WINDOW_PRESETS, DisplayWindow, parse_window, resolve_window
from medattr.io.writers import (
    Writer,
    get_writer,
    register_writer,
    writer_names,
)
from medattr.volume import Volume

__all__ = [
    "WINDOW_PRESETS",
    "AlgorithmInfo",
    "AttributionSign",
    "ChannelSource",
    "DicomReference",
    "DicomSeriesSummary",
    "DicomSlice",
    "DisplayWindow",
    "Writer",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "display_scale",
    "get_writer",
    "is_nifti_path",
    "list_dicom_series",
    "nifti_stem",
    "parse_window",
    "read_channels",
    "read_dicom_series",
    "read_nifti",
    "read_study",
    "read_volume",
    "register_writer",
    "resolve_window",
    "staged_directory",
    "top_percent_mask",
    "write_dicom_parametric_map",
    "write_dicom_rgb",
    "write_dicom_seg",
    "write_nifti",
    "writer_names",
]


def read_volume(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series_uid: str | None = None,
    series_description: str | None = None,
    resample: bool = False,
) -> Volume:
    """Read a NIfTI file, or a DICOM series from a directory, a file or a list of files.

    The DICOM options are passed to :func:`read_dicom_series`; giving a series choice for a
    NIfTI file is an error (``resample`` is ignored for NIfTI, which is regular by
    construction).

    Examples
    --------
    >>> vol = read_volume("study.nii.gz")  # doctest: +SKIP
    >>> vol = read_volume("dicom_study/", series_description="axial")  # doctest: +SKIP
    """
    if isinstance(path, str | os.PathLike):
        p = Path(path)
        if is_nifti_path(p):
            if series_uid is not None or series_description is not None:
                raise InputError(
                    "series_uid / series_description select a DICOM series, but the input is "
                    "a NIfTI file",
                    p,
                )
            return read_nifti(p)
        if not p.exists():
            raise VolumeError("not found", p)
    return read_dicom_series(
        path, series_uid=series_uid, series_description=series_description, resample=resample
    )
