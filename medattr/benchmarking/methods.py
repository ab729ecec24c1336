"""Run the benchmarked attribution methods for one study and one baseline.

IG and Split IG come from one path evaluation: Split IG's left and right parts add up to IG on
the same quadrature nodes (Miglani et al. 2020), so the benchmark runs
:class:`~medattr.SplitIntegratedGradients` once and reads both. SmoothGrad averages IG over
noisy copies of the input (the baseline stays fixed); Expected Gradients draws its references
from a bank of healthy subjects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from medattr.attribution import (
    ExpectedGradients,
    IntegratedGradients,
    SmoothGrad,
    SplitIntegratedGradients,
)
from medattr.benchmarking.config import BenchmarkConfig

__all__ = [
    "MethodResult",
    "run_expected_gradients",
    "run_ig",
    "run_path_methods",
    "run_registered",
]


@dataclass
class MethodResult:
    """One attribution map and the numbers needed to judge it.

    ``completeness`` is the relative completeness error ``|sum(phi) - (F - f(x'))| / |F - f(x')|``
    where ``F`` is what the method's sum should reach: ``f(x)`` for IG and EG (with the mean
    ``f`` over drawn references for EG), ``f(gamma(alpha*))`` for Split IG's left part, and the
    mean ``f`` over the noisy copies for SmoothGrad.
    """

    method: str
    attributions: Tensor
    f_input: float
    f_baseline: float
    completeness: float
    seconds: float
    n_evaluations: int
    extras: dict[str, Any] = field(default_factory=dict)


def _relative(delta: float, span: float) -> float:
    if span == 0:
        return math.inf if delta != 0 else math.nan
    return abs(delta) / abs(span)


def _engine_options(cfg: BenchmarkConfig) -> dict[str, Any]:
    return {"internal_batch_size": cfg.internal_batch_size, "progress": False}


def run_path_methods(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    baseline: Tensor,
    score: Callable[[Tensor], Tensor],
    cfg: BenchmarkConfig,
    wanted: set[str],
) -> dict[str, MethodResult]:
    """The subset ``wanted`` of ``{"ig", "split-ig", "smoothgrad"}`` for ``x`` ``(1, C, ...)``."""
    out: dict[str, MethodResult] = {}
    if wanted & {"ig", "split-ig"}:
        sig = SplitIntegratedGradients(model, **_engine_options(cfg))
        exp = sig.explain(
            x,
            baseline,
            score,
            n_steps=cfg.n_steps,
            method=cfg.quadrature,
            ratio=cfg.split_ratio,
            part="left",
        )
        f_x, f_b = float(exp.f_input[0]), float(exp.f_baseline[0])
        split = exp.extras["split"]
        left = exp.attributions
        ig_delta = float(exp.extras["ig_delta"][0])
        f_star = float(exp.extras["f_alpha_star"][0])
        seconds, n_eval = exp.seconds, exp.n_evaluations
        if "ig" in wanted:
            out["ig"] = MethodResult(
                "ig",
                (left + split.right).detach(),
                f_x,
                f_b,
                _relative(ig_delta, f_x - f_b),
                seconds,
                n_eval,
                extras={"delta": ig_delta, "shared_path_with": "split-ig"},
            )
        if "split-ig" in wanted:
            out["split-ig"] = MethodResult(
                "split-ig",
                left.detach(),
                f_x,
                f_b,
                _relative(float(exp.convergence_delta[0]), f_star - f_b),
                seconds,
                n_eval,
                extras={
                    "delta": float(exp.convergence_delta[0]),
                    "alpha_star": float(exp.extras["alpha_star"][0]),
                    "saturated": bool(exp.extras["saturated"][0]),
                    "f_alpha_star": f_star,
                },
            )
    if "smoothgrad" in wanted:
        sg = SmoothGrad(model, "integrated_gradients", **_engine_options(cfg))
        exp = sg.explain(
            x,
            score,
            nt_samples=cfg.nt_samples,
            noise_level=cfg.noise_level,
            seed=cfg.seed,
            baselines=baseline,
            n_steps=cfg.sg_steps,
            method=cfg.quadrature,
        )
        f_noisy = float(exp.extras["f_noisy_mean"][0])
        f_b = float(exp.f_baseline[0])
        delta = float(exp.convergence_delta[0])
        out["smoothgrad"] = MethodResult(
            "smoothgrad",
            exp.attributions.detach(),
            float(exp.f_input[0]),
            f_b,
            _relative(delta, f_noisy - f_b),
            exp.seconds,
            exp.n_evaluations,
            extras={"delta": delta, "f_noisy_mean": f_noisy},
        )
    for name in sorted(wanted - {"ig", "split-ig", "smoothgrad"}):
        out[name] = run_registered(name, model, x, baseline, score, cfg)
    return out


def run_registered(
    name: str,
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    baseline: Tensor,
    score: Callable[[Tensor], Tensor],
    cfg: BenchmarkConfig,
) -> MethodResult:
    """Any other registered path method with one baseline per input, with its settings from
    the run (see :meth:`BenchmarkConfig.entry_settings`); completeness against f(x) - f(x')."""
    from medattr.attribution import get

    cls = get(name)
    settings = {**cfg.entry_settings(cls), "seed": cfg.seed}
    method = cls.from_settings(model, settings, **_engine_options(cfg))
    return _result(name, method.explain_study(x, baseline, score, settings), {})


def run_ig(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    baseline: Tensor,
    score: Callable[[Tensor], Tensor],
    cfg: BenchmarkConfig,
) -> Tensor:
    """Plain IG attributions (for max-sensitivity's perturbed inputs)."""
    ig = IntegratedGradients(model, **_engine_options(cfg))
    return ig.explain(x, baseline, score, n_steps=cfg.n_steps, method=cfg.quadrature).attributions


def run_expected_gradients(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    references: Tensor,
    score: Callable[[Tensor], Tensor],
    cfg: BenchmarkConfig,
) -> MethodResult:
    """Expected Gradients over the healthy reference bank ``(R, C, *spatial)``."""
    eg = ExpectedGradients(model, **_engine_options(cfg))
    exp = eg.explain(x, references, score, n_samples=cfg.eg_samples, seed=cfg.seed)
    return _result("eg", exp, {"n_references": int(references.shape[0])})


def _result(name: str, exp: Any, extras: dict[str, Any]) -> MethodResult:
    """A method's result judged against f(x) - f(x') (completeness of the whole path)."""
    f_x, f_b = float(exp.f_input[0]), float(exp.f_baseline[0])
    delta = float(exp.convergence_delta[0])
    return MethodResult(
        name,
        exp.attributions.detach(),
        f_x,
        f_b,
        _relative(delta, f_x - f_b),
        exp.seconds,
        exp.n_evaluations,
        extras={"delta": delta, **extras},
    )
