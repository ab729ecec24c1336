"""A prefetching cohort gives the same results as one study at a time, failures included."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medattr import ExplainConfig, Explainer
from medattr.cohort import CohortRunner, load_cohort
from medattr.errors import InputError


@pytest.fixture
def cohort(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for k in range(5):
        path = tmp_path / f"s{k}.nii.gz"
        if k == 2:
            path.write_bytes(b"not a nifti")  # one bad study in the middle
        else:
            data = rng.normal(40, 50, (12, 12, 8)).astype(np.float32)
            nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
        paths.append(str(path))
    return paths


def _run(model: Path, paths: list[str], out: Path, prefetch: int) -> dict[str, int]:
    explainer = Explainer(str(model), ExplainConfig(baseline="zero", n_steps=2, formats="nifti"))
    entries = load_cohort(paths, base_dir=out.parent)
    return CohortRunner(explainer, out, prefetch=prefetch)(entries).counts


def test_prefetch_matches_one_at_a_time(
    tiny_model: Path, cohort: list[str], tmp_path: Path
) -> None:
    serial, ahead = tmp_path / "serial", tmp_path / "ahead"
    assert _run(tiny_model, cohort, serial, 0) == {
        "done": 4,
        "skipped": 0,
        "failed": 1,
        "pending": 0,
    }
    assert _run(tiny_model, cohort, ahead, 2) == {
        "done": 4,
        "skipped": 0,
        "failed": 1,
        "pending": 0,
    }
    a = json.loads((serial / "cohort_summary.json").read_text())["studies"]
    b = json.loads((ahead / "cohort_summary.json").read_text())["studies"]
    for x, y in zip(a, b, strict=True):
        assert x["study_id"] == y["study_id"] and x["status"] == y["status"]
        if x["status"] == "done":
            assert x["convergence_delta"] == pytest.approx(y["convergence_delta"], abs=1e-7)
            name = Path(
                json.loads((serial / x["study_id"] / "manifest.json").read_text())["outputs"][
                    "attribution_nifti"
                ]
            )
            s = nib.load(str(serial / x["study_id"] / name)).get_fdata()
            p = nib.load(str(ahead / y["study_id"] / name)).get_fdata()
            np.testing.assert_array_equal(s, p)
        else:
            assert x["error"] == y["error"] and "not a readable NIfTI" in y["error"]
    # resumed with prefetch: everything complete is skipped, the bad study is tried again
    assert _run(tiny_model, cohort, ahead, 2) == {
        "done": 0,
        "skipped": 4,
        "failed": 1,
        "pending": 0,
    }


def test_prefetch_must_be_a_count(tiny_model: Path, tmp_path: Path) -> None:
    explainer = Explainer(str(tiny_model), ExplainConfig(baseline="zero", n_steps=2))
    with pytest.raises(InputError, match="prefetch must be an integer >= 0"):
        CohortRunner(explainer, tmp_path / "o", prefetch=-1)
