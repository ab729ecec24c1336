"""Whole processes: real exit statuses, a file-size limit hit while writing, internal errors,
Ctrl-C, and ``kill -9`` in the middle of a cohort followed by a resume."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.io.conftest import PATIENT
from tests.reliability.conftest import MEDATTR, Case, Outcome, subprocess_env, write_nifti_study
from tests.reliability.test_nifti_inputs import _lying_header

reliability = pytest.mark.reliability

FAST = ["--steps", "4", "--device", "cpu", "--no-progress", "--format", "nifti"]


def _logged(case: Case, argv: list[str]) -> list[str]:
    case.log_path.parent.mkdir(parents=True, exist_ok=True)
    return [*MEDATTR, "--log-file", str(case.log_path), *argv]


def _log(case: Case) -> str:
    return case.log_path.read_text() if case.log_path.exists() else ""


def _run(case: Case, argv: list[str], out: Path, **kw: object) -> Outcome:
    t = time.perf_counter()
    proc = subprocess.run(
        _logged(case, argv),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        **kw,  # type: ignore[arg-type]
    )
    seconds = time.perf_counter() - t
    return Outcome(proc.returncode, proc.stdout, proc.stderr, out, _log(case), seconds)


@reliability(
    "process",
    "a real process given a NIfTI file whose header lies about its size",
    "exit status 2 from the process; one error line on stderr; stdout empty",
)
def test_real_process_exit_status_for_bad_input(
    case: Case, tiny_model: Path, tmp_path: Path
) -> None:
    src = _lying_header(tmp_path / "inputs" / "liar.nii", (512, 512, 512))
    case.track(src, tiny_model)
    out = tmp_path / "out"
    outcome = _run(case, ["explain", str(src), "--model", str(tiny_model), "--out", str(out)], out)
    case.fails(outcome, 2, str(src), "header")
    assert outcome.stdout == ""
    assert len([ln for ln in outcome.stderr.splitlines() if ln.strip()]) == 1, outcome.stderr


@reliability(
    "process",
    "the file system refuses more data while the outputs are written (RLIMIT_FSIZE)",
    "exit 2 naming the output directory; nothing left behind (no partial files)",
)
def test_file_size_limit_while_writing(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = write_nifti_study(tmp_path / "inputs" / "study.nii.gz")
    case.track(src, tiny_model)
    out = tmp_path / "out"
    limit = 16 * 1024  # the PNG montage is larger

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    argv = ["explain", str(src), "--model", str(tiny_model), "--out", str(out), *FAST]
    argv += ["--format", "nifti,png"]
    outcome = _run(case, argv, out, preexec_fn=limit_file_size)
    case.fails(outcome, 2, str(out), "too large", work=True)


@reliability(
    "process",
    "a bug inside medattr whose message would quote the patient's name",
    "exit 1: 'internal error' with a hint to report it; the name is redacted",
)
def test_internal_error_is_reported_with_a_hint(
    case: Case, series: Path, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medattr.preprocess import Preprocessor

    def bug(self: object, volume: object) -> None:
        raise KeyError(f"no entry for {PATIENT['PatientName']} ({PATIENT['PatientID']})")

    monkeypatch.setattr(Preprocessor, "__call__", bug)
    case.track(series, tiny_model)
    outcome = case.explain(series, tiny_model, tmp_path / "out")
    case.fails(outcome, 1, "internal error", "KeyError", "report")


@reliability(
    "process",
    "Ctrl-C during the attribution",
    "exit 130: interrupted; nothing written",
)
def test_interrupt_during_the_attribution(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medattr.attribution import PathAttribution

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(PathAttribution, "explain_study", interrupted)
    case.track(study, tiny_model)
    outcome = case.explain(study, tiny_model, tmp_path / "out")
    case.fails(outcome, 130, "interrupted", work=True)


def _counts(out: Path) -> dict[str, int] | None:
    try:
        return dict(json.loads((out / "cohort_summary.json").read_text())["counts"])
    except (OSError, ValueError, KeyError):
        return None


@reliability(
    "process",
    "kill -9 in the middle of a cohort, then the same command again",
    "the killed run leaves finished studies and a valid summary; the rerun skips them, "
    "finishes the rest (exit 0) and leaves no partial directories",
)
def test_kill_9_then_resume(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "inputs"
    images = [
        write_nifti_study(root / f"s{k}.nii.gz", seed=k, shape=(24, 24, 20)) for k in range(5)
    ]
    datalist = root / "datalist.json"
    datalist.write_text(json.dumps({"test": [{"image": p.name} for p in images]}))
    case.track(root, tiny_model)
    out = tmp_path / "out"
    argv = ["explain-cohort", str(datalist), "--model", str(tiny_model), "--out", str(out)]
    argv += ["--steps", "32", "--format", "nifti", "--device", "cpu", "--no-progress"]
    proc = subprocess.Popen(
        _logged(case, argv),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: dict[str, int] | None = None
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        counts = _counts(out)
        if counts and counts["done"] >= 1 and counts["pending"] >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            killed = counts
            break
        time.sleep(0.02)
    stdout, stderr = proc.communicate(timeout=60)
    assert killed is not None, f"the run ended before it could be killed:\n{stderr}"
    assert proc.returncode == -signal.SIGKILL
    first = Outcome(proc.returncode, stdout, stderr, out, _log(case))
    case.no_identifiers(first)
    after_kill = json.loads((out / "cohort_summary.json").read_text())
    finished = [r["study_id"] for r in after_kill["studies"] if r["status"] == "done"]

    resumed = case.cli(*argv, out=out)
    doc = json.loads((out / "cohort_summary.json").read_text())
    statuses = {r["study_id"]: r["status"] for r in doc["studies"]}
    case.succeeds(
        resumed,
        note=f"killed after {len(finished)} of 5 studies; the rerun skipped {len(finished)} and "
        f"did {sum(s == 'done' for s in statuses.values())}",
    )
    assert all(statuses[s] == "skipped" for s in finished)
    assert sorted(statuses.values()).count("done") == 5 - len(finished)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert all((out / s / "manifest.json").is_file() for s in statuses)
