"""Training the lesion classifier: splits, paired data, and the metrics it records."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medattr.models import load_model
from medattr.training.classifier import ClassifierTrainingConfig, train_classifier

TINY = {
    "kind": "phantom",
    "spatial_size": (16, 16, 16),
    "pixdim": (12.0, 12.0, 12.0),
    "channels": (4, 8),
    "strides": (2, 2),
    "n_train": 6,
    "n_val": 4,
    "n_test": 4,
    "epochs": 1,
    "batch_size": 4,
    "workers": 1,
}


def test_split_labels_default_alternates_and_full_fraction_makes_every_training_study_a_lesion():
    cfg = ClassifierTrainingConfig(n_train=6, n_val=4, n_test=4)
    assert cfg.split_labels()["train"] == [False, True] * 3
    assert cfg.split_labels()["test"] == [False, True] * 2
    full = ClassifierTrainingConfig(n_train=6, n_val=4, n_test=4, train_lesion_fraction=1.0)
    assert full.split_labels()["train"] == [True] * 6
    assert full.split_labels()["val"] == [False, True] * 2  # evaluation stays balanced
    quarter = ClassifierTrainingConfig(n_train=8, train_lesion_fraction=0.25)
    assert sum(quarter.split_labels()["train"]) == 2
    with pytest.raises(ValueError, match="train_lesion_fraction"):
        ClassifierTrainingConfig(train_lesion_fraction=0.0)


def test_training_records_operating_points(tmp_path: Path) -> None:
    cfg = ClassifierTrainingConfig(**TINY, train_lesion_fraction=1.0)
    metrics = train_classifier(cfg, tmp_path / "clf.ts")
    assert 0.0 < metrics["val_threshold"] < 1.0
    points = metrics["test_operating_points"]
    assert set(points) == {"p0.5", "val_youden"}
    assert points["p0.5"]["threshold"] == 0.5
    assert points["p0.5"]["n_lesion"] + points["p0.5"]["n_healthy"] == metrics["n_test"]
    model = load_model(tmp_path / "clf.ts")
    assert model.spec.extra["training"]["train_lesion_fraction"] == 1.0
    assert model.spec.extra["metrics"]["val_threshold"] == metrics["val_threshold"]
    assert model.module(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 2)


def test_dense_loss_targets_the_cells_holding_the_lesion_and_nothing_in_the_twins() -> None:
    from medattr.training.classifier import _dense_loss, _lesion_cells

    twin = 0.5 + 0.01 * torch.randn(2, 1, 16, 16, 16)
    lesion = twin.clone()
    lesion[0, 0, 2:5, 2:5, 2:5] += 0.1  # one corner cell of the 2x2x2 map
    lesion[1, 0, 9:11, 12:14, 1:3] -= 0.1  # study 2: hypo-intense, another cell
    lesion[1, 0, 0, 0, 0] += 0.01  # below the lesion criterion: not a lesion voxel
    cells = _lesion_cells(torch.cat([lesion, twin]))
    assert cells.shape == (2, 1, 16, 16, 16) and int(cells.sum()) == 27 + 8
    # evidence that says exactly where the lesions are scores better than flat evidence
    right = torch.full((4, 1, 2, 2, 2), -6.0)
    right[0, 0, 0, 0, 0] = right[1, 0, 1, 1, 0] = 6.0
    flat = torch.zeros(4, 1, 2, 2, 2, requires_grad=True)
    assert (
        float(_dense_loss(right, cells, 10.0))
        < 0.01
        < float(_dense_loss(flat.detach(), cells, 10.0))
    )
    _dense_loss(flat, cells, 10.0).backward()
    g = flat.grad
    assert g[0, 0, 0, 0, 0] < 0 and g[1, 0, 1, 1, 0] < 0  # pushed up where the lesions are
    assert bool((g[2:] > 0).all())  # and down everywhere in the twins


def test_dense_training_runs_and_needs_pairs_and_an_evidence_map(tmp_path: Path) -> None:
    cfg = ClassifierTrainingConfig(
        **TINY, train_lesion_fraction=1.0, pool="lse", dense_weight=1.0, jitter="pair"
    )
    metrics = train_classifier(cfg, tmp_path / "dense.ts")
    assert len(metrics["history"]) == 1 and metrics["history"][0]["loss"] > 0
    model = load_model(tmp_path / "dense.ts")
    assert model.spec.extra["training"]["dense_weight"] == 1.0
    assert model.spec.extra["training"]["pool"] == "lse"
    with pytest.raises(ValueError, match="dense_weight"):
        ClassifierTrainingConfig(**{**TINY, "paired": False}, dense_weight=1.0)
    with pytest.raises(ValueError, match="detector"):
        ClassifierTrainingConfig(**TINY, architecture="classifier", dense_weight=1.0)
