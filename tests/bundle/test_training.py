"""The bundle's training configs run end to end (tiny) and compare with the shipped metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigWorkflow

from medattr.bundle import ReproductionError, TrainingRun, compare_metrics, stored_metrics
from medattr.generative import load_inpainter, load_vae
from medattr.models import load_model

TINY = {
    "training#kind": "phantom",
    "training#spatial_size": [16, 16, 16],
    "training#pixdim": [12.0, 12.0, 12.0],
    "training#intensity": {"a_min": -200.0, "a_max": 300.0},
    "training#channels": [4, 8],
    "training#strides": [2, 2],
    "training#n_train": 8,
    "training#n_val": 4,
    "training#epochs": 1,
    "training#batch_size": 4,
    "training#workers": 1,
}


def _run(bundle: Path, config: str, base: dict | None = None, **override: object) -> dict:
    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / config),
        workflow_type=None,
        logging_file=False,
        **{**(TINY if base is None else base), **override},
    )
    wf.initialize()
    result = wf.run()[0]
    wf.finalize()
    return result


def test_train_classifier_config_trains_exports_and_compares(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "clf"
    result = _run(
        bundle, "train_classifier.json", output_dir=str(out), strict=False, **{"training#n_test": 4}
    )
    model = load_model(out / "model.ts")
    assert model.spec.spatial_size == (16, 16, 16) and model.spec.class_names == [
        "healthy",
        "lesion",
    ]
    assert model.module(torch.zeros(2, 1, 16, 16, 16)).shape == (2, 2)
    assert model.spec.extra["training"]["n_train"] == 8
    report = json.loads((out / "reproduction.json").read_text())
    # compared with the metrics stored in the bundle's models/model.ts (the stand-in's 0.9)
    assert report["reproduction"]["test_auc"]["reference"] == pytest.approx(0.9)
    assert report["reproduction"]["test_auc"]["new"] == pytest.approx(result["metrics"]["test_auc"])
    assert report["reproduction"]["test_auc"]["tolerance"] == 0.05  # the config's tolerances


def test_train_vae_config_trains_on_healthy_volumes_only(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "vae"
    result = _run(
        bundle,
        "train_vae.json",
        output_dir=str(out),
        strict=False,
        **{"training#latent_size": 4, "training#n_lesion_eval": 2},
    )
    vae = load_vae(out / "vae.ts")
    assert vae.decode(vae.encode(torch.zeros(1, 1, 16, 16, 16))[0]).shape == (1, 1, 16, 16, 16)
    assert result["metrics"]["n_train_healthy"] == 8
    assert set(result["reproduction"]) == {"val_l1", "lesion_error_ratio"}


def test_train_inpainter_config_trains_on_healthy_volumes_and_calibrates(
    bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "inpainter"
    result = _run(
        bundle,
        "train_inpainter.json",
        {k: v for k, v in TINY.items() if k != "training#epochs"},  # trained by steps
        output_dir=str(out),
        strict=False,
        **{
            "training#channels": [4, 8, 16],
            "training#crop": 8,
            "training#steps": 2,
            "training#val_every": 1,
            "training#n_val": 2,
            "training#n_test": 2,
            "training#n_calibration": 3,
            "training#anomaly": {"block_mm": [48.0], "shifts": 1},
        },
    )
    inp = load_inpainter(out / "inpainter.ts")
    x, m = torch.rand(1, 1, 16, 16, 16), torch.zeros(1, 1, 16, 16, 16)
    m[..., 4:8, 4:8, 4:8] = 1
    assert torch.equal(inp.infill(x, m)[m == 0], x[m == 0])
    assert result["metrics"]["n_train_healthy"] == 8
    assert inp.calibration is not None and inp.calibration["n_healthy"] == 3
    assert inp.spec.extra["training"]["seed_base"] == 600_000
    # no inpainter in the stand-in bundle: nothing to compare with
    assert result["reproduction"] is None


def test_out_of_tolerance_fails_a_strict_run(bundle: Path, tmp_path: Path) -> None:
    run = TrainingRun(
        "classifier",
        {k.split("#")[1]: v for k, v in TINY.items()} | {"n_test": 4},
        tmp_path / "model.ts",
        reference=bundle / "models" / "model.ts",
        tolerances={"test_auc": -1.0},  # nothing can be within a negative tolerance
    )
    with pytest.raises(ReproductionError, match=r"test_auc .* vs shipped 0\.9000"):
        run.run()
    assert (tmp_path / "reproduction.json").is_file()  # the report is written first


def test_compare_metrics() -> None:
    rows = compare_metrics(
        {"test_auc": 0.95, "test_accuracy": 0.80},
        {"test_auc": 0.96, "test_accuracy": 0.9},
        {"test_auc": 0.02, "test_accuracy": 0.03, "missing": 0.1},
    )
    assert rows["test_auc"]["ok"] is True and rows["test_auc"]["difference"] == pytest.approx(-0.01)
    assert rows["test_accuracy"]["ok"] is False
    assert rows["missing"]["ok"] is None


def test_stored_metrics_reads_the_weights_metadata(bundle: Path, tmp_path: Path) -> None:
    assert stored_metrics(bundle / "models" / "vae.ts") == {
        "val_l1": 0.05,
        "lesion_error_ratio": 0.6,
    }
    assert stored_metrics(tmp_path / "absent.ts") is None
