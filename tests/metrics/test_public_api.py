"""Every name in the metrics' ``__all__`` lists imports, and the package re-exports them."""

from __future__ import annotations

import importlib

import pytest

import medattr.metrics as metrics

MODULES = [
    "medattr.metrics.completeness",
    "medattr.metrics.localisation",
    "medattr.metrics.perturbation",
    "medattr.metrics.robustness",
    "medattr.metrics.roc",
    "medattr.metrics.scoring",
    "medattr.metrics.stats",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_all_names_exist_and_are_reexported(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"
        assert getattr(metrics, attr) is getattr(module, attr), attr
        assert attr in metrics.__all__, attr


def test_package_all_is_sorted_and_importable() -> None:
    assert list(metrics.__all__) == sorted(metrics.__all__)
    for attr in metrics.__all__:
        assert getattr(metrics, attr) is not None
