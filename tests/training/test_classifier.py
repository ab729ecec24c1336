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
