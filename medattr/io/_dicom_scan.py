"""Finding DICOM files, reading their headers and grouping them into series.

Headers are read with large values deferred, so scanning a study touches only the first few
kilobytes of each file; pixel data is decoded later, for the chosen series only. Nothing here
logs or raises with patient identifiers: series are described by number, modality,
description and UID.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from medattr.errors import DicomSeriesError
from medattr.phi import remember_identifiers

__all__: list[str] = []

logger = logging.getLogger("medattr.io.dicom")

#: Elements that can hold the pixels of an image.
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Storage classes that carry pixels but are not scalar images of the patient.
_NON_VOLUME_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "segmentation",
    "1.2.840.10008.5.1.4.1.1.481.3": "RT structure set",
}

_DEFER = 2048  # bytes: longer values (pixel data, big private blobs) are read on demand


@dataclass
class DicomFile:
    """One readable DICOM file: where it is and its header (pixel data deferred)."""

    path: Path
    dataset: Dataset

    @property
    def has_pixels(self) -> bool:
        return any(k in self.dataset for k in PIXEL_KEYWORDS)

    @property
    def n_frames(self) -> int:
        try:
            return max(int(self.dataset.get("NumberOfFrames", 1) or 1), 1)
        except (TypeError, ValueError):
            return 1


@dataclass
class SeriesGroup:
    """The files of one series, plus what is needed to describe it without identifiers."""

    series_uid: str
    files: list[DicomFile]

    @property
    def first(self) -> Dataset:
        return self.files[0].dataset

    @property
    def number(self) -> int | None:
        value = self.first.get("SeriesNumber")
        try:
            return None if value in (None, "") else int(value)
        except (TypeError, ValueError):
            return None

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "")

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "") or "")

    @property
    def n_frames(self) -> int:
        return sum(f.n_frames for f in self.files if f.has_pixels)

    def volume_problem(self) -> str | None:
        """Why this series cannot be read as a scalar volume, or ``None`` if it can."""
        if not any(f.has_pixels for f in self.files):
            return "no pixel data (not an image series)"
        sop = str(self.first.get("SOPClassUID", ""))
        if sop in _NON_VOLUME_SOP_CLASSES:
            return f"a {_NON_VOLUME_SOP_CLASSES[sop]}, not an image"
        if self.modality in ("SEG", "RTSTRUCT", "SR", "PR", "KO"):
            return f"modality {self.modality} is not an image"
        samples = self.first.get("SamplesPerPixel", 1)
        if samples not in (None, "", 1):
            return f"colour image ({samples} samples per pixel), not a scalar volume"
        return None

    def describe(self) -> str:
        """One line naming the series without patient identifiers."""
        num = "?" if self.number is None else str(self.number)
        desc = f" {self.description!r}" if self.description else ""
        problem = self.volume_problem()
        tail = f"; not readable: {problem}" if problem else ""
        return (
            f"series {num} ({self.modality or 'unknown modality'}{desc}, {len(self.files)} "
            f"file(s), {self.n_frames} frame(s), SeriesInstanceUID={self.series_uid}{tail})"
        )


def collect_files(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> tuple[Path, list[Path]]:
    """Expand ``source`` (a directory searched recursively, a file, or a list of files).

    Returns the path to name in messages and the files to try, sorted for reproducibility.
    """
    if isinstance(source, str | os.PathLike):
        root = Path(source)
        if not root.exists():
            raise DicomSeriesError("not found", root)
        if root.is_file() and root.name.upper() == "DICOMDIR":
            root = root.parent  # a media index: read the directory it indexes
        elif root.is_file():
            return root, [root]
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise DicomSeriesError("directory contains no files", root)
        return root, files
    paths = [Path(p) for p in source]
    if not paths:
        raise DicomSeriesError("empty list of DICOM files")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DicomSeriesError(f"{len(missing)} listed file(s) not found, first: {missing[0]}")
    common = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    return common, sorted(paths)


def _looks_like_dicom(path: Path) -> bool:
    """Part 10 file: 128-byte preamble then ``DICM``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _truncated(ds: Dataset, path: Path) -> bool:
    """Whether the file ends before its last data element does.

    pydicom stops quietly at the end of a file, so a file cut inside its pixel data, or in
    the middle of an element, parses without error. Walking the top-level element headers
    (values are skipped, not read) shows whether the last element runs past the end of the
    file. A file cut exactly between elements parses as a shorter dataset; the checks on
    SeriesInstanceUID and pixel data catch those.
    """
    from pydicom.filereader import data_element_generator

    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    group_length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    if tsyntax is None or group_length is None or tsyntax.is_deflated:
        return len(ds) == 0  # cannot walk it; an empty dataset is clearly broken
    start = 128 + 4 + 12 + int(group_length)
    size = path.stat().st_size
    end = start
    try:
        with open(path, "rb") as fp:
            fp.seek(start)
            for elem in data_element_generator(
                fp, tsyntax.is_implicit_VR, tsyntax.is_little_endian, defer_size=1
            ):
                length = getattr(elem, "length", None)
                tell = getattr(elem, "value_tell", None)
                if length is None or tell is None or length == 0xFFFFFFFF:
                    end = fp.tell()
                else:
                    end = int(tell) + int(length)
    except (EOFError, OSError, ValueError, KeyError, TypeError, NotImplementedError):
        return True
    # an element that claims to run past the end of the file; a few stray trailing bytes
    # (shorter than an element header) are tolerated, as other readers do
    return end > size


def read_headers(root: Path, files: Iterable[Path]) -> list[DicomFile]:
    """Headers of every DICOM file among ``files``; other files are skipped.

    Files without the Part 10 ``DICM`` marker (READMEs, thumbnails, ``DICOMDIR`` indexes are
    skipped by SOP class below) are ignored. A file with the marker that cannot be parsed is
    an error: silently dropping it would turn a corrupt slice into a gap.
    """
    out: list[DicomFile] = []
    skipped = 0
    for path in files:
        if not _looks_like_dicom(path):
            skipped += 1
            continue
        try:
            ds = pydicom.dcmread(path, defer_size=_DEFER)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            name = relative_name(path, root)
            raise DicomSeriesError(
                f"{name} is a corrupt or truncated DICOM file ({type(exc).__name__})", root
            ) from exc
        remember_identifiers(ds)  # redacted from every message from now on
        meta = getattr(ds, "file_meta", None)
        sop = str(
            ds.get("SOPClassUID", "")
            or (meta.get("MediaStorageSOPClassUID", "") if meta is not None else "")
        )
        if sop == "1.2.840.10008.1.3.10":  # Media Storage Directory (DICOMDIR)
            skipped += 1
            continue
        if not sop or _truncated(ds, path):
            raise DicomSeriesError(
                f"{relative_name(path, root)} is a truncated or corrupt DICOM file (it ends "
                "inside a data element or lacks its SOP Class UID)",
                root,
            )
        if "SeriesInstanceUID" not in ds:
            composite = any(k in ds for k in ("StudyInstanceUID", "PatientID", "Modality"))
            if composite or "Image" in getattr(UID(sop), "name", ""):
                raise DicomSeriesError(
                    f"{relative_name(path, root)} lacks its SeriesInstanceUID (truncated or "
                    "corrupt file)",
                    root,
                )
            skipped += 1  # not a composite object (hanging protocol, palette, ...)
            continue
        out.append(DicomFile(path, ds))
    if skipped:
        logger.debug("skipped %d non-DICOM or non-series file(s) under %s", skipped, root)
    if not out:
        raise DicomSeriesError("no DICOM files found (Part 10 files with a 'DICM' marker)", root)
    return out


def group_series(files: Iterable[DicomFile]) -> list[SeriesGroup]:
    """Files grouped by SeriesInstanceUID, ordered by series number then UID."""
    groups: dict[str, SeriesGroup] = {}
    for f in files:
        uid = str(f.dataset.SeriesInstanceUID)
        groups.setdefault(uid, SeriesGroup(uid, [])).files.append(f)
    return sorted(
        groups.values(),
        key=lambda g: (g.number is None, g.number if g.number is not None else 0, g.series_uid),
    )


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` for messages (the bare name if ``path`` is ``root``)."""
    try:
        rel = path.relative_to(root)
        return str(rel) if str(rel) != "." else path.name
    except ValueError:
        return str(path)
