"""Integrated Gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017), with Captum's call shape and a memory-planned engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from medattr.attribution._base import (
    UNSET,
    Explanation,
    PathAttribution,
    as_args,
    finish,
    prepare_inputs,
)
from medattr.attribution.engine import PathJobs
from medattr.attribution.quadrature import quadrature
from medattr.baselines import Baseline
from medattr.targets import TargetLike

__all__ = ["IntegratedGradients"]


class IntegratedGradients(PathAttribution):
    r"""Integrated Gradients along the straight path from baseline :math:`x'` to input :math:`x`:

    .. math:: \phi_i = (x_i - x'_i) \int_0^1 \partial_i f(x' + \alpha (x - x'))\, d\alpha

    approximated with a quadrature rule. Completeness, :math:`\sum_i \phi_i = f(x) - f(x')`,
    holds up to the quadrature error, which is returned as the convergence delta.

    A drop-in for ``captum.attr.IntegratedGradients``: the same ``attribute`` arguments and
    results; in addition ``internal_batch_size="auto"`` (default) plans chunks from memory and
    backs off on out-of-memory, ``amp`` selects bf16/fp16 autocast, ``progress`` shows a bar,
    and :meth:`explain` returns everything (f(x), f(x'), timings) as an :class:`Explanation`.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    >>> x = torch.rand(1, 1, 2, 2, 2)
    >>> ig = IntegratedGradients(model)
    >>> attr, delta = ig.attribute(x, target=1, return_convergence_delta=True)
    >>> attr.shape, bool(delta.abs().max() < 1e-5)
    (torch.Size([1, 1, 2, 2, 2]), True)
    """

    method_name = "integrated_gradients"

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Baseline | Tensor | float | None = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | str | None = UNSET,
        return_convergence_delta: bool = False,
        *,
        amp: str | None = UNSET,
        progress: bool | None = UNSET,
        memory_budget: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
    ) -> Tensor | tuple[Tensor, ...] | tuple[Any, Tensor]:
        """Attributions of ``inputs`` (same shape); with ``return_convergence_delta`` also the
        per-sample delta. A 1-tuple input gives a 1-tuple of attributions, as in Captum.

        ``spacing`` (mm per spatial axis) is passed to baselines that need it (blur in mm); a
        MONAI ``MetaTensor`` input provides it from its affine.
        """
        exp = self.explain(
            inputs,
            baselines,
            target,
            additional_forward_args,
            n_steps,
            method,
            internal_batch_size,
            amp=amp,
            progress=progress,
            memory_budget=memory_budget,
            spacing=spacing,
        )
        attr: Any = (exp.attributions,) if isinstance(inputs, tuple | list) else exp.attributions
        if return_convergence_delta:
            return attr, exp.convergence_delta.to(exp.attributions.dtype)
        return attr

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Baseline | Tensor | float | None = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | str | None = UNSET,
        *,
        amp: str | None = UNSET,
        progress: bool | None = UNSET,
        memory_budget: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
    ) -> Explanation:
        """Like :meth:`attribute`, returning an :class:`Explanation` with every number."""
        import time

        t0 = time.perf_counter()
        x, _, meta_spacing = prepare_inputs(inputs)
        spacing = spacing if spacing is not None else meta_spacing
        alphas, weights = quadrature(method, n_steps)
        args = as_args(additional_forward_args)
        engine = self.engine(internal_batch_size, amp, memory_budget, progress)
        tgt, bound, f_x = self.bind(engine, x, target, args)
        base = self.baselines_for(baselines, x, spacing, bound, args)
        b = base.baselines
        batch = x.shape[0]
        jobs = PathJobs.straight(batch, alphas, weights)
        if self.multiply_by_inputs:
            res = engine.run(x, b, jobs, bound, args)
        else:
            res = engine.run(x, b, jobs, bound, args, multiply_by_delta=False)
        f_b = engine.target_values(b, torch.arange(batch), bound, args, batch=batch)
        attr = res.sums[0]
        delta = attr.flatten(1).double().sum(1).cpu() - (f_x - f_b)
        return Explanation(
            attributions=finish(attr, x),
            convergence_delta=delta,
            f_input=f_x,
            f_baseline=f_b,
            method=self.method_name,
            settings={
                "n_steps": n_steps,
                "method": str(method),
                "amp": engine.amp and engine.amp.value,
                "multiply_by_inputs": self.multiply_by_inputs,
            },
            target=tgt.describe(),
            n_evaluations=res.n_evaluations,
            seconds=time.perf_counter() - t0,
            chunk_sizes=res.chunk_sizes,
            oom_retries=res.oom_retries,
            baselines=b,
            extras={"baseline": base.info, "bytes_per_point": res.bytes_per_point},
        )
