"""Fitting the normative anomaly maps end to end (small), and the shipped maps' recipe."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from medattr.generative.normative import load_normative
from medattr.training.normative import NormativeConfig, fit_and_calibrate, main

pytest.importorskip("nilearn")

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_fit_is_saved_calibrated_and_measured(tmp_path: Path) -> None:
    cfg = NormativeConfig(
        fit_seeds=(630_000, 12),
        calibration_seeds=(630_200, 6),
        lesion_eval_seeds=(631_000, 3),
        healthy_eval_seeds=(631_500, 3),
        min_subjects=4,
        workers=1,
    )
    out = tmp_path / "maps.npz"
    norm = fit_and_calibrate(cfg, out)
    back = load_normative(out)
    assert back.sha256 and back.calibration is not None
    assert back.calibration["threshold"] == norm.calibration["threshold"] > 0  # type: ignore[index]
    assert back.calibration["n_healthy"] == 6 and back.calibration["rounds"] == 0
    m = back.info["metrics"]
    assert m["n_lesion"] == 3 and m["n_healthy"] == 3
    assert 0.0 <= m["dice_mean"] <= 1.0 and 0.0 <= m["healthy_empty_fraction"] <= 1.0
    assert back.info["config"] == json.loads(json.dumps(asdict(cfg)))


def test_the_shipped_maps_were_made_by_the_config_in_configs(tmp_path: Path) -> None:
    """``configs/mni_normative.json`` is the recipe recorded in the shipped file, and the
    command line accepts it."""
    fields = json.loads((ROOT / "configs" / "mni_normative.json").read_text())
    recorded = dict(load_normative("builtin:mni-normative").info["config"])
    recorded.pop("workers")
    assert json.loads(json.dumps(asdict(NormativeConfig(**fields)))) == {
        **recorded,
        "workers": NormativeConfig().workers,
    }
    with pytest.raises(SystemExit):
        main(["--config", str(ROOT / "configs" / "mni_normative.json")])  # --out is required
