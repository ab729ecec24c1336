"""Cohort runs: ids, failures isolated, resume with verification, atomic outputs, CLI exit codes."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medattr import ExplainConfig, Explainer
from medattr.cli import main
from medattr.cohort import (
    EXIT_ALL_OK,
    EXIT_STUDIES_FAILED,
    CohortRunner,
    DistributedPathsExplainer,
    load_cohort,
)
from medattr.errors import InputError
from medattr.io import read_nifti


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """Tiny models run 10-20x faster single-threaded on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _study(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    data = rng.uniform(-200, 300, (12, 12, 10)).astype(np.float32)
    data[4:8, 4:8, 3:6] += 150 * (seed % 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([9.0, 9.0, 10.0, 1.0])), str(path))
    return path


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    """A MONAI datalist of three readable studies and one corrupt file (in the test split)."""
    root = tmp_path / "data"
    for k in range(3):
        _study(root / "img" / f"case{k}.nii.gz", k)
    (root / "img" / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    datalist = {
        "training": [{"image": "img/case0.nii.gz", "label": 0}],
        "test": [
            {"image": "img/case0.nii.gz", "label": 0},
            {"image": "img/broken.nii.gz", "label": 1},
            {"image": "img/case1.nii.gz", "label": 1},
            {"image": "img/case2.nii.gz", "label": 0},
        ],
    }
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root / "datalist.json"


def _explainer(model: Path, **kw: object) -> Explainer:
    cfg = {"n_steps": 4, "formats": ("nifti",), "progress": False, **kw}
    return Explainer(str(model), ExplainConfig(**cfg))  # type: ignore[arg-type]


def _mtimes(out: Path) -> dict[str, int]:
    return {
        str(p.relative_to(out)): p.stat().st_mtime_ns
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith("cohort_summary")
    }


# ------------------------------------------------------------------ datalists and ids
def test_load_cohort_sections_paths_and_ids(cohort: Path, tmp_path: Path) -> None:
    entries = load_cohort(cohort)
    assert [Path(e.image).name for e in entries] == [
        "case0.nii.gz",
        "broken.nii.gz",
        "case1.nii.gz",
        "case2.nii.gz",
    ]
    assert all(
        Path(e.image).is_absolute() and Path(e.image).parent.parent == cohort.parent
        for e in entries
    )
    assert [e.label for e in entries] == [0, 1, 1, 0]
    # hash ids: unique, filesystem-safe, and carry nothing of the file name
    ids = [e.study_id for e in entries]
    assert len(set(ids)) == 4 and all(i.startswith("s-") and len(i) == 14 for i in ids)
    assert not any("case" in i or "broken" in i for i in ids)
    # stable when the dataset moves (hash of the path as written, not the absolute path)
    moved = tmp_path / "elsewhere"
    cohort.parent.rename(moved)
    assert [e.study_id for e in load_cohort(moved / "datalist.json")] == ids
    # "all" runs every section; the training entry repeats a test entry and runs once
    assert len(load_cohort(moved / "datalist.json", section="all")) == 4
    assert len(load_cohort(moved / "datalist.json", section="training")) == 1


def test_load_cohort_rejects_what_it_cannot_use(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InputError,
        match=r"datalist.json: datalist section\(s\) validation not found; it has training, test",
    ):
        load_cohort(cohort, section="validation")
    with pytest.raises(InputError, match="datalist not found"):
        load_cohort(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json: is not valid JSON"):
        load_cohort(bad)
    with pytest.raises(InputError, match="entry 1 has no 'image' path"):
        load_cohort([{"image": "a.nii.gz"}, {"label": 1}])
    with pytest.raises(InputError, match="study id 'x' is already used"):
        load_cohort([{"image": "a.nii.gz", "id": "x"}, {"image": "b.nii.gz", "id": "x"}])


def test_load_cohort_directory_stem_ids_and_explicit_ids(tmp_path: Path) -> None:
    root = tmp_path / "dir"
    _study(root / "a.nii.gz", 0)
    _study(root / "sub" / "a.nii.gz", 1)  # a subdirectory counts as one (DICOM) study
    (root / "notes.txt").write_text("ignored")
    entries = load_cohort(root, study_ids="stem")
    assert [Path(e.image).name for e in entries] == ["a.nii.gz", "sub"]
    assert [e.study_id for e in entries] == ["a", "sub"]
    # colliding stems get a short hash; explicit ids are made safe and kept
    two = load_cohort(["x/scan.nii.gz", "y/scan.nii.gz"], study_ids="stem", base_dir=tmp_path)
    assert two[0].study_id != two[1].study_id and all(e.study_id.startswith("scan-") for e in two)
    named = load_cohort([{"image": "a.nii.gz", "id": "Pat 01/../x"}], base_dir=tmp_path)
    assert named[0].study_id == "Pat_01_.._x"


# ------------------------------------------------------------------ the runner
def test_one_bad_study_is_reported_and_the_others_finish(
    tiny_model: Path, cohort: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out"
    entries = load_cohort(cohort)
    with caplog.at_level(logging.WARNING, logger="medattr.cohort"):
        summary = CohortRunner(_explainer(tiny_model), out, progress=False)(entries)
    assert summary.counts == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert summary.exit_code == EXIT_STUDIES_FAILED
    doc = json.loads((out / "cohort_summary.json").read_text())
    rows = {r["study_id"]: r for r in doc["studies"]}
    bad = rows[entries[1].study_id]
    assert bad["status"] == "failed"
    assert bad["error"].startswith("VolumeError: <input>: not a readable NIfTI file")
    assert "Traceback" not in bad["error"] and str(cohort.parent) not in bad["error"]
    assert not (out / entries[1].study_id).exists()  # nothing partial for the failed study
    assert any(entries[1].study_id in r.message for r in caplog.records)
    for e in (entries[0], entries[2], entries[3]):
        row = rows[e.study_id]
        assert row["status"] == "done" and row["seconds"] > 0
        m = json.loads((out / e.study_id / "manifest.json").read_text())
        assert m["cohort"]["study_id"] == e.study_id
        assert row["convergence_delta"] == pytest.approx(m["convergence_delta"])
        attr = read_nifti(out / e.study_id / m["outputs"]["attribution_nifti"])
        assert attr.spatial_shape == (12, 12, 10)
        record = json.loads((out / e.study_id / "cohort_record.json").read_text())
        assert set(record["sha256"]) == {"manifest.json", *m["outputs"].values()}
    # the CSV says the same, in datalist order
    with open(out / "cohort_summary.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [r["study_id"] for r in table] == [e.study_id for e in entries]
    assert [r["status"] for r in table] == ["done", "failed", "done", "done"]
    assert float(table[0]["convergence_delta"]) == pytest.approx(
        rows[entries[0].study_id]["convergence_delta"]
    )
    # no hidden staging left behind
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_rerun_skips_verified_studies_and_recomputes_changed_ones(
    tiny_model: Path, cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    entries = load_cohort(cohort)
    good = [e for e in entries if "broken" not in str(e.image)]
    CohortRunner(_explainer(tiny_model), out, progress=False)(entries)
    before = _mtimes(out)

    again = CohortRunner(_explainer(tiny_model), out, progress=False)(entries)
    assert again.counts == {"done": 0, "skipped": 3, "failed": 1, "pending": 0}
    assert _mtimes(out) == before  # nothing rewritten, no duplicates
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(e.study_id for e in good)

    # a batch size or device change does not invalidate results
    same = CohortRunner(_explainer(tiny_model, internal_batch_size=2), out, progress=False)
    assert same(good).counts["skipped"] == 3

    # a damaged output is caught by its SHA-256 and only that study is recomputed
    victim = out / good[1].study_id
    attr = next(victim.glob("*_attr.nii.gz"))
    attr.write_bytes(attr.read_bytes()[:-7])
    third = CohortRunner(_explainer(tiny_model), out, progress=False)(good)
    statuses = {r["study_id"]: r["status"] for r in third.studies}
    assert statuses == {
        good[0].study_id: "skipped",
        good[1].study_id: "done",
        good[2].study_id: "skipped",
    }
    assert read_nifti(attr).spatial_shape == (12, 12, 10)

    # other settings (more path points) recompute everything
    fourth = CohortRunner(_explainer(tiny_model, n_steps=6), out, progress=False)(good)
    assert fourth.counts["done"] == 3
    m = json.loads((out / good[0].study_id / "manifest.json").read_text())
    assert m["method"]["n_steps"] == 6


def test_interrupted_run_leaves_a_valid_summary_and_resumes(
    tiny_model: Path, cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    entries = [e for e in load_cohort(cohort) if "broken" not in str(e.image)]
    explainer = _explainer(tiny_model)
    calls = {"n": 0}

    def writer(result, out_dir, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            (Path(out_dir) / "half_written.bin").write_bytes(b"x")
            raise KeyboardInterrupt
        return explainer.write(result, out_dir, **kw)

    with pytest.raises(KeyboardInterrupt):
        CohortRunner(explainer, out, progress=False, writer=writer)(entries)
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert [r["status"] for r in doc["studies"]] == ["done", "pending", "pending"]
    assert not (out / entries[1].study_id).exists()
    assert not list(out.glob(".*partial*"))

    resumed = CohortRunner(explainer, out, progress=False)(entries)
    assert [r["status"] for r in resumed.studies] == ["skipped", "done", "done"]
    assert resumed.exit_code == EXIT_ALL_OK


def test_dicom_cohort_keeps_patient_identifiers_out_of_summaries(
    tiny_model: Path, tmp_path: Path
) -> None:
    from tests.io.conftest import PATIENT, write_series

    write_series(tmp_path / "data" / "Synthetic^Phantom_CT")
    gappy = write_series(tmp_path / "data" / "gappy")
    gappy[len(gappy) // 2].unlink()  # a missing slice: refused without --resample
    datalist = [{"image": "Synthetic^Phantom_CT"}, {"image": "gappy"}]
    out = tmp_path / "out"
    summary = CohortRunner(_explainer(tiny_model), out, progress=False)(
        load_cohort(datalist, base_dir=tmp_path / "data")
    )
    assert [r["status"] for r in summary.studies] == ["done", "failed"]
    assert "<input>" in summary.studies[1]["error"] and "gap" in summary.studies[1]["error"].lower()
    texts = [(out / "cohort_summary.json").read_text(), (out / "cohort_summary.csv").read_text()]
    texts += [p.read_text() for p in out.glob("*/cohort_record.json")]
    for value in (PATIENT["PatientID"], PATIENT["PatientBirthDate"]):
        assert not any(value in t for t in texts)
    # the study id hides the folder name, which here carries the patient's name
    assert not any("Phantom" in p.name for p in out.iterdir())


def test_runner_validates_its_inputs(tiny_model: Path, cohort: Path, tmp_path: Path) -> None:
    entries = load_cohort(cohort)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="not a directory"):
        CohortRunner(_explainer(tiny_model), blocker)(entries)
    with pytest.raises(InputError, match="outside the cohort"):
        CohortRunner(_explainer(tiny_model), tmp_path / "o", progress=False)(entries, [0, 9])
    with pytest.raises(InputError, match="split must be"):
        CohortRunner(_explainer(tiny_model), tmp_path / "o", split="rows")
    with pytest.raises(InputError, match="split-ig cannot split"):
        DistributedPathsExplainer(str(tiny_model), ExplainConfig(method="split-ig"))


# ------------------------------------------------------------------ CLI
def test_cli_explain_cohort_exit_codes(tiny_model: Path, cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["explain-cohort", str(cohort), "--model", str(tiny_model), "--out", str(out)]
    argv += ["--steps", "4", "--format", "nifti", "--device", "cpu", "--no-progress"]
    assert main(argv) == EXIT_STUDIES_FAILED == 3
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"] == {"done": 3, "skipped": 0, "failed": 1, "pending": 0}
    assert doc["config"]["n_steps"] == 4
    # without the broken entry: everything is complete already, exit 0
    data = json.loads(cohort.read_text())
    data["test"] = [r for r in data["test"] if "broken" not in r["image"]]
    clean = cohort.with_name("clean.json")
    clean.write_text(json.dumps(data))
    assert main([*argv[:1], str(clean), *argv[2:]]) == EXIT_ALL_OK
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"]["skipped"] == 3
    # a missing datalist or section is bad input: exit 2, nothing written
    assert main([*argv[:1], str(tmp_path / "none.json"), *argv[2:]]) == 2
    assert main([*argv, "--section", "validation"]) == 2
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "cohort_summary.csv",
        "cohort_summary.json",
    ]


def test_cli_distributed_paths_without_torchrun_runs_as_one_process(
    tiny_model: Path, cohort: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["explain-cohort", str(cohort), "--model", str(tiny_model), "--out", str(out)]
    argv += ["--steps", "4", "--format", "nifti", "--device", "cpu", "--no-progress"]
    argv += ["--section", "training", "--distributed-paths"]
    assert main(argv) == EXIT_ALL_OK
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"]["done"] == 1 and doc["world_size"] == 1
    # Split IG needs its whole path on one process: refused before anything runs
    assert main([*argv, "--method", "split-ig"]) == 2
