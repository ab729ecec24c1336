"""Integrated Gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017), with Captum's call shape and a memory-planned engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from medattr._baseline import Baseline
from medattr.attribution._auto import (
    COMPLETENESS_RTOL,
    MAX_STEPS,
    adaptive_record,
    auto_settings,
    engine_result,
    is_auto,
)
from medattr.attribution._base import UNSET, Explanation, PathAttribution
from medattr.attribution._registry import register
from medattr.attribution.jobs import PathJobs
from medattr.attribution.quadrature import N_STEPS, QUADRATURE, quadrature
from medattr.targets import TargetLike

__all__ = ["IntegratedGradients"]


@register("ig")
class IntegratedGradients(PathAttribution):
    r"""Integrated Gradients along the straight path from baseline :math:`x'` to input :math:`x`:

    .. math:: \phi_i = (x_i - x'_i) \int_0^1 \partial_i f(x' + \alpha (x - x'))\, d\alpha

    approximated with a quadrature rule. Completeness, :math:`\sum_i \phi_i = f(x) - f(x')`,
    holds up to the quadrature error, which is returned as the convergence delta.

    A drop-in for ``captum.attr.IntegratedGradients``: the same ``attribute(inputs, baselines,
    target, additional_forward_args, n_steps, method, internal_batch_size,
    return_convergence_delta)`` arguments and results; in addition ``internal_batch_size="auto"``
    (default) plans chunks from memory and backs off on out-of-memory, ``amp`` selects bf16/fp16
    autocast, ``progress`` shows a bar, ``spacing`` (mm per spatial axis, taken from a MONAI
    ``MetaTensor`` input's affine when not given) reaches baselines that need it (blur in mm),
    and :meth:`explain` returns everything (f(x), f(x'), timings) as an :class:`Explanation`.

    ``n_steps="auto"`` adds path points where the local completeness error is largest until
    ``|sum(phi) - (f(x) - f(x'))| <= completeness_rtol * |f(x) - f(x')|`` or ``max_steps``
    points per input were spent (see :func:`~medattr.attribution.adaptive_path_integral`); the
    delta is then the error reached and ``extras["adaptive"]`` says how many points each input
    took and whether it converged (``method`` does not apply).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
    >>> x = torch.rand(1, 1, 2, 2, 2)
    >>> ig = IntegratedGradients(model)
    >>> attr, delta = ig.attribute(x, target=1, return_convergence_delta=True)
    >>> attr.shape, bool(delta.abs().max() < 1e-5)
    (torch.Size([1, 1, 2, 2, 2]), True)
    """

    method_name = "integrated_gradients"
    settings = (N_STEPS, QUADRATURE, COMPLETENESS_RTOL, MAX_STEPS)
    captum_arguments = (
        "baselines",
        "target",
        "additional_forward_args",
        "n_steps",
        "method",
        "internal_batch_size",
        "return_convergence_delta",
    )

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Baseline | Tensor | float | None = None,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        n_steps: int | str = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | str | None = UNSET,
        *,
        spacing: Sequence[float] | None = None,
        completeness_rtol: float = 0.01,
        max_steps: int = 512,
        **engine: Any,
    ) -> Explanation:
        """Like :meth:`attribute`, returning an :class:`Explanation` with every number."""
        auto = is_auto(n_steps)
        if not auto:
            alphas, weights = quadrature(method, int(n_steps))
        call = self.begin(
            inputs,
            target,
            additional_forward_args,
            spacing,
            internal_batch_size=internal_batch_size,
            **engine,
        )
        base = call.baselines(baselines)
        b = base.baselines
        if auto:
            ares = call.adaptive(b, completeness_rtol, max_steps)
            return call.explanation(
                ares.sums[0],
                ares.f_baseline,
                engine_result(ares),
                {
                    **auto_settings(completeness_rtol, max_steps),
                    "multiply_by_inputs": self.multiply_by_inputs,
                },
                baselines=b,
                extras={
                    "baseline": base.info,
                    "bytes_per_point": ares.bytes_per_point,
                    "adaptive": adaptive_record(ares, completeness_rtol, max_steps),
                },
            )
        res = call.run(b, PathJobs.straight(call.batch, alphas, weights))
        return call.explanation(
            res.sums[0],
            call.f_at(b),
            res,
            {
                "n_steps": n_steps,
                "method": str(method),
                "multiply_by_inputs": self.multiply_by_inputs,
            },
            baselines=b,
            extras={"baseline": base.info, "bytes_per_point": res.bytes_per_point},
        )
