"""What the path methods share: the call template, engine settings, the Explanation record.

:class:`PathAttribution` owns everything a path method does before and after its maths:
input formatting, engine settings, target binding, baseline resolution, the completeness
delta, timings and the :class:`Explanation`. A method supplies only its path jobs and how the
result is assembled (see :meth:`PathAttribution.begin` and :class:`PathCall`); the Captum-shaped
``attribute`` is derived from the method's ``explain``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext, BaselineResult, resolve_baselines
from medattr.affines import voxel_sizes
from medattr.attribution.engine import AMP, PathEngine, normalize_args
from medattr.attribution.jobs import EngineResult, PathJobs
from medattr.errors import ModelError
from medattr.targets import BoundTarget, Target, TargetLike, bind_target

if TYPE_CHECKING:
    from medattr.registry import Setting

__all__ = ["Explanation", "PathAttribution", "PathCall"]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()

ENGINE_OPTIONS = ("internal_batch_size", "amp", "memory_budget", "progress")
"""Engine settings a path method's ``explain`` / ``attribute`` accepts per call."""


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
        spacing = list(voxel_sizes(aff, x.dim() - 2))
        x = x.as_tensor()  # type: ignore[attr-defined]
    if x.dim() < 2:
        raise ValueError(
            f"inputs must have a batch dimension, shape (B, C, ...); got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"inputs must be a floating-point tensor, got {x.dtype}")
    return x, as_tuple, spacing


@dataclass
class PathCall:
    """One call of a path method after the common prelude (see :meth:`PathAttribution.begin`).

    Attributes
    ----------
    x
        The inputs ``(B, C, *spatial)`` (plain tensor).
    spacing
        Voxel size in mm per spatial axis, if known (blur baselines need it).
    args
        Additional forward arguments, as a tuple.
    engine
        The engine with this call's settings.
    target, bound
        The target and its bound form (bound at the inputs).
    f_input
        Target value at the inputs, float64 ``(B,)``.
    """

    method: PathAttribution
    x: Tensor
    spacing: Sequence[float] | None
    args: tuple[Any, ...]
    engine: PathEngine
    target: Target
    bound: BoundTarget
    f_input: Tensor
    started: float

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    def baselines(self, spec: Baseline | Tensor | float | None) -> BaselineResult:
        """One baseline per input, from anything :func:`resolve_baselines` accepts."""
        ctx = BaselineContext(
            spacing=self.spacing,
            forward_func=self.method.forward_func,
            target=self.bound,
            additional_forward_args=self.args,
        )
        res = resolve_baselines(spec, self.x, ctx)
        res.baselines = res.baselines.to(device=self.x.device, dtype=self.x.dtype)
        return res

    def run(self, baselines: Tensor, jobs: PathJobs, **options: Any) -> EngineResult:
        """``engine.run`` over ``jobs`` with this call's inputs, target and arguments
        (``multiply_by_delta`` defaults to the method's ``multiply_by_inputs``)."""
        options.setdefault("multiply_by_delta", self.method.multiply_by_inputs)
        return self.engine.run(self.x, baselines, jobs, self.bound, self.args, **options)

    def adaptive(self, baselines: Tensor, rtol: float, max_steps: int, **options: Any) -> Any:
        """:func:`~medattr.attribution.adaptive_path_integral` over this call's inputs, target
        and arguments (``n_steps="auto"``); ``f(x)`` is the value already bound."""
        from medattr.attribution.adaptive import adaptive_path_integral

        options.setdefault("multiply_by_delta", self.method.multiply_by_inputs)
        return adaptive_path_integral(
            self.engine,
            self.x,
            baselines,
            self.bound,
            self.args,
            rtol=rtol,
            max_steps=max_steps,
            f_inputs=self.f_input,
            **options,
        )

    def f_at(self, baselines: Tensor) -> Tensor:
        """Target value at each input's baseline, float64 ``(B,)``."""
        batch = self.batch
        return self.engine.target_values(
            baselines, torch.arange(batch), self.bound, self.args, batch=batch
        )

    def explanation(
        self,
        attributions: Tensor,
        f_baseline: Tensor,
        result: EngineResult,
        settings: Mapping[str, Any],
        *,
        baselines: Tensor | None,
        extras: Mapping[str, Any] | None = None,
        convergence_delta: Tensor | None = None,
        method: str | None = None,
    ) -> Explanation:
        """The :class:`Explanation`; the delta defaults to ``sum(phi) - (f(x) - f(x'))``."""
        if convergence_delta is None:
            total = attributions.flatten(1).double().sum(1).cpu()
            convergence_delta = total - (self.f_input - f_baseline)
        return Explanation(
            attributions=attributions.to(self.x.dtype),
            convergence_delta=convergence_delta,
            f_input=self.f_input,
            f_baseline=f_baseline,
            method=method or self.method.method_name,
            settings={**settings, "amp": self.engine.amp and self.engine.amp.value},
            target=self.target.describe(),
            n_evaluations=result.n_evaluations,
            seconds=time.perf_counter() - self.started,
            chunk_sizes=list(result.chunk_sizes),
            oom_retries=result.oom_retries,
            baselines=baselines,
            extras={**(extras or {}), "engine_seconds": result.seconds},
        )


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

    Subclasses implement ``explain(inputs, ...) -> Explanation`` with :meth:`begin` and the
    :class:`PathCall` it returns; ``attribute`` (Captum's call shape) is derived from it through
    ``captum_arguments``, the order of Captum's positional arguments. Registered methods
    (``@medattr.attribution.register("name")``) also declare their ``settings``, which the
    explainer passes to :meth:`explain_study`.
    """

    method_name = "path"
    settings: ClassVar[tuple[Setting, ...]] = ()
    captum_arguments: ClassVar[tuple[str, ...]] = ()
    """Names of ``attribute``'s positional arguments after ``inputs``, in Captum's order."""
    baseline_kind: ClassVar[str] = "single"
    """``"single"`` (one baseline per input, from ``--baseline``) or ``"references"`` (a bank
    of reference volumes, from the ``references`` setting)."""
    supports_distributed: ClassVar[bool] = True
    """Whether path points may be split across ``torch.distributed`` ranks."""

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

    # ------------------------------------------------------------------ template
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

    def begin(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetLike,
        additional_forward_args: Any = None,
        spacing: Sequence[float] | None = None,
        *,
        description: str | None = None,
        **engine_options: Any,
    ) -> PathCall:
        """The common prelude: format the inputs, build the engine, bind the target at the
        inputs (``f(x)``); returns the :class:`PathCall` the method's maths works on.

        ``engine_options`` override the method's engine defaults for this call:
        ``internal_batch_size``, ``amp``, ``memory_budget``, ``progress``.
        """
        started = time.perf_counter()
        unknown = sorted(set(engine_options) - set(ENGINE_OPTIONS))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}: unknown option(s) {', '.join(unknown)}; per-call engine "
                f"options are {', '.join(ENGINE_OPTIONS)}"
            )
        x, _, meta_spacing = prepare_inputs(inputs)
        args = normalize_args(additional_forward_args)
        picked = {k: engine_options.get(k, UNSET) for k in ENGINE_OPTIONS}
        engine = self.engine(**picked, description=description)
        tgt, bound, f_x = self.bind(engine, x, target, args)
        return PathCall(
            self,
            x,
            spacing if spacing is not None else meta_spacing,
            args,
            engine,
            tgt,
            bound,
            f_x,
            started,
        )

    @staticmethod
    def bind(
        engine: PathEngine, x: Tensor, target: TargetLike, args: tuple[Any, ...]
    ) -> tuple[Target, BoundTarget, Tensor]:
        """Bind the target at the inputs; returns the target, the bound target and f(x)."""
        out_x = engine.forward(x, args)
        if out_x.shape[0] != x.shape[0]:
            raise ModelError(
                f"the model output's first dimension ({out_x.shape[0]}) is not the batch size "
                f"({x.shape[0]}); output shape {tuple(out_x.shape)}"
            )
        tgt, bound = bind_target(target, out_x)
        f_x = bound(out_x, torch.arange(x.shape[0], device=out_x.device)).detach().double().cpu()
        return tgt, bound, f_x

    def explain(
        self, inputs: Tensor | tuple[Tensor, ...], *args: Any, **kwargs: Any
    ) -> Explanation:
        raise NotImplementedError

    def attribute(self, inputs: Tensor | tuple[Tensor, ...], *args: Any, **kwargs: Any) -> Any:
        """Captum's call shape: the attributions (a 1-tuple for a 1-tuple input), and with
        ``return_convergence_delta=True`` also the per-sample delta.

        Positional arguments after ``inputs`` follow Captum's order for the method (see the
        method's ``explain`` for their meaning).
        """
        names = self.captum_arguments
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__}.attribute takes at most {len(names) + 1} positional "
                f"arguments ({len(args) + 1} given)"
            )
        for name, value in zip(names, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}.attribute got {name!r} twice")
            kwargs[name] = value
        want_delta = bool(kwargs.pop("return_convergence_delta", False))
        exp = self.explain(inputs, **kwargs)
        attr: Any = (exp.attributions,) if isinstance(inputs, tuple | list) else exp.attributions
        if want_delta:
            return attr, self.captum_delta(exp).to(exp.attributions.dtype)
        return attr

    def captum_delta(self, exp: Explanation) -> Tensor:
        """What ``return_convergence_delta`` returns (the completeness delta per sample)."""
        return exp.convergence_delta

    # ------------------------------------------------------------------ explainer hooks
    @classmethod
    def from_settings(
        cls, forward_func: Callable[..., Tensor], settings: Mapping[str, Any], **engine: Any
    ) -> PathAttribution:
        """Build for ``forward_func`` from the declared settings' values (by name) and the
        engine options (``internal_batch_size``, ``amp``, ``memory_budget``, ``progress``,
        ``distributed``). The default passes only the engine options to ``__init__``."""
        return cls(forward_func, **engine)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], name: str) -> None:
        """Refuse combinations of setting values that cannot work (an
        :class:`~medattr.errors.InputError`); called when a configuration is built."""

    def explain_study(
        self, x: Tensor, baselines: Any, target: TargetLike, settings: Mapping[str, Any]
    ) -> Explanation:
        """Explain a prepared study with the values of the method's declared settings (by
        name); what :class:`~medattr.Explainer` calls. ``baselines`` is a tensor (one per input)
        or, for ``baseline_kind == "references"``, the bank."""
        kwargs = {s.keyword: settings[s.name] for s in self.settings if s.name in settings}
        return self.explain(x, baselines=baselines, target=target, **kwargs)


def json_number(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v
