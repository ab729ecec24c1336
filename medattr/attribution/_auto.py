"""``n_steps="auto"``: the path methods' bridge to :func:`adaptive_path_integral`.

A path method given ``n_steps="auto"`` integrates each of its straight paths adaptively until
completeness holds within ``completeness_rtol`` (or ``max_steps`` points were spent) instead
of on a fixed rule; the settings below are declared by every method that takes ``n_steps``, so
``--steps auto --completeness-rtol 0.01 --max-steps 512`` and the bundle's
``"n_steps": "auto"`` reach it. What the rule did (points per input, the error reached, why it
stopped) is returned as ``extras["adaptive"]`` and written to the manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from medattr.attribution.jobs import EngineResult
from medattr.registry import Setting

if TYPE_CHECKING:
    from medattr.attribution._adaptive_result import AdaptiveResult

__all__ = [
    "AUTO",
    "COMPLETENESS_RTOL",
    "MAX_STEPS",
    "adaptive_record",
    "auto_settings",
    "engine_result",
    "is_auto",
    "merge_records",
    "steps_value",
]

AUTO = "auto"


def steps_value(value: Any) -> int | str:
    """A path-point count (a positive integer) or ``"auto"``; ``ValueError`` otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == AUTO:
            return AUTO
        return int(text)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


steps_value.expected = "a positive integer or 'auto'"  # type: ignore[attr-defined]


def is_auto(n_steps: Any) -> bool:
    """Whether ``n_steps`` asks for the adaptive rule."""
    return isinstance(n_steps, str) and n_steps.strip().lower() == AUTO


COMPLETENESS_RTOL = Setting(
    "completeness_rtol",
    0.01,
    "with --steps auto: stop when |sum(phi) - (f(x) - f(x'))| <= this fraction of |f(x) - f(x')|",
    type=float,
    minimum=0.0,
    exclusive_minimum=True,
    maximum=0.5,
)
MAX_STEPS = Setting(
    "max_steps",
    512,
    "with --steps auto: most path points per path (then reported as not converged)",
    type=int,
    minimum=2,
)


def engine_result(res: AdaptiveResult) -> EngineResult:
    """The engine statistics of an adaptive run in the shape :class:`PathCall` reports."""
    return EngineResult(
        res.sums,
        torch.empty(0, dtype=torch.float64),
        list(res.chunk_sizes),
        res.oom_retries,
        res.bytes_per_point,
        res.engine_seconds,
    )


def auto_settings(rtol: float, max_steps: int) -> dict[str, Any]:
    """The method settings an adaptive run records."""
    return {"n_steps": AUTO, "completeness_rtol": rtol, "max_steps": max_steps}


def adaptive_record(res: AdaptiveResult, rtol: float, max_steps: int) -> dict[str, Any]:
    """JSON-able summary per input: points spent, completeness error reached (absolute and
    relative to ``|f(x) - f(x')|``), whether the tolerance was met and why the rule stopped."""
    span = res.span.abs()
    relative: Tensor = torch.where(
        span > 0, res.error.abs() / span.clamp_min(1e-300), torch.full_like(span, float("nan"))
    )
    return {
        "completeness_rtol": rtol,
        "max_steps": max_steps,
        "steps_used": [int(v) for v in res.n_evaluations.tolist()],
        "completeness_error": [float(v) for v in res.error.tolist()],
        "relative_error": [float(v) for v in relative.tolist()],
        "converged": [bool(v) for v in res.converged.tolist()],
        "stopped": list(res.stopped),
        "rounds": int(res.rounds),
    }


def merge_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from several adaptive runs over successive paths (SmoothGrad's groups of
    noisy copies): the per-path lists concatenated in order, the rounds added up."""
    if not records:
        return {}
    out = dict(records[0])
    for key in ("steps_used", "completeness_error", "relative_error", "converged", "stopped"):
        out[key] = [v for r in records for v in r[key]]
    out["rounds"] = sum(r["rounds"] for r in records)
    return out
