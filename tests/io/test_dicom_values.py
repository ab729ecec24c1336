"""Malformed DA/TM/DT/PN values: repaired or emptied in memory, named by keyword only, and the
three DICOM writers then copy the patient and study attributes without failing."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from medattr.io import (
    AlgorithmInfo,
    read_dicom_series,
    write_dicom_parametric_map,
    write_dicom_rgb,
    write_dicom_seg,
)
from medattr.io._dicom_values import check_value, repair_header_values


@pytest.mark.parametrize(
    ("vr", "value", "kept", "done"),
    [
        ("DA", "19700101", "19700101", None),
        ("DA", "", "", None),
        ("DA", "19700101120000", "19700101", "kept its date part"),
        ("DA", "1970-01-01", "19700101", "removed separators"),
        ("DA", "19701301", "", "left empty"),
        ("DA", "yesterday", "", "left empty"),
        ("TM", "101500.123", "101500.123", None),
        ("TM", "10:15:00", "101500", "removed separators"),
        ("TM", "9:05", "0905", "removed separators"),
        ("TM", "25h61", "", "left empty"),
        ("DT", "20240102101700", "20240102101700", None),
        ("DT", "2024-01-02T10:17:00", "20240102101700", "removed separators"),
        ("DT", "not a time", "", "left empty"),
        ("PN", "Doe^Jane", "Doe^Jane", None),
        ("PN", "a=b=c=d", "", "left empty"),
        ("PN", "X" * 100, "", "left empty"),
    ],
)
def test_check_value(vr: str, value: str, kept: str, done: str | None) -> None:
    assert check_value(vr, value) == (kept, done)


def _raw(ds: Dataset, keyword: str, value: str) -> None:
    tag = tag_for_keyword(keyword)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds[tag] = DataElement(tag, dictionary_VR(keyword), value)


def test_repairs_are_named_by_keyword_never_by_value() -> None:
    a, b = Dataset(), Dataset()
    for ds in (a, b):
        _raw(ds, "PatientBirthDate", "19700101120000")
        _raw(ds, "StudyTime", "10:15:00")
        _raw(ds, "ReferringPhysicianName", "a=b=c=d")
        ds.PatientName = "Doe^Jane"
        ds.StudyDate = "20240102"
    notes = repair_header_values([a, b])
    assert len(notes) == 3  # one note per attribute, not per dataset
    text = " ".join(notes)
    for keyword in ("PatientBirthDate", "StudyTime", "ReferringPhysicianName"):
        assert keyword in text
    for value in ("19700101120000", "10:15:00", "a=b=c=d"):
        assert value not in text
    for ds in (a, b):
        assert ds.PatientBirthDate == "19700101" and ds.StudyTime == "101500"
        assert ds.ReferringPhysicianName == "" and ds.PatientName == "Doe^Jane"
        assert ds.StudyDate == "20240102"
    assert repair_header_values([a, b]) == ()  # idempotent


def test_multi_valued_attributes_keep_their_valid_values() -> None:
    ds = Dataset()
    _raw(ds, "CalibrationDate", "20240101\\2024-02-03")
    (note,) = repair_header_values([ds])
    assert "CalibrationDate" in note
    assert list(ds.CalibrationDate) == ["20240101", "20240203"]


def test_every_writer_copies_a_series_with_a_malformed_birth_date(
    tmp_path: Path, synth: object
) -> None:
    from tests.io.conftest import PATIENT, SeriesSpec, hot_attribution, write_series

    src = tmp_path / "ct"
    for path in write_series(src, SeriesSpec(rows=8, cols=10, n=4)):
        ds = pydicom.dcmread(path)
        _raw(ds, "PatientBirthDate", PATIENT["PatientBirthDate"] + "120000")
        _raw(ds, "StudyTime", "10:15:00")
        ds.save_as(path)
    before = {p: p.read_bytes() for p in src.iterdir()}
    vol = read_dicom_series(src)
    assert vol.source is not None and len(vol.source.dicom.header_repairs) == 2
    attr = hot_attribution(vol.spatial_shape)
    algorithm = AlgorithmInfo("integrated_gradients", "zero")
    out = tmp_path / "out"
    written = [
        *write_dicom_rgb(vol, attr, out, algorithm=algorithm),
        *write_dicom_parametric_map(vol, attr, out, algorithm=algorithm),
        *write_dicom_seg(vol, attr, out, algorithm=algorithm),
    ]
    for path in written:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientBirthDate == PATIENT["PatientBirthDate"]
        assert ds.PatientID == PATIENT["PatientID"] and ds.StudyTime == "101500"
    assert {p: p.read_bytes() for p in src.iterdir()} == before  # repaired in memory only
