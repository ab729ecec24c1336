"""The bundle's models/ are verified copies of the shipped weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import medattr.bundle.sync_models as sync
from medattr.errors import ModelError
from medattr.models.loading import file_sha256
from tests.bundle._standin import BUNDLE, write_standin_models


@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-in 'shipped' assets, found by sync_models as builtin mni / mni-vae."""
    folder = tmp_path / "assets"
    write_standin_models(folder)
    names = {"mni": folder / "model.ts", "mni-vae": folder / "vae.ts"}
    monkeypatch.setattr(sync, "builtin_model_path", lambda name: names[name])
    return folder


def test_sync_copies_checks_and_refreshes_metadata(assets: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE / "configs", bundle / "configs")
    assert sync.main(["--bundle", str(bundle), "--check"]) == 1  # nothing there yet
    report = sync.sync_models(bundle)
    assert {k: v["matched"] for k, v in report.items()} == {"model.ts": False, "vae.ts": False}
    for name in ("model.ts", "vae.ts"):
        assert file_sha256(bundle / "models" / name) == file_sha256(assets / name)
    assert sync.main(["--bundle", str(bundle), "--check"]) == 0
    (bundle / "models" / "vae.ts").write_bytes(b"stale")
    assert sync.main(["--bundle", str(bundle), "--check"]) == 1
    assert sync.main(["--bundle", str(bundle), "--update-metadata"]) == 0
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["eval_metrics"] == {
        "test_auc": 0.9,
        "test_accuracy": 0.85,
        "val_auc": 0.91,
        "vae_val_l1": 0.05,
        "vae_lesion_error_ratio": 0.6,
    }


def test_sync_refuses_missing_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "builtin_model_path", lambda name: tmp_path / f"{name}.ts")
    with pytest.raises(ModelError, match="shipped model not found"):
        sync.sync_models(tmp_path / "bundle")
    assert sync.main(["--bundle", str(tmp_path / "bundle")]) == 2


def test_repository_bundle_holds_the_shipped_weights_or_none() -> None:
    """Once medattr/assets has the brain models, the bundle's copies must match them; until
    then the bundle must not carry weights (stand-ins are never committed)."""
    shipped = {}
    for name, builtin in sync.BUNDLE_MODELS.items():
        try:
            path = sync.builtin_model_path(builtin)
        except ModelError:
            path = None
        shipped[name] = path if path is not None and path.is_file() else None
    for name, source in shipped.items():
        copy = BUNDLE / "models" / name
        if source is None:
            assert not copy.exists(), f"{copy} exists but medattr ships no {name} to match"
        elif copy.exists():
            assert file_sha256(copy) == file_sha256(source), (
                "run python -m medattr.bundle.sync_models"
            )
            config = "train_classifier.json" if name == "model.ts" else "train_vae.json"
            _assert_train_config_matches(copy, config)
        else:
            pytest.fail(f"{copy} is missing: run python -m medattr.bundle.sync_models")


def _assert_train_config_matches(weights: Path, config: str) -> None:
    """The bundle's training config is the one the shipped weights were trained with."""
    from medattr.models.loading import load_torchscript

    _, meta = load_torchscript(weights, torch.device("cpu"))
    stored = meta["medattr"]["extra"]["training"]
    wanted = json.loads((BUNDLE / "configs" / config).read_text())["training"]
    wanted = {k: v for k, v in wanted.items() if k != "_target_"}
    ignore = {"workers"}  # parallel rendering does not change the data
    assert {k: v for k, v in wanted.items() if k not in ignore} == {
        k: v for k, v in stored.items() if k in wanted and k not in ignore
    }
    assert set(stored) <= set(wanted), f"{config} lacks {sorted(set(stored) - set(wanted))}"


def test_train_config_check_catches_a_difference(tmp_path: Path) -> None:
    """The comparison above has teeth: weights trained with other settings are caught."""
    from medattr.models import export_torchscript
    from tests.bundle._standin import standin_spec

    cfg = json.loads((BUNDLE / "configs" / "train_classifier.json").read_text())["training"]
    stored = {k: v for k, v in cfg.items() if k != "_target_"}
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16**3, 2))
    export_torchscript(net, standin_spec(training=stored), tmp_path / "same.ts")
    _assert_train_config_matches(tmp_path / "same.ts", "train_classifier.json")
    export_torchscript(net, standin_spec(training={**stored, "epochs": 3}), tmp_path / "other.ts")
    with pytest.raises(AssertionError):
        _assert_train_config_matches(tmp_path / "other.ts", "train_classifier.json")
