"""ExplainConfig: every setting defined once, validated when given, read back as attributes."""

from __future__ import annotations

import pickle

import pytest

from medattr import ExplainConfig
from medattr.errors import InputError
from medattr.explain import all_settings


def test_defaults_and_entry_settings_read_as_attributes() -> None:
    cfg = ExplainConfig()
    assert (cfg.method, cfg.baseline, cfg.n_steps, cfg.formats) == (
        "ig",
        "blur",
        32,
        ("nifti", "png"),
    )
    assert cfg.blur_sigma_mm == 10.0 and cfg.cf_threshold == 0.2 and cfg.references == []
    cfg.n_steps = 12
    assert cfg.n_steps == 12 and cfg.given == {"n_steps": 12}


def test_values_are_converted_and_validated_when_given() -> None:
    cfg = ExplainConfig(n_steps="16", formats="dicom-pm, nifti", target="predicted", seed=3)
    assert cfg.n_steps == 16 and cfg.formats == ("dicom-pm", "nifti") and cfg.seed == 3
    with pytest.raises(InputError, match="blur_sigma_mm must be a finite number"):
        ExplainConfig(blur_sigma_mm=float("nan"))
    with pytest.raises(InputError, match=r"blur_sigma_mm must be >= 0\.0"):
        ExplainConfig(blur_sigma_mm=-1)
    with pytest.raises(InputError, match="internal_batch_size must be"):
        ExplainConfig(internal_batch_size=0)
    with pytest.raises(InputError, match="memory_budget must be"):
        ExplainConfig(memory_budget="lots")
    with pytest.raises(InputError, match="unknown setting"):
        ExplainConfig(blur_sigma=3)
    cfg = ExplainConfig()
    with pytest.raises(InputError, match="n_steps must be"):
        cfg.n_steps = 0
    assert cfg.n_steps == 32  # a refused change leaves the configuration as it was


def test_names_are_checked_against_the_registries() -> None:
    with pytest.raises(InputError, match=r"method must be one of .*ig"):
        ExplainConfig(method="lime")
    with pytest.raises(InputError, match=r"baseline must be one of .*file:PATH"):
        ExplainConfig(baseline="vacuum")
    with pytest.raises(InputError, match="needs an argument: file:PATH"):
        ExplainConfig(baseline="file")
    with pytest.raises(InputError, match="takes no argument"):
        ExplainConfig(baseline="blur:3")
    with pytest.raises(InputError, match=r"unknown output format\(s\) tiff"):
        ExplainConfig(formats="nifti,tiff")
    with pytest.raises(InputError, match="needs reference volumes"):
        ExplainConfig(method="expected-gradients")
    with pytest.raises(InputError, match="split-ig cannot split"):
        ExplainConfig(method="split-ig", distributed_paths=True)


def test_to_dict_holds_the_settings_this_run_uses_and_round_trips() -> None:
    cfg = ExplainConfig(baseline="vae-guided", formats=("dicom-seg",), seg_top_percent=2.0)
    d = cfg.to_dict()
    assert d["seg_top_percent"] == 2.0 and d["cf_steps"] == 150 and d["n_steps"] == 32
    assert "blur_sigma_mm" not in d and "nt_samples" not in d  # not used by this run
    assert ExplainConfig(**d) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert cfg.replace(n_steps=8).n_steps == 8 and cfg.n_steps == 32


def test_every_setting_has_help_and_a_valid_default() -> None:
    for name, setting in all_settings().items():
        assert setting.help, name
        assert setting.convert(setting.default) == setting.default or name == "device"
