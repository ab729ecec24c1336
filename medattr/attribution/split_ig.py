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
from medattr.attribution._base import UNSET, Explanation, PathAttribution
from medattr.attribution._registry import register
from medattr.attribution.jobs import PathJobs
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
    """

    method_name = "split_integrated_gradients"
    settings = (N_STEPS, QUADRATURE, RATIO)
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
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | str | None = UNSET,
        *,
        ratio: float = 0.9,
        part: str = "left",
        spacing: Sequence[float] | None = None,
        **engine: Any,
    ) -> Explanation:
        if not 0.0 < float(ratio) <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if part not in ("left", "right", "full"):
            raise ValueError(f"part must be 'left', 'right' or 'full', got {part!r}")
        alphas, weights = quadrature(method, n_steps)
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
        batch = call.batch
        f_b = call.f_at(b)
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
        res = call.run(b, jobs, buckets=2, bucket_fn=bucket_fn)
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
            right=right.to(x.dtype),
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
        return call.explanation(
            attr,
            f_b,
            res,
            {"n_steps": n_steps, "method": str(method), "ratio": float(ratio), "part": part},
            baselines=b,
            convergence_delta=delta,
            extras={
                "split": details,
                "baseline": base.info,
                "alpha_star": alpha_star.tolist(),
                "f_alpha_star": f_star.tolist(),
                "saturated": crossed.tolist(),
                "ig_delta": (left_sum + right_sum - span).tolist(),
            },
        )
