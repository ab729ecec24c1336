"""Baselines: what "absence of signal" is for a path method, one registered class per name.

Classic ones (zero, constant, blur, noise) in :mod:`~medattr.baselines.classic`; counterfactual
ones (this patient without the disease) in :mod:`~medattr.baselines.counterfactual`.
Any method accepts a baseline object, a tensor broadcastable to the inputs, a number, or
``None`` (zeros); :func:`resolve_baselines` turns each into a tensor. A new baseline is one
class decorated with :func:`register` (see ``docs/extending.md``)::

    @medattr.baselines.register("my-baseline")
    class MyBaseline(Baseline): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medattr._baseline import (
    Baseline,
    BaselineContext,
    BaselineResult,
    BaselineSetup,
    resolve_baselines,
)
from medattr.baselines._registry import BASELINES, register
from medattr.baselines.classic import (
    ConstantBaseline,
    GaussianBlurBaseline,
    GaussianNoiseBaseline,
    TensorBaseline,
    UniformNoiseBaseline,
    ZeroBaseline,
    blur_mm,
)
from medattr.baselines.reference import reference_bank

__all__ = [
    "BASELINES",
    "Baseline",
    "BaselineContext",
    "BaselineResult",
    "BaselineSetup",
    "ConstantBaseline",
    "GaussianBlurBaseline",
    "GaussianNoiseBaseline",
    "TensorBaseline",
    "UniformNoiseBaseline",
    "ZeroBaseline",
    "blur_mm",
    "create",
    "get",
    "make_baseline",
    "names",
    "parse_name",
    "reference_bank",
    "register",
    "resolve_baselines",
]


names = BASELINES.names
"""Every available baseline name (built-in and plug-in)."""


def get(name: str) -> type[Baseline]:
    """The class registered as ``name`` (an :class:`~medattr.registry.UnknownNameError`,
    listing the available names, if none is)."""
    return BASELINES.get(parse_name(name)[0])


def parse_name(name: str) -> tuple[str, str | None]:
    """``"file:scan.nii.gz"`` → ``("file", "scan.nii.gz")``; ``"blur"`` → ``("blur", None)``."""
    base, sep, argument = name.partition(":")
    return base, (argument if sep else None)


def make_baseline(name: str, **settings: Any) -> Baseline:
    """Build a registered baseline by name with ``__init__`` keywords, e.g.
    ``make_baseline("blur", sigma_mm=8)``."""
    return get(name)(**settings)


def create(name: str, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
    """Build the baseline ``name`` (``name:ARGUMENT`` allowed) from setting values by setting
    name (e.g. ``{"blur_sigma_mm": 8.0}``) for the model and study in ``setup``."""
    base, argument = parse_name(name)
    cls = BASELINES.get(base)
    if argument is not None:
        setup = BaselineSetup(**{**setup.__dict__, "argument": argument})
    return cls.from_settings(settings, setup)
