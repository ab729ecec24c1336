"""DICOM series: malformed but harmless attributes do not stop the writers (and are named by
keyword, never by value); broken series are refused with exit 2; nothing third-party quotes a
header value to the user."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement

from tests.io.conftest import PATIENT, write_series
from tests.reliability.conftest import SMALL_SERIES, Case, write_nifti_study

reliability = pytest.mark.reliability

DICOM_FORMATS = "nifti,dicom-rgb,dicom-pm,dicom-seg"


def _set_raw(directory: Path, **values: str) -> None:
    """Store ``values`` verbatim in every file of the series (as a careless modality would)."""
    for path in sorted(directory.iterdir()):
        ds = pydicom.dcmread(path)
        for keyword, value in values.items():
            tag = tag_for_keyword(keyword)
            ds[tag] = DataElement(tag, dictionary_VR(keyword), value)
        with warnings.catch_warnings():  # pydicom warns about the invalid values on writing
            warnings.simplefilter("ignore")
            ds.save_as(path)


def _dicom_outputs(out: Path) -> list[pydicom.Dataset]:
    m_dir = next(p for p in out.iterdir() if p.name.endswith("_dicom"))
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(m_dir.iterdir())]


@pytest.mark.parametrize(
    "fmt",
    [
        pytest.param(
            f,
            marks=pytest.mark.reliability(
                "DICOM",
                f"PatientBirthDate is a date followed by a time ({f}) — issue 12",
                "exit 0; the date part is kept; the manifest warns about PatientBirthDate "
                "by keyword, never by value",
            ),
            id=f,
        )
        for f in ("dicom-rgb", "dicom-pm", "dicom-seg")
    ],
)
def test_birth_date_with_a_time_does_not_stop_the_writer(
    fmt: str, case: Case, series: Path, tiny_model: Path, tmp_path: Path
) -> None:
    _set_raw(series, PatientBirthDate=PATIENT["PatientBirthDate"] + "120000")
    case.track(series, tiny_model)
    out = tmp_path / "out"
    outcome = case.explain(series, tiny_model, out, "--format", f"nifti,{fmt}")
    warnings = outcome.manifest()["warnings"] if outcome.code == 0 else []
    case.succeeds(outcome, note="; ".join(w for w in warnings if "PatientBirthDate" in w))
    assert any("PatientBirthDate" in w for w in warnings), warnings
    written = _dicom_outputs(out)
    assert written and all(str(d.PatientBirthDate) == PATIENT["PatientBirthDate"] for d in written)
    assert all(str(d.PatientID) == PATIENT["PatientID"] for d in written)


@reliability(
    "DICOM",
    "invalid StudyDate, StudyTime (colons), AcquisitionDateTime and ReferringPhysicianName",
    "exit 0 with all DICOM outputs; each attribute repaired or left empty and named in the "
    "manifest's warnings",
)
def test_malformed_dates_times_and_names_are_repaired_or_dropped(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path
) -> None:
    _set_raw(
        series,
        StudyDate="yesterday",
        StudyTime="10:15:00",
        AcquisitionDateTime="not a time",
        ReferringPhysicianName="a=b=c=d",
    )
    case.track(series, tiny_model)
    out = tmp_path / "out"
    outcome = case.explain(series, tiny_model, out, "--format", DICOM_FORMATS)
    warnings = outcome.manifest()["warnings"] if outcome.code == 0 else []
    named = [k for k in ("StudyDate", "StudyTime", "AcquisitionDateTime", "ReferringPhysicianName")]
    case.succeeds(outcome, note=f"{len(warnings)} warnings naming {', '.join(named)}")
    for keyword in named:
        assert any(keyword in w for w in warnings), (keyword, warnings)
    written = _dicom_outputs(out)
    assert {str(d.StudyTime) for d in written} == {"101500"}  # repaired: colons removed
    assert {str(d.StudyDate) for d in written} == {""}  # unrepairable: left empty
    for w in warnings:
        for value in ("yesterday", "10:15:00", "not a time", "a=b=c=d"):
            assert value not in w


@reliability(
    "DICOM",
    "a missing slice (gap in the series)",
    "exit 2 naming the series directory and the gap",
)
def test_gap(case: Case, series: Path, tiny_model: Path, tmp_path: Path) -> None:
    sorted(series.iterdir())[3].unlink()
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(series), "missing slices")


@reliability("DICOM", "a slice cut short", "exit 2 naming the file: truncated or corrupt")
def test_truncated_slice(case: Case, series: Path, tiny_model: Path, tmp_path: Path) -> None:
    victim = sorted(series.iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-100])
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, victim.name, "truncated")


@reliability(
    "DICOM",
    "two image series and no choice",
    "exit 2 listing both series (number, description, UID; no identifiers)",
)
def test_two_series_without_a_choice(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path
) -> None:
    write_series(series.parent / "CT2", SMALL_SERIES, series_number=4, description="Second")
    case.track(series.parent, tiny_model)
    outcome = case.explain(series.parent, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, "2 image series", "--series-uid")


@reliability("DICOM", "gantry tilt (sheared stack)", "exit 2: tilt, suggests --resample")
def test_gantry_tilt(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    from tests.io.conftest import SeriesSpec

    spec = SeriesSpec(rows=20, cols=24, n=8)
    shear = np.array([0.0, 1.0, 0.0]) * np.tan(np.deg2rad(15.0)) * spec.step
    positions = [p + k * shear for k, p in enumerate(spec.positions)]
    src = tmp_path / "inputs" / "tilt"
    write_series(src, SeriesSpec(rows=20, cols=24, n=8, positions=positions))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, "tilt", "--resample")


@reliability("DICOM", "a series without pixel data", "exit 2 naming the file: no pixel data")
def test_no_pixel_data(case: Case, series: Path, tiny_model: Path, tmp_path: Path) -> None:
    victim = sorted(series.iterdir())[1]
    ds = pydicom.dcmread(victim)
    del ds.PixelData
    ds.save_as(victim)
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, victim.name, "no pixel data")


@reliability("DICOM", "--series-uid that is not in the study", "exit 2 listing what was found")
def test_unknown_series_uid(case: Case, series: Path, tiny_model: Path, tmp_path: Path) -> None:
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out", "--series-uid", "1.2.3.4")
    case.fails(outcome, 2, "no series with SeriesInstanceUID 1.2.3.4")


@reliability("DICOM", "a directory without DICOM files", "exit 2 naming the directory")
def test_directory_without_dicom(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "inputs" / "docs"
    src.mkdir(parents=True)
    (src / "readme.txt").write_text(f"scan of {PATIENT['PatientName']}\n")
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "no DICOM files")


@reliability(
    "DICOM",
    "DICOM outputs asked for a NIfTI input",
    "exit 2: the DICOM formats need a DICOM series",
)
def test_dicom_formats_for_a_nifti_input(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = write_nifti_study(tmp_path / "inputs" / "study.nii.gz")
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out", "--format", "nifti,dicom-seg")
    case.fails(outcome, 2, "need a DICOM input")


@reliability(
    "DICOM",
    "a third-party library fails with a message that quotes the birth date — issue 12",
    "exit 1 (internal) with a hint to report it; the quoted value never reaches stderr or logs",
)
def test_third_party_text_quoting_a_header_value_is_withheld(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import highdicom
    from pydicom.valuerep import DA

    def broken(*args: object, **kwargs: object) -> None:
        DA(PATIENT["PatientBirthDate"] + "120000")  # raises inside pydicom, quoting the value

    monkeypatch.setattr(highdicom.sc.SCImage, "from_ref_dataset", broken)
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out", "--format", "nifti,dicom-rgb")
    case.fails(outcome, 1, "internal error", "pydicom", "withheld", "report", work=True)


@reliability(
    "DICOM",
    "a good series written as every DICOM output, default verbosity — issue 12",
    "exit 0; no third-party log lines, no staging folder names; 'wrote' lines name final paths",
)
def test_default_output_is_quiet_and_names_final_paths(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path
) -> None:
    case.track(series, tiny_model)
    out = tmp_path / "out"
    outcome = case.explain(series, tiny_model, out, "--format", DICOM_FORMATS)
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    wrote = [ln.split("wrote ", 1)[1].strip() for ln in lines if "wrote " in ln]
    case.succeeds(outcome, note=f"{len(lines)} lines on stderr, {len(wrote)} 'wrote' lines")
    assert ".medattr-staging" not in outcome.stderr and "highdicom" not in outcome.stderr.lower()
    assert len(lines) <= 12, outcome.stderr
    assert wrote and all(Path(p).exists() and out in Path(p).parents for p in wrote), wrote
    uids = {str(d.SOPInstanceUID) for d in _dicom_outputs(out)}
    assert not any(uid in outcome.stderr for uid in uids)
