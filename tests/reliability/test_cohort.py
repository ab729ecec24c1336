"""Cohorts: a bad study fails alone (exit 3) with a clean, identifier-free line in the
summaries; a bad datalist or output directory stops the run before any work (exit 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.io.conftest import PATIENT
from tests.reliability.conftest import Case, Outcome, write_nifti_study
from tests.reliability.test_nifti_inputs import _lying_header

reliability = pytest.mark.reliability


def _cohort(case: Case, datalist: Path, model: Path, out: Path, *extra: str) -> Outcome:
    argv = ["explain-cohort", datalist, "--model", model, "--out", out, "--steps", "4"]
    argv += ["--format", "nifti", "--device", "cpu", "--no-progress", *extra]
    return case.cli(*argv, out=out)


def _rows(out: Path) -> list[dict[str, Any]]:
    doc = json.loads((out / "cohort_summary.json").read_text())
    with open(out / "cohort_summary.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["study_id"] for r in table] == [r["study_id"] for r in doc["studies"]]
    return list(doc["studies"])


def _datalist(root: Path, images: list[str]) -> Path:
    path = root / "datalist.json"
    path.write_text(json.dumps({"test": [{"image": i} for i in images]}))
    return path


@reliability(
    "cohort",
    "good studies mixed with a lying NIfTI header and a non-NIfTI file",
    "exit 3; the good studies done; each bad one failed with an input error naming <input>",
)
def test_bad_studies_fail_alone(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "inputs"
    write_nifti_study(root / "a.nii.gz", seed=1)
    _lying_header(root / "liar.nii", (1024, 1024, 512))
    (root / "junk.nii.gz").write_text(f"{PATIENT['PatientName']}\n")
    write_nifti_study(root / "b.nii.gz", seed=2)
    datalist = _datalist(root, ["a.nii.gz", "liar.nii", "junk.nii.gz", "b.nii.gz"])
    case.track(root, tiny_model)
    out = tmp_path / "out"
    outcome = _cohort(case, datalist, tiny_model, out)
    rows = _rows(out) if out.exists() else []
    case.succeeds(outcome, 3, note=f"statuses {[r['status'] for r in rows]}")
    assert [r["status"] for r in rows] == ["done", "failed", "failed", "done"]
    assert rows[1]["error"].startswith("VolumeError: <input>: ") and "header" in rows[1]["error"]
    assert rows[1]["error_kind"] == "input" and rows[2]["error_kind"] == "input"
    assert not (out / rows[1]["study_id"]).exists() and not (out / rows[2]["study_id"]).exists()


@reliability(
    "cohort",
    "a DICOM study whose PatientBirthDate carries a time — issue 12",
    "exit 0; the study is done (not lost); its manifest warns about PatientBirthDate",
)
def test_malformed_birth_date_in_a_cohort(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path
) -> None:
    from tests.reliability.test_dicom_inputs import _set_raw

    _set_raw(series, PatientBirthDate=PATIENT["PatientBirthDate"] + "120000")
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps([{"image": str(series), "id": "study1"}]))
    case.track(series, tiny_model, datalist)
    out = tmp_path / "out"
    outcome = _cohort(case, datalist, tiny_model, out, "--format", "nifti,dicom-seg")
    rows = _rows(out) if out.exists() else []
    case.succeeds(outcome, note=f"statuses {[r['status'] for r in rows]}")
    assert [r["status"] for r in rows] == ["done"]
    manifest = json.loads((out / "study1" / "manifest.json").read_text())
    assert any("PatientBirthDate" in w for w in manifest["warnings"])


@reliability(
    "cohort",
    "a study fails inside a third-party library whose message quotes the birth date — issue 12",
    "exit 3; the summaries (JSON, CSV) say internal error and withhold the message",
)
def test_failure_text_quoting_identifiers_stays_out_of_summaries(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import highdicom
    from pydicom.valuerep import DA

    def broken(*args: object, **kwargs: object) -> None:
        DA(PATIENT["PatientBirthDate"] + "120000")  # raises inside pydicom, quoting the value

    monkeypatch.setattr(highdicom.seg.Segmentation, "__init__", broken)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps([{"image": str(series), "id": "study1"}]))
    case.track(series, tiny_model, datalist)
    out = tmp_path / "out"
    outcome = _cohort(case, datalist, tiny_model, out, "--format", "nifti,dicom-seg")
    rows = _rows(out) if out.exists() else []
    case.succeeds(outcome, 3, note=rows[0]["error"] if rows else "")
    assert rows[0]["status"] == "failed" and rows[0]["error_kind"] == "internal"
    assert "pydicom" in rows[0]["error"] and "withheld" in rows[0]["error"]
    assert not (out / "study1").exists()


@reliability("cohort", "the datalist does not exist", "exit 2 naming the datalist; nothing written")
def test_missing_datalist(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    case.track(tiny_model)
    outcome = _cohort(case, tmp_path / "none.json", tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(tmp_path / "none.json"))


@reliability("cohort", "the datalist is not JSON", "exit 2 naming the datalist; nothing written")
def test_datalist_not_json(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    datalist = tmp_path / "datalist.json"
    datalist.write_text(f"{{ {PATIENT['PatientID']}")
    case.track(tiny_model, datalist)
    outcome = _cohort(case, datalist, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(datalist), "JSON")


@reliability(
    "cohort",
    "two different studies given the same id",
    "exit 2 naming the datalist: ids must be unique; nothing written",
)
def test_duplicate_study_ids(case: Case, tiny_model: Path, study: Path, tmp_path: Path) -> None:
    other = write_nifti_study(tmp_path / "inputs" / "other.nii.gz", seed=3)
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps([{"image": str(p), "id": "x"} for p in (study, other)]))
    case.track(tiny_model, study, other, datalist)
    outcome = _cohort(case, datalist, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, "unique")


@reliability(
    "cohort",
    "--out below a regular file",
    "exit 2 naming the path before any study is read",
)
def test_cohort_out_below_a_file(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps([{"image": str(study), "id": "s"}]))
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    case.track(tiny_model, study, datalist, blocker)
    case.spy_on_work(monkeypatch)
    outcome = _cohort(case, datalist, tiny_model, blocker / "out")
    case.fails(outcome, 2, str(blocker), "not a directory")
