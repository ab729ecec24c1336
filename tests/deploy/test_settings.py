"""MEDATTR_* variables and model lookup for packaged applications."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medattr.deploy import SeriesExplainer, find_model, resolve_model, settings_from_env
from medattr.errors import InputError, ModelError


def test_only_the_variables_set_become_settings() -> None:
    assert settings_from_env({}) == {}
    env = {
        "MEDATTR_METHOD": "split-ig",
        "MEDATTR_BASELINE": " zero ",
        "MEDATTR_N_STEPS": "64",
        "MEDATTR_FORMATS": "dicom-rgb,,nifti ",
        "MEDATTR_DEVICE": "cuda:1",
        "MEDATTR_RESAMPLE": "yes",
        "MEDATTR_ON_ERROR": "skip",
        "MEDATTR_OPTIONS": '{"target": 1, "seg_top_percent": 2.5}',
        "UNRELATED": "x",
    }
    assert settings_from_env(env) == {
        "method": "split-ig",
        "baseline": "zero",
        "n_steps": 64,
        "formats": ("dicom-rgb", "nifti"),
        "device": "cuda:1",
        "resample": True,
        "on_error": "skip",
        "options": {"target": 1, "seg_top_percent": 2.5},
    }
    assert settings_from_env({"MEDATTR_RESAMPLE": "0"}) == {"resample": False}


def test_the_settings_are_accepted_by_the_explainer(tiny_model: Path, tmp_path: Path) -> None:
    env = {"MEDATTR_N_STEPS": "3", "MEDATTR_FORMATS": "dicom-seg", "MEDATTR_DEVICE": "cpu"}
    ex = SeriesExplainer(tiny_model, tmp_path, **settings_from_env(env))
    assert (ex.config.n_steps, ex.config.formats, ex.config.device) == (3, ("dicom-seg",), "cpu")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MEDATTR_N_STEPS": "many"},
            "MEDATTR_N_STEPS must be a positive integer or 'auto', got 'many'",
        ),
        ({"MEDATTR_RESAMPLE": "maybe"}, "MEDATTR_RESAMPLE must be 1 or 0"),
        ({"MEDATTR_OPTIONS": "{target: 1}"}, "MEDATTR_OPTIONS is not valid JSON"),
        ({"MEDATTR_OPTIONS": "[1]"}, "MEDATTR_OPTIONS must be a JSON object, got list"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        settings_from_env(env)


def _bundle(root: Path, model: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy(model, root / "models" / "model.ts")
    return root


def test_a_model_file_or_bundle_is_itself(tiny_model: Path, tmp_path: Path) -> None:
    assert find_model(tiny_model) == tiny_model
    bundle = _bundle(tmp_path / "bundle", tiny_model)
    assert find_model(bundle) == bundle


def test_the_one_model_of_a_packaged_models_folder_is_found(
    tiny_model: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "classifier").mkdir(parents=True)
    shutil.copy(tiny_model, models / "classifier" / "model.ts")
    assert find_model(models) == models / "classifier" / "model.ts"
    other = tmp_path / "bundles"
    bundle = _bundle(other / "lesion", tiny_model)
    (other / ".cache").mkdir()
    assert find_model(other) == bundle


def test_a_folder_with_no_or_several_models_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no model") as err:
        find_model(empty)
    assert str(empty) in str(err.value)
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy(tiny_model, two / "a.ts")
    shutil.copy(tiny_model, two / "b.pt")
    with pytest.raises(ModelError, match="2 models") as err:
        find_model(two)
    assert "a.ts" in str(err.value) and "b.pt" in str(err.value)
    with pytest.raises(ModelError, match="model not found"):
        find_model(tmp_path / "absent.ts")


def test_the_command_line_model_wins_then_the_variables(tiny_model: Path, tmp_path: Path) -> None:
    packaged = tmp_path / "opt_models"
    (packaged / "m").mkdir(parents=True)
    shutil.copy(tiny_model, packaged / "m" / "model.ts")
    env = {"MEDATTR_MODEL": "builtin:phantom", "HOLOSCAN_MODEL_PATH": str(packaged)}
    assert resolve_model(str(tiny_model), env) == str(tiny_model)
    assert resolve_model(None, env) == "builtin:phantom"
    assert resolve_model(None, {"MEDATTR_MODEL": str(tiny_model)}) == str(tiny_model)
    assert resolve_model("", {"HOLOSCAN_MODEL_PATH": str(packaged)}) == str(
        packaged / "m" / "model.ts"
    )
    with pytest.raises(ModelError, match="MEDATTR_MODEL"):
        resolve_model(None, {"HOLOSCAN_MODEL_PATH": str(tmp_path / "missing")})
