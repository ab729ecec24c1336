"""Bad models: each is the model's fault (exit 2, a message naming the model file), found
before any baseline or attribution work where it can be."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import Case

reliability = pytest.mark.reliability


def _refused_before_work(
    case: Case,
    model: Path,
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *says: str,
) -> None:
    """The bad ``model`` on a good study: exit 2 naming the model file and ``says``, no
    baseline or attribution work done."""
    case.track(study, model)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, model, tmp_path / "out")
    case.fails(outcome, 2, str(model), *says)


@reliability(
    "model",
    "a TorchScript model that raises (torch.jit.Error, not a RuntimeError) — issue 12",
    "exit 2 naming the model file: the model fails on the prepared input",
)
def test_torchscript_model_that_raises(
    case: Case,
    bad_models: dict[str, Path],
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refused_before_work(
        case,
        bad_models["raising"],
        study,
        tmp_path,
        monkeypatch,
        "the model fails",
        "refuses every input",
    )


@reliability(
    "model",
    "NaN gradients along the path, finite at the input — issue 12",
    "exit 2 naming the model file: gradients are NaN or infinite along the path",
)
def test_nan_gradients_along_the_path(
    case: Case, bad_models: dict[str, Path], study: Path, tmp_path: Path
) -> None:
    model = bad_models["nan_gradient"]
    case.track(study, model)
    outcome = case.explain(study, model, tmp_path / "out", "--baseline", "zero")
    case.fails(outcome, 2, str(model), "gradient", "path", work=True)


@reliability(
    "model",
    "NaN outputs",
    "exit 2 naming the model file, before any baseline or attribution",
)
def test_nan_output(
    case: Case,
    bad_models: dict[str, Path],
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refused_before_work(case, bad_models["nan_output"], study, tmp_path, monkeypatch, "NaN")


@reliability(
    "model",
    "three logits where the spec promises two classes",
    "exit 2 naming the model file and the shapes",
)
def test_output_does_not_match_its_contract(
    case: Case,
    bad_models: dict[str, Path],
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refused_before_work(case, bad_models["wrong_shape"], study, tmp_path, monkeypatch, "(1, 3)")


@reliability(
    "model",
    "a model that runs on one input only (hard-coded batch size 1)",
    "exit 2 naming the model file and the batch, before any baseline",
)
def test_model_that_takes_a_batch_of_one_only(
    case: Case,
    bad_models: dict[str, Path],
    study: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _refused_before_work(case, bad_models["batch_of_one"], study, tmp_path, monkeypatch, "batch")


@reliability("model", "a model that returns a tuple", "exit 2 naming the model file")
def test_model_returning_a_tuple(
    case: Case, bad_models: dict[str, Path], study: Path, tmp_path: Path
) -> None:
    model = bad_models["tuple_output"]
    case.track(study, model)
    outcome = case.explain(study, model, tmp_path / "out")
    case.fails(outcome, 2, str(model), "tuple")


@reliability("model", "a model file that is not a model", "exit 2 naming the file")
def test_model_file_that_is_not_a_model(case: Case, study: Path, tmp_path: Path) -> None:
    model = tmp_path / "inputs" / "model.ts"
    model.write_bytes(b"PK\x03\x04 definitely not torchscript")
    case.track(study, model)
    outcome = case.explain(study, model, tmp_path / "out")
    case.fails(outcome, 2, str(model), "TorchScript")


@reliability("model", "the model file does not exist", "exit 2 naming the file: not found")
def test_missing_model(case: Case, study: Path, tmp_path: Path) -> None:
    model = tmp_path / "inputs" / "absent.ts"
    case.track(study)
    outcome = case.explain(study, model, tmp_path / "out")
    case.fails(outcome, 2, str(model), "not found")


@reliability("model", "--model-spec that is not JSON", "exit 2 naming the spec file")
def test_model_spec_not_json(case: Case, tiny_model: Path, study: Path, tmp_path: Path) -> None:
    spec = tmp_path / "inputs" / "spec.json"
    spec.write_text("{ not json")
    case.track(study, tiny_model, spec)
    outcome = case.explain(study, tiny_model, tmp_path / "out", "--model-spec", str(spec))
    case.fails(outcome, 2, str(spec), "JSON")


@reliability(
    "model",
    "--target 7 for a two-class model",
    "exit 2: target out of range, naming the classes",
)
def test_target_out_of_range(case: Case, tiny_model: Path, study: Path, tmp_path: Path) -> None:
    case.track(study, tiny_model)
    outcome = case.explain(study, tiny_model, tmp_path / "out", "--target", "7")
    case.fails(outcome, 2, "target 7", "2 classes")


@reliability(
    "model",
    "one path point needs more memory than --memory-budget allows",
    "exit 2 before the baseline: the measured bytes per point and the budget, what to change",
)
def test_one_point_does_not_fit_the_memory_budget(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case.track(study, tiny_model)
    case.spy_on_work(monkeypatch)
    outcome = case.explain(study, tiny_model, tmp_path / "out", "--memory-budget", "1KB")
    case.fails(outcome, 2, "one path point needs", "--memory-budget")
