"""examples/deploy_app run as a user runs it: ``python app.py -i DICOM -o OUT -m MODEL``.

DICOM loader -> series selector (CT or MR) -> MedattrOperator, on a folder holding two studies
(pydicom's CT5N series, a synthetic MR series) and an RT plan that must not be selected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "deploy_app" / "app.py"
STACK_BYTES = 32 * 1024 * 1024  # Holoscan warns below this


def _raise_stack_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < STACK_BYTES:
        target = STACK_BYTES if hard == resource.RLIM_INFINITY else min(STACK_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (target, hard))


def run_app(
    input_dir: Path, out_dir: Path, model: Path | None, cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MEDATTR_", "HOLOSCAN_"))}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), environ.get("PYTHONPATH", "")) if p
    )
    environ.update({"MEDATTR_N_STEPS": "4", "MEDATTR_DEVICE": "cpu", **env})
    cmd = [sys.executable, str(APP), "-i", str(input_dir), "-o", str(out_dir)]
    if model is not None:
        cmd += ["-m", str(model)]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=400,
        cwd=cwd,
        env=environ,
        preexec_fn=_raise_stack_limit,
        check=False,
    )


@pytest.fixture(scope="module")
def app_run(
    kit: SimpleNamespace, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> SimpleNamespace:
    kit.require_sdk()
    from pydicom.data import get_testdata_file

    base = tmp_path_factory.mktemp("deploy_app")
    inp = base / "input"
    ct = kit.copy_ct5n(inp / "study_a" / "ct")
    mr_dir = kit.write_mr_series(inp / "study_b" / "mr")
    shutil.copy(get_testdata_file("rtplan.dcm"), inp / "plan.dcm")
    before = kit.tree_digest(inp)
    res = run_app(inp, base / "output", tiny_model, base)
    return SimpleNamespace(
        res=res,
        out=base / "output",
        ct=[pydicom.dcmread(p, stop_before_pixels=True) for p in ct],
        mr=[pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(mr_dir.iterdir())],
        input=inp,
        before=before,
    )


def _log(run: SimpleNamespace) -> str:
    return f"exit {run.res.returncode}\n{run.res.stdout[-4000:]}\n{run.res.stderr[-4000:]}"


@pytest.mark.slow
def test_each_ct_and_mr_series_gets_its_folder_and_nothing_else(app_run: SimpleNamespace) -> None:
    assert app_run.res.returncode == 0, _log(app_run)
    assert sorted(p.name for p in app_run.out.iterdir()) == ["CT_series5", "MR_series7"]
    for name, source in (("CT_series5", app_run.ct), ("MR_series7", app_run.mr)):
        m = json.loads((app_run.out / name / "manifest.json").read_text())
        assert m["selection"]["series_instance_uid"] == source[0].SeriesInstanceUID
        assert m["selection"]["name"] == "CT or MR image series"
        assert m["input"]["format"] == "dicom" and m["config"]["n_steps"] == 4
        assert m["input"]["shape"][2] == len(source)


@pytest.mark.slow
def test_outputs_are_valid_dicom_of_the_source_study_and_frame(app_run: SimpleNamespace) -> None:
    assert app_run.res.returncode == 0, _log(app_run)
    for name, source in (("CT_series5", app_run.ct), ("MR_series7", app_run.mr)):
        m = json.loads((app_run.out / name / "manifest.json").read_text())
        ddir = app_run.out / name / m["outputs"]["dicom_dir"]
        assert sorted(p.name for p in ddir.iterdir()) == sorted(m["outputs"]["dicom_files"])
        written = [pydicom.dcmread(p) for p in sorted(ddir.iterdir())]
        assert {d.StudyInstanceUID for d in written} == {source[0].StudyInstanceUID}
        assert {d.FrameOfReferenceUID for d in written} == {source[0].FrameOfReferenceUID}
        series = {d.SeriesInstanceUID for d in written}
        assert len(series) == 4 and source[0].SeriesInstanceUID not in series  # 2 maps
        kinds = [d.SOPClassUID.name for d in written]
        assert sum("Secondary Capture" in k for k in kinds) == len(source)
        assert any("Parametric Map" in k for k in kinds)
        assert any("Segmentation" in k for k in kinds)
        sources = {d.SOPInstanceUID for d in source}
        pm = next(d for d in written if "Parametric Map" in d.SOPClassUID.name)
        referenced = {
            item.ReferencedSOPInstanceUID
            for s in pm.ReferencedSeriesSequence
            for item in s.ReferencedInstanceSequence
        }
        assert referenced == sources


@pytest.mark.slow
def test_the_input_is_untouched_and_the_app_log_has_no_patient_identifiers(
    kit: SimpleNamespace, app_run: SimpleNamespace
) -> None:
    assert app_run.res.returncode == 0, _log(app_run)
    assert kit.tree_digest(app_run.input) == app_run.before
    log = app_run.res.stdout + app_run.res.stderr
    assert any("medattr.deploy" in line and "delta=" in line for line in log.splitlines())
    ct_ids = (str(app_run.ct[0].PatientName), str(app_run.ct[0].PatientID))
    for value in (*kit.mr_patient.values(), *ct_ids):
        assert value not in log


@pytest.mark.slow
def test_a_study_without_ct_or_mr_fails_and_writes_nothing(
    kit: SimpleNamespace, tiny_model: Path, tmp_path: Path
) -> None:
    kit.require_sdk()
    from pydicom.data import get_testdata_file

    (tmp_path / "input").mkdir()
    shutil.copy(get_testdata_file("rtplan.dcm"), tmp_path / "input" / "plan.dcm")
    res = run_app(tmp_path / "input", tmp_path / "output", tiny_model, tmp_path)
    assert res.returncode != 0
    assert "chose no series" in res.stdout + res.stderr
    out = tmp_path / "output"
    assert not out.exists() or not any(out.iterdir())
