"""Baselines: what "absence of signal" is for a path method.

Classic ones live here; counterfactual (VAE) ones in :mod:`medattr.baselines.counterfactual`.
Any method accepts a baseline object, a tensor broadcastable to the inputs, a number, or
``None`` (zeros); :func:`resolve_baselines` turns each into a tensor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from medattr.baselines._base import Baseline, BaselineContext, BaselineResult
from medattr.baselines.classic import (
    ConstantBaseline,
    GaussianBlurBaseline,
    GaussianNoiseBaseline,
    TensorBaseline,
    UniformNoiseBaseline,
    ZeroBaseline,
    blur_mm,
)

__all__ = [
    "BASELINES",
    "Baseline",
    "BaselineContext",
    "BaselineResult",
    "ConstantBaseline",
    "GaussianBlurBaseline",
    "GaussianNoiseBaseline",
    "TensorBaseline",
    "UniformNoiseBaseline",
    "ZeroBaseline",
    "blur_mm",
    "make_baseline",
    "resolve_baselines",
]

BASELINES: dict[str, type[Baseline]] = {
    "zero": ZeroBaseline,
    "constant": ConstantBaseline,
    "blur": GaussianBlurBaseline,
    "noise-uniform": UniformNoiseBaseline,
    "noise-gaussian": GaussianNoiseBaseline,
}


def make_baseline(name: str, **settings: Any) -> Baseline:
    """Build a registered baseline by name, e.g. ``make_baseline("blur", sigma_mm=8)``."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ValueError(
            f"unknown baseline {name!r}; choose from {', '.join(sorted(BASELINES))}"
        ) from None
    return cls(**settings)


def resolve_baselines(
    baselines: Baseline | Tensor | float | int | None,
    inputs: Tensor,
    context: BaselineContext | None = None,
) -> BaselineResult:
    """Turn any accepted baseline specification into a tensor of the inputs' shape."""
    if baselines is None:
        return ZeroBaseline().generate(inputs, context)
    if isinstance(baselines, Baseline):
        result = baselines.generate(inputs, context)
        if tuple(result.baselines.shape) != tuple(inputs.shape):
            raise ValueError(
                f"{type(baselines).__name__} returned shape {tuple(result.baselines.shape)}, "
                f"expected {tuple(inputs.shape)}"
            )
        result.info.setdefault("baseline", baselines.describe())
        return result
    if isinstance(baselines, bool):
        raise TypeError("baselines must be a tensor, a number, a Baseline or None, not a bool")
    if isinstance(baselines, int | float):
        return BaselineResult(
            torch.full_like(inputs, float(baselines)),
            {"baseline": {"name": "constant", "value": float(baselines)}},
        )
    if isinstance(baselines, Tensor):
        t = baselines.as_tensor() if hasattr(baselines, "as_tensor") else baselines
        return TensorBaseline(t).generate(inputs, context)
    raise TypeError(
        f"baselines must be a tensor, a number, a Baseline or None; got {type(baselines).__name__}"
    )
