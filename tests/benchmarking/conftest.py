"""Fixtures for the benchmark tests: tiny stand-in models and one quick-preset run.

The stand-ins are untrained (random weights) on a 24^3 grid of 8 mm voxels: the tests check
the benchmark's machinery (every row, resumption, aggregation, report), not the numbers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from medattr.models import IntensitySpec, ModelSpec, export_torchscript

GRID = (24, 24, 24)
SPACING = (8.0, 8.0, 8.0)


def require_nilearn() -> None:
    """MNI studies need nilearn: a missing module fails under CI and skips elsewhere."""
    try:
        import nilearn  # noqa: F401
    except ImportError:
        message = "nilearn not installed (pip install -e '.[dev]')"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class TinyModels:
    classifier: Path
    vae: Path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """An untrained classifier and VAE with MNI training records (test split: seeds 12-27)."""
    from monai.networks.nets import Classifier

    from medattr.generative import HealthyVAE

    out = tmp_path_factory.mktemp("bench_models")
    torch.manual_seed(0)
    clf = Classifier(in_shape=(1, *GRID), classes=2, channels=(4, 8), strides=(2, 2)).eval()
    export_torchscript(
        clf,
        ModelSpec(
            class_names=["healthy", "lesion"],
            default_target=1,
            pixdim=SPACING,
            spatial_size=GRID,
            intensity=IntensitySpec(a_min=0.0, a_max=1.0),
            extra={
                "training": {"kind": "mni", "seed_base": 0, "n_train": 10, "n_val": 2, "n_test": 16}
            },
        ),
        out / "clf.ts",
    )
    vae = HealthyVAE((1, *GRID), latent_size=8, channels=(4, 8), strides=(2, 2)).eval()
    export_torchscript(
        vae,
        ModelSpec(
            class_names=["healthy"],
            default_target=0,
            pixdim=SPACING,
            spatial_size=GRID,
            intensity=IntensitySpec(a_min=0.0, a_max=1.0),
            extra={
                "latent_size": 8,
                "training": {
                    "kind": "mni",
                    "seed_base": 500_000,
                    "n_train": 10,
                    "n_val": 2,
                    "n_lesion_eval": 2,
                },
            },
        ),
        out / "vae.ts",
    )
    return TinyModels(out / "clf.ts", out / "vae.ts")


@dataclass
class QuickRun:
    out: Path
    docs: Path
    config: Any
    summary: dict[str, Any]


@pytest.fixture(scope="session")
def quick_run(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """The quick preset, end to end, with the stand-ins (shared by several tests: read only)."""
    require_nilearn()
    from medattr.benchmarking import BenchmarkConfig, run_benchmark

    root = tmp_path_factory.mktemp("bench_quick")
    cfg = BenchmarkConfig.from_preset(
        "quick", classifier=str(tiny_models.classifier), vae=str(tiny_models.vae)
    )
    docs = root / "docs" / "results.md"
    summary = run_benchmark(cfg, root / "run", docs=docs)
    return QuickRun(root / "run", docs, cfg, summary)
