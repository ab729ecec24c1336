"""The output directory: probed (creatable, writable) before any work; a full or refusing file
system is the environment's problem (exit 2 naming the directory) and leaves nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.reliability.conftest import Case

reliability = pytest.mark.reliability

SYS = Path("/sys")
"""sysfs refuses new entries to every user, root included: a portable 'cannot create'."""


@reliability(
    "output directory",
    "--out below a regular file — issue 12",
    "exit 2 naming the path, found before the model runs (was: internal error after the work)",
)
def test_out_below_a_file(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    case.track(study, tiny_model, blocker)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, blocker / "out")
    case.fails(outcome, 2, str(blocker), "not a directory")


@reliability("output directory", "--out is an existing file", "exit 2 naming the path")
def test_out_is_a_file(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.write_text("")
    case.track(study, tiny_model, out)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, out)
    outcome.out = None  # it exists (as a file) and must stay as it was: tracked as an input
    case.fails(outcome, 2, str(out), "not a directory")


@pytest.mark.skipif(not SYS.is_dir(), reason="needs Linux sysfs")
@reliability(
    "output directory",
    "--out where no directory can be created (sysfs; permission denied) — issue 12",
    "exit 2 naming the path and the refusal, before any work (environment)",
)
def test_out_cannot_be_created(
    case: Case, tiny_model: Path, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = SYS / "medattr-reliability-out"
    case.track(study, tiny_model)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, out)
    case.fails(outcome, 2, str(out), "cannot")


@pytest.mark.skipif(not (SYS / "kernel").is_dir(), reason="needs Linux sysfs")
@reliability(
    "output directory",
    "--out is an existing directory nobody may write into (sysfs)",
    "exit 2 naming the path: not writable, before any work (environment)",
)
def test_out_exists_but_is_not_writable(
    case: Case, tiny_model: Path, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = SYS / "kernel"
    before = sorted(p.name for p in out.iterdir())
    case.track(study, tiny_model)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, out)
    case.fails(outcome, 2, str(out), "not writable", before=before)


@reliability(
    "output directory",
    "the disk fills up while the outputs are written (ENOSPC injected into the NIfTI writer)",
    "exit 2 naming the output directory: no space left; nothing left behind",
)
def test_disk_full_while_writing(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nibabel

    def full(img: object, filename: str) -> None:
        Path(filename).write_bytes(b"\x00" * 100)  # a partial file, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    monkeypatch.setattr(nibabel, "save", full)
    case.track(study, tiny_model)
    out = tmp_path / "out"
    outcome = case.explain(study, tiny_model, out)
    case.fails(outcome, 2, str(out), "no space left", work=True)
    assert ".medattr-staging" not in outcome.stderr


@reliability(
    "output directory",
    "a previous run's outputs are in --out, and the new run fails",
    "exit 2; the previous outputs are left exactly as they were",
)
def test_failed_run_leaves_previous_outputs_alone(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}\n")
    (out / "study_attr.nii.gz").write_bytes(b"previous")
    case.track(study, tiny_model, out)
    outcome = case.explain(study, tiny_model, out, "--blur-sigma-mm", "nan")
    case.fails(outcome, 2, "--blur-sigma-mm", before=["manifest.json", "study_attr.nii.gz"])
