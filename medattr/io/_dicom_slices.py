"""Per-slice geometry and pixels of a DICOM series, for single-frame and multi-frame files.

A *slice* is one 2D frame with its plane: a classic single-frame CT/MR file is one slice; an
Enhanced (or Legacy Converted Enhanced) CT/MR file contributes one slice per frame, with its
position, orientation, pixel spacing and rescale taken from the per-frame or shared
functional groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medattr.errors import DicomSeriesError
from medattr.io._dicom_scan import PIXEL_KEYWORDS, DicomFile, relative_name
from medattr.phi import exception_text

__all__: list[str] = []


@dataclass
class SliceInfo:
    """One 2D frame and its plane in the patient (LPS) coordinate system."""

    file: DicomFile
    frame: int | None  # 1-based frame number in a multi-frame file, None for single-frame files
    position: np.ndarray  # ImagePositionPatient, (3,) mm, LPS
    orientation: np.ndarray  # ImageOrientationPatient, (6,): row cosines, column cosines
    spacing: tuple[float, float]  # PixelSpacing: (between rows, between columns) in mm
    rows: int
    columns: int
    slope: float
    intercept: float
    instance_number: int
    thickness: float | None

    @property
    def sop_instance_uid(self) -> str:
        return str(self.file.dataset.SOPInstanceUID)

    def normal(self) -> np.ndarray:
        n = np.cross(self.orientation[:3], self.orientation[3:])
        return n / np.linalg.norm(n)


def _floats(value: Any, n: int, what: str, where: str, root: Path) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DicomSeriesError(f"{where}: {what} is not numeric", root) from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise DicomSeriesError(f"{where}: {what} must have {n} finite values", root)
    return arr


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _functional(per: Dataset | None, shared: Dataset | None, seq: str) -> Dataset | None:
    """Item of functional group ``seq`` for one frame: per-frame first, then shared."""
    for group in (per, shared):
        if group is not None and seq in group and len(group[seq].value):
            return group[seq].value[0]
    return None


def _orientation(orient: np.ndarray, where: str, root: Path) -> np.ndarray:
    row, col = orient[:3], orient[3:]
    if (
        abs(np.linalg.norm(row) - 1) > 1e-2
        or abs(np.linalg.norm(col) - 1) > 1e-2
        or abs(float(np.dot(row, col))) > 1e-2
    ):
        raise DicomSeriesError(
            f"{where}: ImageOrientationPatient is not two orthogonal unit vectors", root
        )
    row = row / np.linalg.norm(row)
    col = col - np.dot(col, row) * row
    return np.concatenate([row, col / np.linalg.norm(col)])


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def slices_of_file(f: DicomFile, root: Path) -> list[SliceInfo]:
    """The slices of one file (several for a multi-frame file)."""
    ds = f.dataset
    where = relative_name(f.path, root)
    if not f.has_pixels:
        raise DicomSeriesError(
            f"{where} has no pixel data (not an image, or a file cut short)", root
        )
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if rows < 1 or columns < 1:
        raise DicomSeriesError(f"{where}: Rows/Columns missing or zero", root)
    instance = _int(ds.get("InstanceNumber"))
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced_slices(f, root, where, rows, columns, instance)
    if f.n_frames > 1:
        raise DicomSeriesError(
            f"{where} is a multi-frame file without per-frame plane positions (functional "
            "groups); only single-frame and Enhanced multi-frame images are supported",
            root,
        )
    missing = [
        k
        for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
        if k not in ds or ds[k].value in (None, "")
    ]
    if missing:
        raise DicomSeriesError(
            f"{where} lacks {', '.join(missing)}, so its place in the patient is unknown", root
        )
    position = _floats(ds.ImagePositionPatient, 3, "ImagePositionPatient", where, root)
    orient = _orientation(
        _floats(ds.ImageOrientationPatient, 6, "ImageOrientationPatient", where, root), where, root
    )
    sp = _floats(ds.PixelSpacing, 2, "PixelSpacing", where, root)
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    thickness = ds.get("SliceThickness")
    return [
        SliceInfo(
            f,
            None,
            position,
            orient,
            (float(sp[0]), float(sp[1])),
            rows,
            columns,
            slope,
            intercept,
            instance,
            float(thickness) if thickness not in (None, "") else None,
        )
    ]


def _enhanced_slices(
    f: DicomFile, root: Path, where: str, rows: int, columns: int, instance: int
) -> list[SliceInfo]:
    ds = f.dataset
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    n = f.n_frames
    if per_frame and len(per_frame) != n:
        raise DicomSeriesError(
            f"{where}: {len(per_frame)} per-frame functional group items for {n} frames", root
        )
    out = []
    for i in range(n):
        per = per_frame[i] if per_frame else None
        fw = f"{where} frame {i + 1}"
        pos = _functional(per, shared, "PlanePositionSequence")
        ori = _functional(per, shared, "PlaneOrientationSequence")
        meas = _functional(per, shared, "PixelMeasuresSequence")
        if pos is None or ori is None or meas is None or "PixelSpacing" not in meas:
            raise DicomSeriesError(
                f"{fw} lacks plane position, orientation or pixel spacing in its functional "
                "groups, so its place in the patient is unknown",
                root,
            )
        position = _floats(pos.ImagePositionPatient, 3, "ImagePositionPatient", fw, root)
        orient = _orientation(
            _floats(ori.ImageOrientationPatient, 6, "ImageOrientationPatient", fw, root), fw, root
        )
        sp = _floats(meas.PixelSpacing, 2, "PixelSpacing", fw, root)
        thickness = meas.get("SliceThickness")
        pvt = _functional(per, shared, "PixelValueTransformationSequence")
        slope = float(pvt.get("RescaleSlope", 1.0) or 1.0) if pvt is not None else 1.0
        intercept = float(pvt.get("RescaleIntercept", 0.0) or 0.0) if pvt is not None else 0.0
        out.append(
            SliceInfo(
                f,
                i + 1,
                position,
                orient,
                (float(sp[0]), float(sp[1])),
                rows,
                columns,
                slope,
                intercept,
                instance,
                float(thickness) if thickness not in (None, "") else None,
            )
        )
    return out


def _decode(f: DicomFile, root: Path) -> np.ndarray:
    """All frames of ``f`` as ``(frames, rows, columns)``, stored values (no rescale)."""
    where = relative_name(f.path, root)
    ds = f.dataset
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_name = getattr(tsyntax, "name", str(tsyntax))
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # decoders raise many types; report them all the same way
        hint = ""
        if tsyntax is not None and getattr(tsyntax, "is_compressed", False):
            hint = (
                " (compressed pixel data: check that pylibjpeg, pylibjpeg-libjpeg, "
                "pylibjpeg-openjpeg or python-gdcm are installed)"
            )
        raise DicomSeriesError(
            f"{where}: pixel data cannot be decoded, transfer syntax {ts_name}{hint}: "
            f"{exception_text(exc)}",
            root,
        ) from exc
    n = f.n_frames
    if arr.ndim == 2 and n == 1:
        arr = arr[None]
    expected = (n, int(ds.Rows), int(ds.Columns))
    if arr.shape != expected:
        raise DicomSeriesError(
            f"{where}: decoded pixel data has shape {arr.shape}, expected {expected} "
            "(frames, rows, columns)",
            root,
        )
    return arr


def load_pixels(slices: list[SliceInfo], root: Path) -> list[np.ndarray]:
    """Rescaled float32 pixels of every slice (files decoded once, then pixels dropped).

    The Modality LUT is applied (RescaleSlope/RescaleIntercept, per frame for Enhanced
    images; a ModalityLUTSequence for single-frame images that have one).
    """
    from pydicom.pixels import apply_modality_lut

    cache: dict[int, np.ndarray] = {}
    out = []
    for s in slices:
        key = id(s.file)
        if key not in cache:
            cache[key] = _decode(s.file, root)
        raw = cache[key][(s.frame or 1) - 1]
        if s.frame is None and "ModalityLUTSequence" in s.file.dataset:
            px = np.asarray(apply_modality_lut(raw, s.file.dataset), dtype=np.float32)
        else:
            px = raw.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
        if not np.all(np.isfinite(px)):
            where = relative_name(s.file.path, root)
            raise DicomSeriesError(f"{where}: pixel values are not finite after rescale", root)
        out.append(px)
    for s in slices:
        for kw in PIXEL_KEYWORDS:
            if kw in s.file.dataset:
                del s.file.dataset[kw]
    return out
