"""SmoothGrad (Smilkov, Thorat, Kim, Viégas & Wattenberg, "SmoothGrad: removing noise by adding
noise", 2017) over plain gradients or over Integrated Gradients, with the ``smoothgrad``,
``smoothgrad_sq`` and VarGrad (Adebayo et al. 2018) aggregations.

Noise scale, two conventions, both explicit:

- ``stdevs``: an **absolute** standard deviation in the units of the input (Captum's
  ``NoiseTunnel(stdevs=...)``), a float or one per sample;
- ``noise_level``: a **fraction of each input's value range** (max - min), as in Smilkov et
  al., MONAI's ``VanillaGrad``-based SmoothGrad and PAIR saliency (their ``stdev_spread``).

Each noisy copy ``j`` of input ``i`` is drawn from its own generator seeded by
``(seed, i, j)``, so results are reproducible and independent of how draws are batched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medattr._baseline import Baseline
from medattr.attribution._auto import (
    COMPLETENESS_RTOL,
    MAX_STEPS,
    adaptive_record,
    auto_settings,
    is_auto,
    merge_records,
)
from medattr.attribution._base import UNSET, Explanation, PathAttribution
from medattr.attribution._registry import register
from medattr.attribution.adaptive import PathSet, adaptive_path_integral
from medattr.attribution.jobs import EngineResult, PathJobs
from medattr.attribution.quadrature import N_STEPS, QUADRATURE, quadrature
from medattr.options import parse_option
from medattr.registry import Setting
from medattr.targets import TargetLike

__all__ = ["BaseMethod", "NoiseType", "SmoothGrad", "aggregate", "draw_noise", "noise_sigma"]

_SEED_STRIDE = 1_000_003


class NoiseType(str, Enum):
    SMOOTHGRAD = "smoothgrad"
    SMOOTHGRAD_SQ = "smoothgrad_sq"
    VARGRAD = "vargrad"


class BaseMethod(str, Enum):
    GRADIENT = "gradient"
    INTEGRATED_GRADIENTS = "integrated_gradients"


def noise_sigma(
    x: Tensor, stdevs: float | Sequence[float] | None, noise_level: float | None
) -> Tensor:
    """Per-sample absolute noise standard deviation ``(B,)`` from either convention."""
    batch = x.shape[0]
    if (stdevs is None) == (noise_level is None):
        raise ValueError(
            "give exactly one of stdevs (absolute sigma) or noise_level "
            "(fraction of each input's range)"
        )
    if noise_level is not None:
        if noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level}")
        flat = x.detach().flatten(1).double()
        return (flat.amax(1) - flat.amin(1)).cpu() * float(noise_level)
    if isinstance(stdevs, int | float):
        sig = torch.full((batch,), float(stdevs), dtype=torch.float64)
    else:
        assert stdevs is not None
        sig = torch.as_tensor(list(stdevs), dtype=torch.float64)
        if sig.numel() != batch:
            raise ValueError(f"got {sig.numel()} stdevs for a batch of {batch}")
    if bool((sig < 0).any()):
        raise ValueError(f"stdevs must be >= 0, got {sig.tolist()}")
    return sig


def aggregate(kind: NoiseType, mean: Tensor, mean_square: Tensor) -> Tensor:
    """The noisy attributions' mean (``smoothgrad``), mean square (``smoothgrad_sq``) or
    variance (``vargrad``), from their running mean and mean square."""
    if kind is NoiseType.SMOOTHGRAD:
        return mean
    if kind is NoiseType.SMOOTHGRAD_SQ:
        return mean_square
    return mean_square - mean * mean


def draw_noise(
    shape: Sequence[int],
    sigma: float,
    seed: int,
    sample: int,
    draw: int,
    device: torch.device | str = "cpu",
) -> Tensor:
    """The noise added to draw ``draw`` of input ``sample`` (shape of one input, float32)."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * _SEED_STRIDE + int(sample) * 7919 + int(draw)) % (2**63 - 1))
    return torch.randn(tuple(shape), generator=g, device=device, dtype=torch.float32) * float(sigma)


NT_SAMPLES = Setting("nt_samples", 8, "smoothgrad: noisy copies per input", type=int, minimum=1)
NOISE_LEVEL = Setting(
    "noise_level",
    0.1,
    "smoothgrad: noise sigma as a FRACTION of each input's (max - min), after the model's "
    "intensity mapping",
    type=float,
    minimum=0.0,
)
NT_TYPE = Setting(
    "nt_type",
    NoiseType.SMOOTHGRAD.value,
    "smoothgrad: aggregation of the noisy attributions",
    choices=tuple(t.value for t in NoiseType),
)
SMOOTHGRAD_BASE = Setting(
    "smoothgrad_base",
    BaseMethod.INTEGRATED_GRADIENTS.value,
    "smoothgrad: method averaged over noise",
    choices=tuple(m.value for m in BaseMethod),
    param="base",
)


@register("smoothgrad")
class SmoothGrad(PathAttribution):
    """SmoothGrad: IG (or plain gradients) averaged over noisy copies of the input.

    Over gradients (``base="gradient"``) or over IG (``base="integrated_gradients"``).

    ``attribute(inputs, target=None, additional_forward_args=None, nt_type="smoothgrad",
    nt_samples=25, stdevs=None, noise_level=None, seed=0, baselines=None, n_steps=50,
    method="gausslegendre", nt_samples_batch_size=None, internal_batch_size="auto",
    return_convergence_delta=False)``.

    Noise is added to the input only (the baseline stays as given), as in Captum's NoiseTunnel.
    ``nt_samples_batch_size`` bounds how many noisy copies are held at once (default: as many as
    fit a quarter of the memory budget); the engine batches their path points together.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1))
    >>> sg = SmoothGrad(model)
    >>> attr = sg.attribute(torch.rand(1, 1, 2, 2, 2), nt_samples=4, noise_level=0.1)
    >>> torch.allclose(attr.flatten(), model[1].weight.flatten())  # linear: gradient is constant
    True
    """

    method_name = "smoothgrad"
    settings = (
        NT_SAMPLES,
        NOISE_LEVEL,
        NT_TYPE,
        SMOOTHGRAD_BASE,
        N_STEPS,
        QUADRATURE,
        COMPLETENESS_RTOL,
        MAX_STEPS,
    )
    captum_arguments = (
        "target",
        "additional_forward_args",
        "nt_type",
        "nt_samples",
        "stdevs",
        "noise_level",
        "seed",
        "return_convergence_delta",
    )

    def __init__(
        self,
        forward_func: Any,
        base: str | BaseMethod = BaseMethod.GRADIENT,
        *,
        multiply_by_inputs: bool = True,
        **engine_defaults: Any,
    ) -> None:
        super().__init__(forward_func, multiply_by_inputs, **engine_defaults)
        self.base = parse_option(BaseMethod, base, "base")

    @classmethod
    def from_settings(
        cls, forward_func: Any, settings: Mapping[str, Any], **engine: Any
    ) -> PathAttribution:
        return cls(forward_func, settings["smoothgrad_base"], **engine)

    def captum_delta(self, exp: Explanation) -> Tensor:
        return exp.extras["draw_deltas"]

    def explain_study(
        self, x: Tensor, baselines: Any, target: TargetLike, settings: Mapping[str, Any]
    ) -> Explanation:
        ig = self.base is BaseMethod.INTEGRATED_GRADIENTS
        return self.explain(
            x,
            target,
            nt_type=settings["nt_type"],
            nt_samples=settings["nt_samples"],
            noise_level=settings["noise_level"],
            seed=settings.get("seed", 0),
            baselines=baselines if ig else None,
            n_steps=settings["n_steps"],
            method=settings["quadrature"],
            completeness_rtol=settings.get("completeness_rtol", 0.01),
            max_steps=settings.get("max_steps", 512),
        )

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        nt_type: str = "smoothgrad",
        nt_samples: int = 25,
        stdevs: float | Sequence[float] | None = None,
        noise_level: float | None = None,
        seed: int | None = 0,
        *,
        baselines: Baseline | Tensor | float | None = None,
        n_steps: int | str = 50,
        method: str = "gausslegendre",
        nt_samples_batch_size: int | None = None,
        internal_batch_size: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
        absolute: bool = False,
        completeness_rtol: float = 0.01,
        max_steps: int = 512,
        **engine: Any,
    ) -> Explanation:
        """Like :meth:`attribute`, returning an :class:`Explanation`. ``absolute`` takes the
        absolute value of each draw's attribution before aggregating (Captum's
        ``Saliency(abs=True)`` inside a NoiseTunnel)."""
        kind = parse_option(NoiseType, nt_type, "nt_type")
        if isinstance(nt_samples, bool) or not isinstance(nt_samples, int) or nt_samples < 1:
            raise ValueError(f"nt_samples must be a positive int, got {nt_samples!r}")
        ig = self.base is BaseMethod.INTEGRATED_GRADIENTS
        auto = ig and is_auto(n_steps)
        if ig and not auto:
            alphas, weights = quadrature(method, int(n_steps))
        call = self.begin(
            inputs,
            target,
            additional_forward_args,
            spacing,
            internal_batch_size=internal_batch_size,
            **engine,
            description="smoothgrad",
        )
        x, eng, bound, args = call.x, call.engine, call.bound, call.args
        sigma = noise_sigma(x, stdevs, noise_level)
        if seed is None:
            seed = int(torch.randint(0, 2**31, (1,)))
        batch = call.batch
        if ig:
            base = call.baselines(baselines)
            b = base.baselines
            f_b = call.f_at(b)
        else:
            if baselines is not None:
                raise ValueError("baselines are only used with base='integrated_gradients'")
            base = None
            b = torch.zeros_like(x[:1])
            alphas, weights = np.ones(1), np.ones(1)
            f_b = torch.zeros(batch, dtype=torch.float64)
        group = nt_samples_batch_size or self._group_size(x, nt_samples, batch)
        total = batch * nt_samples
        mean = torch.zeros_like(x, dtype=torch.float32)
        sq = torch.zeros_like(x, dtype=torch.float32)
        draw_deltas = torch.zeros(total, dtype=torch.float64)
        f_noisy = torch.zeros(total, dtype=torch.float64)
        chunk_sizes: list[int] = []
        oom = 0
        adaptive: list[dict[str, Any]] = []
        v0 = 0
        while v0 < total:
            v1 = min(total, v0 + group)
            owners = torch.arange(v0, v1) // nt_samples
            draws = torch.arange(v0, v1) % nt_samples
            noisy = torch.stack(
                [
                    x[int(i)].float()
                    + draw_noise(x.shape[1:], float(sigma[int(i)]), seed, int(i), int(j), x.device)
                    for i, j in zip(owners.tolist(), draws.tolist(), strict=True)
                ]
            ).to(x.dtype)
            g = v1 - v0
            noisy_args = owner_args(args, owners.to(x.device), batch)
            if auto:  # each noisy copy's path refined until its own completeness holds
                ares = adaptive_path_integral(
                    eng,
                    noisy,
                    b,
                    owned(bound, owners),
                    noisy_args,
                    paths=PathSet(torch.arange(g), owners, torch.ones(g)),
                    rtol=completeness_rtol,
                    max_steps=max_steps,
                    multiply_by_delta=self.multiply_by_inputs,
                )
                a = ares.sums[0].abs() if absolute else ares.sums[0]
                f_noisy[v0:v1] = ares.f_input
                draw_deltas[v0:v1] = a.flatten(1).double().sum(1).cpu() - (
                    ares.f_input - f_b[owners]
                )
                adaptive.append(adaptive_record(ares, completeness_rtol, max_steps))
                mean.index_add_(0, owners.to(x.device), a)
                sq.index_add_(0, owners.to(x.device), a * a)
                chunk_sizes += ares.chunk_sizes
                oom += ares.oom_retries
                v0 = v1
                continue
            jobs = PathJobs.straight(g, alphas, weights)
            refs = owners.repeat(len(alphas)) if ig else torch.zeros(len(jobs), dtype=torch.long)
            jobs = PathJobs(jobs.sample, refs, jobs.alpha, jobs.weight)
            res = eng.run(
                noisy,
                b,
                jobs,
                owned(bound, owners),
                noisy_args,
                multiply_by_delta=ig and self.multiply_by_inputs,
            )
            a = res.sums[0].abs() if absolute else res.sums[0]
            f_v = eng.target_values(
                noisy, torch.arange(g), owned(bound, owners), noisy_args, batch=g
            )
            f_noisy[v0:v1] = f_v
            if ig:
                draw_deltas[v0:v1] = a.flatten(1).double().sum(1).cpu() - (f_v - f_b[owners])
            dev_owners = owners.to(x.device)
            mean.index_add_(0, dev_owners, a)
            sq.index_add_(0, dev_owners, a * a)
            chunk_sizes += res.chunk_sizes
            oom += res.oom_retries
            v0 = v1
        attr = aggregate(kind, mean / nt_samples, sq / nt_samples)
        per_input = draw_deltas.view(batch, nt_samples).mean(1)
        mean_f_noisy = f_noisy.view(batch, nt_samples).mean(1)
        nan = torch.full((batch,), float("nan"), dtype=torch.float64)
        settings: dict[str, Any] = {
            "nt_type": kind.value,
            "nt_samples": nt_samples,
            "sigma": sigma.tolist(),
            "noise_level": noise_level,
            "stdevs": stdevs if stdevs is None or isinstance(stdevs, float | int) else list(stdevs),
            "seed": seed,
            "base": self.base.value,
            **({"n_steps": n_steps, "method": str(method)} if ig and not auto else {}),
            **(auto_settings(completeness_rtol, max_steps) if auto else {}),
        }
        return call.explanation(
            attr,
            f_b if ig else nan,
            EngineResult(attr, f_noisy, chunk_sizes, oom),
            settings,
            baselines=b if ig else None,
            convergence_delta=per_input if ig and kind is NoiseType.SMOOTHGRAD else nan,
            method=f"{kind.value}[{self.base.value}]",
            extras={
                "draw_deltas": draw_deltas
                if ig
                else torch.full((total,), float("nan"), dtype=torch.float64),
                "f_noisy_mean": mean_f_noisy.tolist(),
                "baseline": base.info if base is not None else {},
                **({"adaptive": merge_records(adaptive)} if auto else {}),
            },
        )

    def _group_size(self, x: Tensor, nt_samples: int, batch: int) -> int:
        from medattr.attribution._memory import available_bytes, parse_bytes

        per = x[0].numel() * 4 * 3  # noisy copy + mean + square accumulators
        budget = available_bytes(
            x.device,
            parse_bytes(self.memory_budget) if isinstance(self.memory_budget, str | int) else None,
        )
        return max(1, min(batch * nt_samples, int(0.25 * budget) // max(per, 1), 256))


def owned(bound: Any, owners: Tensor) -> Any:
    """Map the engine's virtual-sample indices (noisy copies) to the owning input."""
    return _Owned(bound, owners)


class _Owned:
    def __init__(self, bound: Any, owners: Tensor) -> None:
        self.bound, self.owners = bound, owners

    def __call__(self, output: Tensor, sample: Tensor) -> Tensor:
        return self.bound(output, self.owners.to(sample.device)[sample])

    def linear(self, sample: Tensor) -> Any:
        inner = getattr(self.bound, "linear", None)
        return inner(self.owners.to(sample.device)[sample]) if callable(inner) else None


def owner_args(args: tuple[Any, ...], owners: Tensor, batch: int) -> tuple[Any, ...]:
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            out.append(a.index_select(0, owners.to(a.device)))
        else:
            out.append(a)
    return tuple(out)
