"""Expected Gradients (Erion, Janizek, Sturmfels, Lundberg & Lee, "Improving performance of deep
learning models with axiomatic attribution priors and expected gradients", Nature Machine
Intelligence 2021).

IG averaged over a distribution of baselines: for each input, ``n_samples`` draws of a
reference ``x'`` (uniformly from a bank, e.g. scans of healthy subjects) and of
``alpha ~ U(0, 1)``; the attribution is the mean of ``(x - x') * grad f(x' + alpha (x - x'))``.
Completeness holds in expectation: ``sum(phi) ~ f(x) - E[f(x')]``. All draws of all inputs are
batched through the same planned engine (Captum's GradientShap evaluates them one batch of
``n_samples`` at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext
from medattr.attribution._base import UNSET, Explanation, PathAttribution
from medattr.attribution._registry import register
from medattr.attribution.jobs import PathJobs
from medattr.errors import InputError
from medattr.registry import Setting
from medattr.targets import TargetLike

__all__ = ["ExpectedGradients"]


REFERENCES = Setting(
    "references",
    [],
    "expected-gradients: reference scans (e.g. healthy subjects; any grid, preprocessed like "
    "the input), or builtin:mni / builtin:phantom for generated healthy subjects",
    nargs="+",
    metavar="PATH",
)
EG_SAMPLES = Setting(
    "eg_samples",
    32,
    "expected-gradients: draws (reference, alpha) per input",
    type=int,
    minimum=1,
    param="n_samples",
)


@register("expected-gradients")
class ExpectedGradients(PathAttribution):
    """Expected Gradients over a bank of reference baselines.

    ``attribute(inputs, baselines, target, additional_forward_args, n_samples=32, seed=0, ...)``
    where ``baselines`` is a tensor ``(R, C, *spatial)`` of references (or a :class:`Baseline`
    that produces one, e.g. a reference set), shared by all inputs.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1))
    >>> refs = torch.rand(5, 1, 2, 2, 2)
    >>> attr = ExpectedGradients(model).attribute(torch.rand(2, 1, 2, 2, 2), refs, n_samples=8)
    >>> attr.shape
    torch.Size([2, 1, 2, 2, 2])
    """

    method_name = "expected_gradients"
    settings = (REFERENCES, EG_SAMPLES)
    baseline_kind = "references"
    captum_arguments = (
        "baselines",
        "target",
        "additional_forward_args",
        "n_samples",
        "seed",
        "internal_batch_size",
        "return_convergence_delta",
    )

    def explain_study(
        self, x: Tensor, baselines: Any, target: TargetLike, settings: Mapping[str, Any]
    ) -> Explanation:
        return self.explain(
            x, baselines, target, n_samples=settings["eg_samples"], seed=settings.get("seed", 0)
        )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], name: str) -> None:
        if not settings.get("references"):
            raise InputError(f"{name} needs reference volumes (references=[...])")

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        baselines: Tensor | Baseline,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        n_samples: int = 32,
        seed: int | None = 0,
        internal_batch_size: int | str | None = UNSET,
        **engine: Any,
    ) -> Explanation:
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        call = self.begin(
            inputs,
            target,
            additional_forward_args,
            internal_batch_size=internal_batch_size,
            **engine,
        )
        x, eng, bound, args = call.x, call.engine, call.bound, call.args
        info: dict[str, Any] = {}
        if isinstance(baselines, Baseline):
            res_b = baselines.generate(
                x,
                BaselineContext(
                    spacing=call.spacing,
                    forward_func=self.forward_func,
                    target=bound,
                    additional_forward_args=args,
                ),
            )
            bank, info = res_b.baselines, dict(res_b.info)
            info.setdefault("baseline", baselines.describe())
        elif isinstance(baselines, Tensor):
            bank = baselines.as_tensor() if hasattr(baselines, "as_tensor") else baselines
        else:
            raise TypeError(
                f"ExpectedGradients needs a tensor of reference baselines (R, C, ...) or a "
                f"Baseline, "
                f"got {type(baselines).__name__}"
            )
        if bank.dim() != x.dim() or tuple(bank.shape[1:]) != tuple(x.shape[1:]):
            raise ValueError(
                f"reference baselines must have shape (R, {', '.join(map(str, x.shape[1:]))}); got "
                f"{tuple(bank.shape)}"
            )
        bank = bank.to(device=x.device, dtype=x.dtype)
        batch, n_refs = x.shape[0], bank.shape[0]
        g = torch.Generator().manual_seed(
            int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)))
        )
        ref = torch.randint(0, n_refs, (batch, n_samples), generator=g)
        alpha = torch.rand((batch, n_samples), generator=g, dtype=torch.float64)
        sample = torch.arange(batch).repeat_interleave(n_samples)
        jobs = PathJobs(
            sample,
            ref.reshape(-1),
            alpha.reshape(-1),
            torch.full((batch * n_samples,), 1.0 / n_samples),
        )
        res = call.run(bank, jobs)
        # f at the drawn references, under each input's target
        pairs = torch.unique(torch.stack([sample, ref.reshape(-1)], 1), dim=0)
        f_pairs = eng.target_values(
            bank.index_select(0, pairs[:, 1].to(bank.device)), pairs[:, 0], bound, args, batch=batch
        )
        table = {
            (int(i), int(r)): float(v)
            for (i, r), v in zip(pairs.tolist(), f_pairs.tolist(), strict=True)
        }
        f_b = torch.tensor(
            [sum(table[(i, int(r))] for r in ref[i]) / n_samples for i in range(batch)],
            dtype=torch.float64,
        )
        return call.explanation(
            res.sums[0],
            f_b,
            res,
            {"n_samples": n_samples, "seed": seed, "n_references": n_refs},
            baselines=bank,
            extras={"baseline": info, "reference_draws": ref.tolist(), "alphas": alpha.tolist()},
        )
