"""The DICOM series a MONAI Deploy series selector hands over, as files medattr can read.

``DICOMSeriesSelectorOperator`` emits a list of ``StudySelectedSeries``; each holds
``SelectedSeries`` whose ``series`` lists SOP instances wrapping pydicom datasets. The datasets
that ``DICOMDataLoaderOperator`` loads remember the file they came from, so medattr reads those
files again with its own reader (ordering along the slice normal, refusing gaps and tilt);
datasets that exist only in memory are written to a temporary folder first. Nothing here imports
the SDK: the objects are used through the attributes named above.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from medattr.errors import InputError
from medattr.phi import exception_text

__all__ = ["SeriesInput", "selected_series_inputs", "series_files"]


@dataclass(frozen=True)
class SeriesInput:
    """One selected DICOM series, ready to be read.

    Attributes
    ----------
    selection_name
        The name of the selector rule that chose it (the SeriesInstanceUID if unnamed).
    series_instance_uid, study_instance_uid, modality
        Identify the series (no patient identifiers).
    files
        Files holding its instances.
    datasets
        Instances that exist only in memory (no readable source file).
    """

    selection_name: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    files: tuple[Path, ...] = ()
    datasets: tuple[Dataset, ...] = field(default=(), repr=False)

    @property
    def n_instances(self) -> int:
        return len(self.files) + len(self.datasets)


def _expected(what: str, got: Any) -> InputError:
    return InputError(
        f"expected a list of StudySelectedSeries (the output 'study_selected_series_list' of "
        f"DICOMSeriesSelectorOperator); {what} is a {type(got).__name__}"
    )


def selected_series_inputs(study_selected_series_list: Any) -> list[SeriesInput]:
    """The series chosen by a series selector, each once, in selection order.

    Parameters
    ----------
    study_selected_series_list
        What ``DICOMSeriesSelectorOperator`` emits on ``study_selected_series_list``: a list of
        ``StudySelectedSeries``. ``None`` counts as an empty list.

    Returns
    -------
    list of SeriesInput
        One per distinct SeriesInstanceUID (a series chosen by two rules is explained once,
        under the first rule's name).

    Raises
    ------
    InputError
        If the argument does not have the shape of the selector's output.

    Examples
    --------
    >>> selected_series_inputs([])
    []
    """
    if study_selected_series_list is None:
        return []
    if isinstance(study_selected_series_list, str | bytes) or not isinstance(
        study_selected_series_list, Sequence
    ):
        raise _expected("the input", study_selected_series_list)
    out: list[SeriesInput] = []
    seen: set[str] = set()
    for study_selection in study_selected_series_list:
        selected = getattr(study_selection, "selected_series", None)
        study = getattr(study_selection, "study", None)
        if selected is None:
            raise _expected("an item", study_selection)
        study_uid = str(getattr(study, "StudyInstanceUID", "") or "")
        for item in selected:
            series = getattr(item, "series", None)
            if series is None or not hasattr(series, "get_sop_instances"):
                raise _expected("a selected series", item)
            uid = str(series.SeriesInstanceUID)
            if uid in seen:
                continue
            seen.add(uid)
            files: list[Path] = []
            memory: list[Dataset] = []
            for instance in series.get_sop_instances():
                ds = instance.get_native_sop_instance()
                name = getattr(ds, "filename", None)
                if isinstance(name, str | os.PathLike) and Path(name).is_file():
                    files.append(Path(name))
                else:
                    memory.append(ds)
            out.append(
                SeriesInput(
                    selection_name=str(getattr(item, "selection_name", "") or uid),
                    series_instance_uid=uid,
                    study_instance_uid=study_uid,
                    modality=str(getattr(series, "Modality", "") or ""),
                    files=tuple(files),
                    datasets=tuple(memory),
                )
            )
    return out


@contextmanager
def series_files(series: SeriesInput) -> Iterator[list[Path]]:
    """Yield paths of all instances of ``series``, writing in-memory ones to a temporary folder.

    The temporary copies (made from copies of the datasets, which are left untouched) are
    removed when the block ends; medattr's reader keeps what it needs in memory.
    """
    if not series.datasets:
        yield list(series.files)
        return
    with tempfile.TemporaryDirectory(prefix="medattr-series-") as tmp:
        paths = list(series.files)
        for i, ds in enumerate(series.datasets):
            path = Path(tmp) / f"instance_{i:05d}.dcm"
            _save_copy(ds, path)
            paths.append(path)
        yield paths


def _save_copy(ds: Dataset, path: Path) -> None:
    ds = copy.deepcopy(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        meta = FileMetaDataset(meta) if meta is not None else FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
    if "MediaStorageSOPClassUID" not in ds.file_meta and "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in ds.file_meta and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    try:
        ds.save_as(path, enforce_file_format=True)
    except Exception as exc:  # pydicom raises ValueError/TypeError/AttributeError
        raise InputError(
            f"an in-memory DICOM instance of the selected series cannot be written for "
            f"reading ({exception_text(exc)})"
        ) from exc
