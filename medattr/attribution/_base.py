"""What the path methods share: input handling, engine settings, the Explanation record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medattr.attribution.engine import AMP, PathEngine, normalize_args
from medattr.baselines import Baseline, BaselineContext, BaselineResult, resolve_baselines
from medattr.targets import BoundTarget, Target, TargetLike, bind_target

__all__ = ["Explanation", "PathAttribution"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()


@dataclass
class Explanation:
    """The full result of an attribution call.

    Attributes
    ----------
    attributions
        Tensor with the input's shape ``(B, C, *spatial)``.
    convergence_delta
        float64 ``(B,)``: sum of attributions minus ``f(x) - f(x')`` (for Expected Gradients,
        minus ``f(x)`` less the mean ``f`` over the drawn references).
    f_input, f_baseline
        Target value at the inputs and at the baselines (float64, ``(B,)``), in float32
        precision whatever the autocast setting.
    method
        The method's name; ``settings`` its parameters (JSON-able).
    n_evaluations
        Gradient evaluations spent (path points), not counting endpoint forwards.
    seconds
        Wall time of the call.
    baselines
        The baseline tensor used (bank of references for Expected Gradients).
    extras
        Method-specific results (Split IG: ``alpha_star``, ``right``; SmoothGrad: per-draw
        deltas; baseline reports under ``"baseline"``).
    """

    attributions: Tensor
    convergence_delta: Tensor
    f_input: Tensor
    f_baseline: Tensor
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    n_evaluations: int = 0
    seconds: float = 0.0
    chunk_sizes: list[int] = field(default_factory=list)
    oom_retries: int = 0
    baselines: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def relative_delta(self) -> Tensor:
        """``|delta| / |f(x) - f(x')|`` per sample (inf where the difference is zero)."""
        denom = (self.f_input - self.f_baseline).abs()
        return self.convergence_delta.abs() / denom

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers (per sample lists) for manifests."""
        return {
            "method": self.method,
            "settings": self.settings,
            "target": self.target,
            "f_input": self.f_input.tolist(),
            "f_baseline": self.f_baseline.tolist(),
            "attribution_sum": self.attributions.detach().flatten(1).double().sum(1).cpu().tolist(),
            "convergence_delta": self.convergence_delta.tolist(),
            "relative_delta": [float(v) for v in self.relative_delta.tolist()],
            "n_evaluations": self.n_evaluations,
            "chunk_sizes": _compress_runs(self.chunk_sizes),
            "oom_retries": self.oom_retries,
            "seconds": round(self.seconds, 4),
        }


def _compress_runs(sizes: Sequence[int]) -> list[list[int]]:
    """[[size, count], ...] for a list of chunk sizes."""
    runs: list[list[int]] = []
    for s in sizes:
        if runs and runs[-1][0] == s:
            runs[-1][1] += 1
        else:
            runs.append([int(s), 1])
    return runs


def prepare_inputs(
    inputs: Tensor | tuple[Tensor, ...],
) -> tuple[Tensor, bool, Sequence[float] | None]:
    """Unwrap a 1-tuple, drop MetaTensor metadata (keeping its spacing), check the dtype."""
    as_tuple = False
    if isinstance(inputs, tuple | list):
        if len(inputs) != 1:
            raise TypeError(
                f"medattr attributes one input tensor; got a tuple of {len(inputs)}. "
                f"Concatenate multi-modal inputs as channels."
            )
        inputs, as_tuple = inputs[0], True
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    x: Tensor = inputs
    spacing = None
    if hasattr(inputs, "affine") and hasattr(inputs, "as_tensor"):
        aff = x.affine  # type: ignore[attr-defined]
        aff = aff[0] if aff.dim() == 3 else aff
        nd = x.dim() - 2
        spacing = [float(v) for v in torch.linalg.norm(aff[:nd, :nd].double(), dim=0)]
        x = x.as_tensor()  # type: ignore[attr-defined]
    if x.dim() < 2:
        raise ValueError(
            f"inputs must have a batch dimension, shape (B, C, ...); got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor, got {x.dtype}")
    return x, as_tuple, spacing


class PathAttribution:
    """Base of the path methods: holds the model and the engine defaults.

    Parameters
    ----------
    forward_func
        The model, a callable ``f(inputs, *additional_forward_args) -> Tensor``. Put it in
        ``eval()`` mode first (batch-dependent layers would make results depend on the chunk).
    multiply_by_inputs
        Multiply gradients by ``x - x'`` (the path attribution; default), or return the path-
        averaged gradient (Captum's "local" variant).
    internal_batch_size, amp, memory_budget, progress, distributed
        Engine defaults for every call (see :class:`medattr.attribution.engine.PathEngine`);
        each but ``distributed`` can be overridden per call.
    """

    method_name = "path"

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        multiply_by_inputs: bool = True,
        *,
        internal_batch_size: int | str | None = "auto",
        amp: str | AMP | None = None,
        memory_budget: int | str | None = None,
        progress: bool | None = None,
        distributed: bool = False,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        self.forward_func = forward_func
        self.multiply_by_inputs = multiply_by_inputs
        self.internal_batch_size = internal_batch_size
        self.amp = amp
        self.memory_budget = memory_budget
        self.progress = progress
        self.distributed = distributed
        # validate now, not at the first call
        self.engine()

    def engine(
        self,
        internal_batch_size: Any = UNSET,
        amp: Any = UNSET,
        memory_budget: Any = UNSET,
        progress: Any = UNSET,
        description: str | None = None,
    ) -> PathEngine:
        def pick(value: Any, default: Any) -> Any:
            return default if value is UNSET else value

        return PathEngine(
            self.forward_func,
            internal_batch_size=pick(internal_batch_size, self.internal_batch_size),
            amp=pick(amp, self.amp),
            memory_budget=pick(memory_budget, self.memory_budget),
            progress=pick(progress, self.progress),
            description=description or self.method_name,
            distributed=self.distributed,
        )

    @staticmethod
    def bind(
        engine: PathEngine, x: Tensor, target: TargetLike, args: tuple[Any, ...]
    ) -> tuple[Target, BoundTarget, Tensor]:
        """Bind the target at the inputs; returns the target, the bound target and f(x)."""
        out_x = engine.forward(x, args)
        if out_x.shape[0] != x.shape[0]:
            from medattr.errors import ModelError

            raise ModelError(
                f"the model output's first dimension ({out_x.shape[0]}) is not the batch size "
                f"({x.shape[0]}); output shape {tuple(out_x.shape)}"
            )
        tgt, bound = bind_target(target, out_x)
        f_x = bound(out_x, torch.arange(x.shape[0], device=out_x.device)).detach().double().cpu()
        return tgt, bound, f_x

    def baselines_for(
        self,
        baselines: Baseline | Tensor | float | None,
        x: Tensor,
        spacing: Sequence[float] | None,
        bound: BoundTarget,
        args: tuple[Any, ...],
    ) -> BaselineResult:
        ctx = BaselineContext(
            spacing=spacing,
            forward_func=self.forward_func,
            target=bound,
            additional_forward_args=args,
        )
        res = resolve_baselines(baselines, x, ctx)
        res.baselines = res.baselines.to(device=x.device, dtype=x.dtype)
        return res


def finish(attr: Tensor, like: Tensor) -> Tensor:
    return attr.to(like.dtype)


def as_args(additional_forward_args: Any) -> tuple[Any, ...]:
    return normalize_args(additional_forward_args)


def json_number(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
