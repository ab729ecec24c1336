"""Benchmark settings: presets, validation, the resume fingerprint, the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from medattr.benchmarking import BASELINES, METHODS, PRESETS, BenchmarkConfig
from medattr.cli import main
from medattr.errors import InputError


def test_presets_and_overrides() -> None:
    quick = BenchmarkConfig.from_preset("quick", n_studies=3)
    assert quick.n_studies == 3 and quick.preset == "quick"
    full = BenchmarkConfig.from_preset("full")
    assert full.methods == METHODS and full.baselines == BASELINES
    assert full.n_studies == PRESETS["full"]["n_studies"] >= 20
    with pytest.raises(InputError, match="preset must be one of quick, full"):
        BenchmarkConfig.from_preset("medium")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"methods": ("ig", "lime")}, "unknown methods 'lime'"),
        ({"baselines": ()}, "baselines must name at least one"),
        ({"baselines": ("zero", "zero")}, "lists a name twice"),
        ({"n_steps": 0}, "n_steps must be an integer >= 1, got 0"),
        ({"n_studies": -1}, "n_studies must be an integer >= 0"),
        ({"n_studies": 0, "n_healthy": 0}, "at least 1"),
        ({"target_score": "odds"}, "target_score must be one of margin, logit, probability"),
        ({"fixed_reference": "mean"}, "fixed_reference must be one of"),
        ({"cf_threshold": 1.0}, r"cf_threshold must be in \(0.0, 1.0\)"),
        ({"perturbation_fraction": 0.0}, "perturbation_fraction"),
        ({"study_seeds": (1,), "n_studies": 2}, "study_seeds lists 1 seeds"),
    ],
)
def test_bad_settings_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        BenchmarkConfig.from_preset("quick", **change)  # type: ignore[arg-type]


def test_fingerprint_tracks_what_changes_the_numbers_only() -> None:
    base = BenchmarkConfig.from_preset("quick")
    fp = base.fingerprint({"classifier": "abc"})
    # scope: which rows exist
    assert (
        base.replace(n_studies=7, methods=("ig",), baselines=("zero",)).fingerprint(
            {"classifier": "abc"}
        )
        == fp
    )
    # values: what a row contains
    assert base.replace(n_steps=5).fingerprint({"classifier": "abc"}) != fp
    assert base.replace(seed=1).fingerprint({"classifier": "abc"}) != fp
    assert base.fingerprint({"classifier": "other"}) != fp


def test_dict_round_trip() -> None:
    cfg = BenchmarkConfig.from_preset("quick", study_seeds=(5, 6, 7))
    assert BenchmarkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InputError, match="unknown benchmark setting"):
        BenchmarkConfig.from_dict({"n_stepz": 3})


def test_cli_bad_arguments_exit_2_and_write_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["benchmark", "--out", str(out), "--methods", "ig,lime"]) == 2
    assert main(["benchmark", "--out", str(out), "--quick", "--full"]) == 2
    assert main(["benchmark", "--out", str(out), "--quick", "--n-studies", "-1"]) == 2
    missing = tmp_path / "nope.ts"
    assert main(["benchmark", "--out", str(out), "--quick", "--classifier", str(missing)]) == 2
    assert main(["benchmark", "--out", str(out), "--report-only"]) == 2  # no run there
    assert not out.exists()
