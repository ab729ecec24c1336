"""Stage timings: per study in the manifest, aggregated in the cohort summary."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medattr import ExplainConfig, Explainer
from medattr.cohort import CohortRunner, load_cohort

STAGES = {"read", "preprocess", "baseline", "attribution", "invert", "write:nifti", "write:png"}


@pytest.fixture
def studies(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(2):
        path = tmp_path / f"s{k}.nii.gz"
        nib.save(
            nib.Nifti1Image(rng.normal(40, 50, (12, 12, 8)).astype(np.float32), np.eye(4)),
            str(path),
        )
        paths.append(str(path))
    return paths


def test_manifest_and_summary_time_every_stage(
    tiny_model: Path, studies: list[str], tmp_path: Path
) -> None:
    explainer = Explainer(str(tiny_model), ExplainConfig(baseline="zero", n_steps=2))
    out = tmp_path / "cohort"
    summary = CohortRunner(explainer, out)(load_cohort(studies, base_dir=tmp_path))
    assert summary.counts["done"] == 2
    manifest = json.loads((out / summary.studies[0]["study_id"] / "manifest.json").read_text())
    assert STAGES <= set(manifest["timings_s"])
    assert all(v >= 0 for v in manifest["timings_s"].values())
    doc = json.loads((out / "cohort_summary.json").read_text())
    agg = doc["timings_s"]
    assert STAGES <= set(agg) and agg["attribution"]["studies"] == 2
    per_study = [r["timings_s"]["attribution"] for r in doc["studies"]]
    assert agg["attribution"]["total"] == pytest.approx(sum(per_study), abs=1e-3)
    assert agg["attribution"]["mean"] == pytest.approx(sum(per_study) / 2, abs=1e-3)
