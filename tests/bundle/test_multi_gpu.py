"""torchrun with 2 CPU processes (gloo): studies shared by rank, or path points split by rank."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from medattr import ExplainConfig, Explainer
from medattr.cohort import CohortRunner, load_cohort
from medattr.io import read_nifti
from tests.bundle.conftest import run_python, write_tiny_cohort

pytestmark = pytest.mark.slow

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _bundle_run(bundle: Path, tmp_path: Path, *override: str) -> None:
    configs = bundle / "configs"
    files = f"['{configs / 'inference.json'}','{configs / 'multi_gpu_inference.json'}']"
    args = [*TORCHRUN, "-m", "monai.bundle", "run", "--config_file", files, *override]
    proc = run_python(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _single(bundle: Path, datalist: Path, out: Path, n_steps: int, baseline: str = "blur") -> None:
    """One process; ``blur`` is the CLI's default, ``vae-guided`` the bundle's."""
    config = ExplainConfig(
        n_steps=n_steps,
        baseline=baseline,
        vae=str(bundle / "models" / "vae.ts"),
        formats=("nifti",),
        progress=False,
    )
    explainer = Explainer(str(bundle / "models" / "model.ts"), config)
    CohortRunner(explainer, out, progress=False)(load_cohort(datalist))


def _attr(study_dir: Path) -> np.ndarray:
    return read_nifti(next(study_dir.glob("*_attr.nii.gz"))).array


def test_overlay_shares_studies_between_ranks_each_done_once(bundle: Path, tmp_path: Path) -> None:
    datalist = write_tiny_cohort(tmp_path / "data", 5)
    out = tmp_path / "out"
    _bundle_run(
        bundle,
        tmp_path,
        "--dataset_dir",
        str(datalist.parent),
        "--output_dir",
        str(out),
        "--n_steps",
        "3",
        "--formats",
        "nifti",
        "--progress",
        "false",
    )
    entries = load_cohort(datalist)
    doc = json.loads((out / "cohort_summary.json").read_text())
    rows = doc["studies"]
    assert [r["study_id"] for r in rows] == [e.study_id for e in entries]  # each once, in order
    assert [r["status"] for r in rows] == ["done"] * 5
    assert doc["world_size"] == 2 and doc["split"] == "studies"
    # DistributedSampler (even_divisible=False): rank 0 takes 3 studies, rank 1 takes 2
    assert Counter(r["rank"] for r in rows) == {0: 3, 1: 2}
    dirs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert dirs == sorted(e.study_id for e in entries)
    for r in rows:
        record = json.loads((out / r["study_id"] / "cohort_record.json").read_text())
        assert record["rank"] == r["rank"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # rank files merged


def test_split_paths_equals_the_single_process_result(bundle: Path, tmp_path: Path) -> None:
    datalist = write_tiny_cohort(tmp_path / "data", 2)
    out, ref = tmp_path / "out", tmp_path / "ref"
    _bundle_run(
        bundle,
        tmp_path,
        "--dataset_dir",
        str(datalist.parent),
        "--output_dir",
        str(out),
        "--n_steps",
        "6",
        "--formats",
        "nifti",
        "--progress",
        "false",
        "--split_paths",
        "true",
    )
    _single(bundle, datalist, ref, n_steps=6, baseline="vae-guided")
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"]["done"] == 2 and doc["split"] == "paths"
    for e in load_cohort(datalist):
        np.testing.assert_allclose(
            _attr(out / e.study_id), _attr(ref / e.study_id), rtol=1e-5, atol=1e-8
        )
        split = json.loads((out / e.study_id / "manifest.json").read_text())
        whole = json.loads((ref / e.study_id / "manifest.json").read_text())
        assert split["n_evaluations"] * 2 == whole["n_evaluations"]  # each rank did half
        assert split["convergence_delta"] == pytest.approx(whole["convergence_delta"], abs=1e-6)


def test_cli_under_torchrun_shares_studies_by_rank(bundle: Path, tmp_path: Path) -> None:
    datalist = write_tiny_cohort(tmp_path / "data", 3)
    out, ref = tmp_path / "out", tmp_path / "ref"
    args = [*TORCHRUN, "-m", "medattr", "explain-cohort", str(datalist), "--out", str(out)]
    args += ["--model", str(bundle / "models" / "model.ts"), "--steps", "4"]
    args += ["--format", "nifti", "--device", "cpu", "--no-progress"]
    proc = run_python(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((out / "cohort_summary.json").read_text())
    entries = load_cohort(datalist)
    assert [(r["study_id"], r["status"]) for r in doc["studies"]] == [
        (e.study_id, "done") for e in entries
    ]
    assert [r["rank"] for r in doc["studies"]] == [0, 1, 0]  # rank r takes r, r + 2, ...
    _single(bundle, datalist, ref, n_steps=4)
    for e in entries:
        np.testing.assert_array_equal(_attr(out / e.study_id), _attr(ref / e.study_id))
