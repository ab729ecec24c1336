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

import time
from collections.abc import Sequence
from dataclasses import dataclass
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
        ``(K,)`` nodes and ``(B, K)`` target values along the path.
    left_delta
        ``(B,)`` sum(left) - (f(alpha*) - f(x')).
    """

    alpha_star: Tensor
    saturated: Tensor
    threshold: Tensor
    f_alpha_star: Tensor
    right: Tensor
    path_alphas: Tensor
    path_outputs: Tensor
    left_delta: Tensor


class SplitIntegratedGradients(PathAttribution):
    """Split IG: the unsaturated part of Integrated Gradients.

    Same arguments as :class:`~medattr.IntegratedGradients` plus ``ratio`` (default 0.9) and
    ``part``: ``"left"`` (default), ``"right"`` or ``"full"`` (= IG). ``explain`` returns the
    split in ``Explanation.extras["split"]`` (:class:`SplitIGDetails`).

    The returned convergence delta refers to the returned part: for ``"left"`` it is
    ``sum(left) - (f(gamma(alpha*)) - f(x'))``; for ``"full"`` the usual IG delta.
    """

    method_name = "split_integrated_gradients"

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
        ratio: float = 0.9,
        part: str = "left",
        amp: str | None = UNSET,
        progress: bool | None = UNSET,
        memory_budget: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
    ) -> Any:
        exp = self.explain(
            inputs,
            baselines,
            target,
            additional_forward_args,
            n_steps,
            method,
            internal_batch_size,
            ratio=ratio,
            part=part,
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
        ratio: float = 0.9,
        part: str = "left",
        amp: str | None = UNSET,
        progress: bool | None = UNSET,
        memory_budget: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
    ) -> Explanation:
        t0 = time.perf_counter()
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if part not in ("left", "right", "full"):
            raise ValueError(f"part must be 'left', 'right' or 'full', got {part!r}")
        x, _, meta_spacing = prepare_inputs(inputs)
        spacing = spacing if spacing is not None else meta_spacing
        alphas, weights = quadrature(method, n_steps)
        args = as_args(additional_forward_args)
        engine = self.engine(internal_batch_size, amp, memory_budget, progress)
        tgt, bound, f_x = self.bind(engine, x, target, args)
        base = self.baselines_for(baselines, x, spacing, bound, args)
        b = base.baselines
        batch = x.shape[0]
        f_b = engine.target_values(b, torch.arange(batch), bound, args, batch=batch)
        span = f_x - f_b
        tau = f_b + float(ratio) * span
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
        res = engine.run(
            x,
            b,
            jobs,
            bound,
            args,
            buckets=2,
            bucket_fn=bucket_fn,
            multiply_by_delta=self.multiply_by_inputs,
        )
        left, right = res.sums[0], res.sums[1]
        path_outputs = res.outputs.view(len(alphas), batch).T.contiguous()
        a = torch.as_tensor(alphas, dtype=torch.float64)
        f_star = torch.empty(batch, dtype=torch.float64)
        for i in range(batch):
            hits = (a == alpha_star[i]).nonzero()
            f_star[i] = path_outputs[i, int(hits[0])] if crossed[i] and len(hits) else f_x[i]
        left_sum = left.flatten(1).double().sum(1).cpu()
        right_sum = right.flatten(1).double().sum(1).cpu()
        left_delta = left_sum - (f_star - f_b)
        details = SplitIGDetails(
            alpha_star=alpha_star,
            saturated=crossed.clone(),
            threshold=tau,
            f_alpha_star=f_star,
            right=finish(right, x),
            path_alphas=a,
            path_outputs=path_outputs,
            left_delta=left_delta,
        )
        if part == "left":
            attr, delta = left, left_delta
        elif part == "right":
            attr, delta = right, right_sum - (f_x - f_star)
        else:
            attr = left + right
            delta = left_sum + right_sum - span
        return Explanation(
            attributions=finish(attr, x),
            convergence_delta=delta,
            f_input=f_x,
            f_baseline=f_b,
            method=self.method_name,
            settings={
                "n_steps": n_steps,
                "method": str(method),
                "ratio": float(ratio),
                "part": part,
                "amp": engine.amp and engine.amp.value,
            },
            target=tgt.describe(),
            n_evaluations=res.n_evaluations,
            seconds=time.perf_counter() - t0,
            chunk_sizes=res.chunk_sizes,
            oom_retries=res.oom_retries,
            baselines=b,
            extras={
                "split": details,
                "baseline": base.info,
                "alpha_star": alpha_star.tolist(),
                "f_alpha_star": f_star.tolist(),
                "saturated": crossed.tolist(),
                "ig_delta": (left_sum + right_sum - span).tolist(),
            },
        )
