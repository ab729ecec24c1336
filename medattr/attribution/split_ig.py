"""Split Integrated Gradients (Miglani, Kokhlikyan, Alsallakh, Martin & Reblitz-Richardson,
"Investigating Saturation Effects in Integrated Gradients", ICML 2020 WHI workshop,
arXiv:2010.12697).

Along a saturating path most of the change in ``f`` happens early; the late, saturated part
contributes gradients the model no longer acts on. Split IG runs the straight path once,
keeps ``f`` at every point, finds the first point ``alpha*`` at which ``f`` has covered a
fraction ``ratio`` of ``f(x) - f(x')``, and splits the IG sum there: the *left* part (baseline
to ``alpha*``, unsaturated) is the attribution; the *right* part is kept for inspection.
``left + right`` is exactly the IG of the same points, and ``sum(left) ~ f(gamma(alpha*)) - f(x')``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
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
from medattr.attribution.jobs import EngineResult, PathJobs
from medattr.attribution.quadrature import N_STEPS, QUADRATURE, quadrature
from medattr.registry import Setting
from medattr.targets import TargetLike

__all__ = ["SplitIGDetails", "SplitIntegratedGradients"]


@dataclass
class SplitIGDetails:
    """Everything Split IG computes besides the left attribution.

    Attributes
    ----------
    alpha_star
        ``(B,)`` first path position where ``(f - f(x')) / (f(x) - f(x'))`` reaches ``ratio``
        (1.0 where it never does: then everything is "left").
    saturated
        ``(B,)`` bool, whether that threshold was reached before the last point.
    threshold
        ``(B,)`` tau = f(x') + ratio (f(x) - f(x')).
    f_alpha_star
        ``(B,)`` f at alpha*.
    right
        Attribution of the saturated part (same shape as the input).
    path_alphas, path_outputs
        ``(K,)`` nodes and ``(B, K)`` target values along the path (with ``n_steps="auto"``,
        where every input's path has its own nodes: one ``(K_i,)`` tensor per input in a list).
    left_delta
        ``(B,)`` sum(left) - (f(alpha*) - f(x')).
    """

    alpha_star: Tensor
    saturated: Tensor
    threshold: Tensor
    f_alpha_star: Tensor
    right: Tensor
    path_alphas: Tensor | list[Tensor]
    path_outputs: Tensor | list[Tensor]
    left_delta: Tensor


RATIO = Setting(
    "ratio",
    0.9,
    "split-ig: saturation ratio r",
    type=float,
    minimum=0.0,
    maximum=1.0,
    exclusive_minimum=True,
)


@register("split-ig")
class SplitIntegratedGradients(PathAttribution):
    """Split IG: the unsaturated (left) part of Integrated Gradients (Miglani et al. 2020).

    Same arguments as :class:`~medattr.IntegratedGradients` plus ``ratio`` (default 0.9) and
    ``part``: ``"left"`` (default), ``"right"`` or ``"full"`` (= IG). ``explain`` returns the
    split in ``Explanation.extras["split"]`` (:class:`SplitIGDetails`).

    The returned convergence delta refers to the returned part: for ``"left"`` it is
    ``sum(left) - (f(gamma(alpha*)) - f(x'))``; for ``"full"`` the usual IG delta.

    With ``n_steps="auto"`` the whole path is refined until IG's completeness holds within
    ``completeness_rtol`` and split at its first panel end past the ratio: the refined path
    gives ``alpha*`` at no extra cost.
    """

    method_name = "split_integrated_gradients"
    settings = (N_STEPS, QUADRATURE, RATIO, COMPLETENESS_RTOL, MAX_STEPS)
    supports_distributed = False  # the split point needs the whole path, in order
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
        ratio: float = 0.9,
        part: str = "left",
        spacing: Sequence[float] | None = None,
        completeness_rtol: float = 0.01,
        max_steps: int = 512,
        **engine: Any,
    ) -> Explanation:
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if part not in ("left", "right", "full"):
            raise ValueError(f"part must be 'left', 'right' or 'full', got {part!r}")
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
        x, f_x = call.x, call.f_input
        base = call.baselines(baselines)
        b = base.baselines
        if auto:
            ares = call.adaptive(b, completeness_rtol, max_steps, split_ratio=float(ratio))
            f_b = ares.f_baseline
            res: EngineResult = engine_result(ares)
            assert ares.alpha_star is not None and ares.f_alpha_star is not None
            alpha_star = ares.alpha_star.double()
            f_star = ares.f_alpha_star.double()
            crossed = alpha_star < 1.0
            a_path: Tensor | list[Tensor] = list(ares.path_alphas)
            outputs_path: Tensor | list[Tensor] = list(ares.path_outputs)
            steps = auto_settings(completeness_rtol, max_steps)
            more = {"adaptive": adaptive_record(ares, completeness_rtol, max_steps)}
        else:
            f_b = call.f_at(b)
            res, alpha_star, f_star, crossed, a_path, outputs_path = self._fixed(
                call, b, f_b, alphas, weights, ratio
            )
            steps, more = {"n_steps": n_steps, "method": str(method)}, {}
        span = f_x - f_b
        left, right = res.sums[0], res.sums[1]
        left_sum = left.flatten(1).double().sum(1).cpu()
        right_sum = right.flatten(1).double().sum(1).cpu()
        left_delta = left_sum - (f_star - f_b)
        details = SplitIGDetails(
            alpha_star=alpha_star,
            saturated=crossed.clone(),
            threshold=f_b + float(ratio) * span,
            f_alpha_star=f_star,
            right=right.to(x.dtype),
            path_alphas=a_path,
            path_outputs=outputs_path,
            left_delta=left_delta,
        )
        if part == "left":
            attr, delta = left, left_delta
        elif part == "right":
            attr, delta = right, right_sum - (f_x - f_star)
        else:
            attr = left + right
            delta = left_sum + right_sum - span
        return call.explanation(
            attr,
            f_b,
            res,
            {**steps, "ratio": float(ratio), "part": part},
            baselines=b,
            convergence_delta=delta,
            extras={
                "split": details,
                "baseline": base.info,
                "alpha_star": alpha_star.tolist(),
                "f_alpha_star": f_star.tolist(),
                "saturated": crossed.tolist(),
                "ig_delta": (left_sum + right_sum - span).tolist(),
                **more,
            },
        )

    @staticmethod
    def _fixed(
        call: Any, b: Tensor, f_b: Tensor, alphas: Any, weights: Any, ratio: float
    ) -> tuple[EngineResult, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The fixed rule: one engine run, points bucketed left/right of alpha* as their
        values arrive (the jobs are ordered by alpha)."""
        f_x, batch = call.f_input, call.batch
        span = f_x - f_b
        crossed = torch.zeros(batch, dtype=torch.bool)
        alpha_star = torch.ones(batch, dtype=torch.float64)

        def bucket_fn(sample: Tensor, alpha: Tensor, vals: Tensor) -> Tensor:
            out = torch.zeros(sample.numel(), dtype=torch.long)
            order = torch.argsort(alpha, stable=True)
            for p in order.tolist():
                i = int(sample[p])
                if crossed[i]:
                    out[p] = 1
                    continue
                if span[i] != 0 and (vals[p] - f_b[i]) / span[i] >= ratio:
                    crossed[i] = True
                    alpha_star[i] = float(alpha[p])
            return out

        jobs = PathJobs.straight(batch, alphas, weights)  # ordered by alpha
        res = call.run(b, jobs, buckets=2, bucket_fn=bucket_fn)
        path_outputs = res.outputs.view(len(alphas), batch).T.contiguous()
        a = torch.as_tensor(alphas, dtype=torch.float64)
        f_star = torch.empty(batch, dtype=torch.float64)
        for i in range(batch):
            hits = (a == alpha_star[i]).nonzero()
            f_star[i] = path_outputs[i, int(hits[0])] if crossed[i] and len(hits) else f_x[i]
        return res, alpha_star, f_star, crossed, a, path_outputs
