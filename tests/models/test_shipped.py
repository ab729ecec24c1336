"""The shipped weights: present, hashing as recorded, loadable, and measuring what they claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medattr.models import BUILTIN_MODELS, builtin_model_path, file_sha256, load_model
from medattr.preprocess import Preprocessor
from medattr.training.classifier import _roc_auc

ASSETS = Path(builtin_model_path("phantom")).parent


def _sums() -> dict[str, str]:
    rows = (ASSETS / "SHA256SUMS").read_text().split("\n")
    pairs = (r.split(maxsplit=1) for r in rows if r.strip())
    return {name.strip(): digest for digest, name in pairs}


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_shipped_model_matches_its_recorded_sha256(name: str) -> None:
    path = builtin_model_path(name)
    assert path.exists(), f"{path} is missing"
    assert _sums()[path.name] == file_sha256(path)
    assert path.stat().st_size < 5 * 2**20


def test_phantom_classifier_loads_with_its_contract() -> None:
    model = load_model("builtin:phantom")
    spec = model.spec
    assert spec.task == "classification" and spec.class_names == ["healthy", "lesion"]
    assert spec.pixdim is not None and spec.spatial_size is not None
    x = torch.zeros(1, 1, *spec.spatial_size)
    with torch.no_grad():
        assert model.module(x).shape == (1, 2)


def test_phantom_classifier_recorded_test_auc_is_reproduced_on_its_test_split() -> None:
    """Re-render the first studies of the recorded test split and measure the AUC again."""
    from medattr.data.phantoms import make_phantom
    from medattr.training.classifier import ClassifierTrainingConfig

    model = load_model("builtin:phantom")
    training = model.spec.extra["training"]
    cfg = ClassifierTrainingConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in training.items()}
    )
    seeds = cfg.split_seeds()["test"][:60]
    labels = np.array([i % 2 == 1 for i in range(len(seeds))])
    pre = Preprocessor(model.spec)
    scores = []
    for seed, lesion in zip(seeds, labels, strict=True):
        study = make_phantom(seed, lesion=bool(lesion), shape=cfg.spatial_size, spacing=cfg.pixdim)
        x = pre(study.image).image
        with torch.no_grad():
            scores.append(float(torch.softmax(model.module(x), 1)[0, 1]))
    measured = _roc_auc(np.array(scores), labels)
    recorded = model.spec.extra["metrics"]["test_auc"]
    assert recorded >= 0.8, recorded
    # 60 of the 400 test studies: the AUC's sampling error is about 0.05 (1 sd)
    assert abs(measured - recorded) < 0.15, (measured, recorded)
    assert measured >= 0.7, measured


def test_the_phantom_training_config_in_the_repo_is_the_one_the_weights_record() -> None:
    """`python -m monai.bundle run --config_file configs/train_phantom_classifier.json`
    retrains the shipped classifier: its settings must be the ones stored in the weights."""
    from dataclasses import asdict

    from monai.bundle import ConfigParser

    from medattr.bundle import TrainingRun

    root = Path(__file__).resolve().parents[2]
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train_phantom_classifier.json"))
    trainer = parser.get_parsed_content("trainer")
    assert isinstance(trainer, TrainingRun) and trainer.task == "classifier"
    assert Path(trainer.reference or "") == builtin_model_path("phantom")
    recorded = load_model("builtin:phantom").spec.extra["training"]

    def plain(d: dict) -> dict:
        return json.loads(json.dumps(d))

    assert plain(asdict(trainer.config)) == plain(recorded)
