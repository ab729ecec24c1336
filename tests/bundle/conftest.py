"""Fixtures for the bundle tests: a stand-in copy of the bundle and tiny cohorts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.bundle._standin import REPO, standin_bundle


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run 10-20x faster single-threaded on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of bundles/medattr_explain with tiny stand-in weights (fast; the real bundle
    with the shipped weights has its own test in test_workflow.py)."""
    return standin_bundle(tmp_path_factory.mktemp("bundle") / "medattr_explain")


def write_tiny_cohort(root: Path, n: int) -> Path:
    """``n`` small NIfTI studies and a MONAI datalist (``test`` section); returns its path."""
    rows = []
    for k in range(n):
        rng = np.random.default_rng(100 + k)
        data = rng.uniform(0.0, 1.0, (14, 14, 12)).astype(np.float32)
        (root / "img").mkdir(parents=True, exist_ok=True)
        nib.save(
            nib.Nifti1Image(data, np.diag([11.0, 11.0, 13.0, 1.0])),
            str(root / "img" / f"c{k}.nii.gz"),
        )
        rows.append({"image": f"img/c{k}.nii.gz", "label": k % 2})
    (root / "datalist.json").write_text(json.dumps({"test": rows}))
    return root / "datalist.json"


def run_python(
    args: Sequence[str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` with this checkout importable and one thread per process."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
