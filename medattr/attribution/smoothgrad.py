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

import time
from collections.abc import Sequence
from enum import Enum
from typing import Any

import numpy as np
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
from medattr.options import parse_option
from medattr.targets import TargetLike

__all__ = ["NoiseTunnel", "NoiseType", "Saliency", "SmoothGrad", "draw_noise"]

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


class SmoothGrad(PathAttribution):
    """SmoothGrad over gradients (``base="gradient"``) or over IG (``base="integrated_gradients"``).

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

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetLike = None,
        additional_forward_args: Any = None,
        nt_type: str = "smoothgrad",
        nt_samples: int = 25,
        stdevs: float | Sequence[float] | None = None,
        noise_level: float | None = None,
        seed: int | None = 0,
        return_convergence_delta: bool = False,
        **kwargs: Any,
    ) -> Any:
        exp = self.explain(
            inputs,
            target,
            additional_forward_args,
            nt_type,
            nt_samples,
            stdevs,
            noise_level,
            seed,
            **kwargs,
        )
        attr: Any = (exp.attributions,) if isinstance(inputs, tuple | list) else exp.attributions
        if return_convergence_delta:
            return attr, exp.extras["draw_deltas"].to(exp.attributions.dtype)
        return attr

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
        n_steps: int = 50,
        method: str = "gausslegendre",
        nt_samples_batch_size: int | None = None,
        internal_batch_size: int | str | None = UNSET,
        amp: str | None = UNSET,
        progress: bool | None = UNSET,
        memory_budget: int | str | None = UNSET,
        spacing: Sequence[float] | None = None,
        absolute: bool = False,
    ) -> Explanation:
        """Like :meth:`attribute`, returning an :class:`Explanation`. ``absolute`` takes the
        absolute value of each draw's attribution before aggregating (Captum's
        ``Saliency(abs=True)`` inside a NoiseTunnel)."""
        t0 = time.perf_counter()
        kind = parse_option(NoiseType, nt_type, "nt_type")
        if isinstance(nt_samples, bool) or not isinstance(nt_samples, int) or nt_samples < 1:
            raise ValueError(f"nt_samples must be a positive int, got {nt_samples!r}")
        x, _, meta_spacing = prepare_inputs(inputs)
        spacing = spacing if spacing is not None else meta_spacing
        sigma = noise_sigma(x, stdevs, noise_level)
        if seed is None:
            seed = int(torch.randint(0, 2**31, (1,)))
        args = as_args(additional_forward_args)
        engine = self.engine(
            internal_batch_size, amp, memory_budget, progress, description="smoothgrad"
        )
        tgt, bound, f_x = self.bind(engine, x, target, args)
        ig = self.base is BaseMethod.INTEGRATED_GRADIENTS
        batch = x.shape[0]
        if ig:
            base = self.baselines_for(baselines, x, spacing, bound, args)
            b = base.baselines
            alphas, weights = quadrature(method, n_steps)
            f_b = engine.target_values(b, torch.arange(batch), bound, args, batch=batch)
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
            jobs = PathJobs.straight(g, alphas, weights)
            refs = owners.repeat(len(alphas)) if ig else torch.zeros(len(jobs), dtype=torch.long)
            jobs = PathJobs(jobs.sample, refs, jobs.alpha, jobs.weight)
            noisy_args = _owner_args(args, owners.to(x.device), batch)
            res = engine.run(
                noisy,
                b,
                jobs,
                _owned(bound, owners),
                noisy_args,
                multiply_by_delta=ig and self.multiply_by_inputs,
            )
            a = res.sums[0].abs() if absolute else res.sums[0]
            f_v = engine.target_values(
                noisy, torch.arange(g), _owned(bound, owners), noisy_args, batch=g
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
        mean /= nt_samples
        sq /= nt_samples
        if kind is NoiseType.SMOOTHGRAD:
            attr = mean
        elif kind is NoiseType.SMOOTHGRAD_SQ:
            attr = sq
        else:
            attr = sq - mean * mean
        per_input = draw_deltas.view(batch, nt_samples).mean(1)
        mean_f_noisy = f_noisy.view(batch, nt_samples).mean(1)
        return Explanation(
            attributions=finish(attr, x),
            convergence_delta=per_input
            if ig and kind is NoiseType.SMOOTHGRAD
            else torch.full((batch,), float("nan"), dtype=torch.float64),
            f_input=f_x,
            f_baseline=f_b if ig else torch.full((batch,), float("nan"), dtype=torch.float64),
            method=f"{kind.value}[{self.base.value}]",
            settings={
                "nt_type": kind.value,
                "nt_samples": nt_samples,
                "sigma": sigma.tolist(),
                "noise_level": noise_level,
                "stdevs": stdevs
                if stdevs is None or isinstance(stdevs, float | int)
                else list(stdevs),
                "seed": seed,
                "base": self.base.value,
                **({"n_steps": n_steps, "method": str(method)} if ig else {}),
                "amp": engine.amp and engine.amp.value,
            },
            target=tgt.describe(),
            n_evaluations=int(sum(chunk_sizes)),
            seconds=time.perf_counter() - t0,
            chunk_sizes=chunk_sizes,
            oom_retries=oom,
            baselines=b if ig else None,
            extras={
                "draw_deltas": draw_deltas
                if ig
                else torch.full((total,), float("nan"), dtype=torch.float64),
                "f_noisy_mean": mean_f_noisy.tolist(),
                "baseline": base.info if base is not None else {},
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


def _owned(bound: Any, owners: Tensor) -> Any:
    """Map the engine's virtual-sample indices (noisy copies) to the owning input."""

    def fn(output: Tensor, sample: Tensor) -> Tensor:
        return bound(output, owners.to(sample.device)[sample])

    return fn


def _owner_args(args: tuple[Any, ...], owners: Tensor, batch: int) -> tuple[Any, ...]:
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            out.append(a.index_select(0, owners.to(a.device)))
        else:
            out.append(a)
    return tuple(out)


class Saliency(PathAttribution):
    """Plain gradients (Simonyan et al. 2014), Captum's ``Saliency`` call shape (``abs=True``)."""

    method_name = "saliency"

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetLike = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        **kwargs: Any,
    ) -> Any:
        x, as_tuple, _ = prepare_inputs(inputs)
        args = as_args(additional_forward_args)
        engine = self.engine(kwargs.pop("internal_batch_size", UNSET), kwargs.pop("amp", UNSET))
        _, bound, _ = self.bind(engine, x, target, args)
        jobs = PathJobs.straight(x.shape[0], [1.0], [1.0])
        res = engine.run(x, torch.zeros_like(x), jobs, bound, args, multiply_by_delta=False)
        g = res.sums[0].abs() if abs else res.sums[0]
        g = finish(g, x)
        return (g,) if as_tuple else g


class NoiseTunnel:
    """Captum's ``NoiseTunnel`` call shape over medattr's :class:`IntegratedGradients` or
    :class:`Saliency`: ``NoiseTunnel(IntegratedGradients(model)).attribute(x, nt_type=...,
    nt_samples=..., stdevs=..., baselines=..., target=..., n_steps=...)``.

    Differences from Captum: noise comes from per-draw seeded generators (``seed=``), and
    ``draw_baseline_from_distrib`` is not supported (use :class:`ExpectedGradients`).
    """

    def __init__(self, attribution_method: PathAttribution) -> None:
        from medattr.attribution.integrated_gradients import IntegratedGradients

        if isinstance(attribution_method, IntegratedGradients):
            base = BaseMethod.INTEGRATED_GRADIENTS
        elif isinstance(attribution_method, Saliency):
            base = BaseMethod.GRADIENT
        else:
            raise TypeError("NoiseTunnel wraps medattr.IntegratedGradients or medattr.Saliency")
        self.attribution_method = attribution_method
        self._abs = isinstance(attribution_method, Saliency)
        m = attribution_method
        self._sg = SmoothGrad(
            m.forward_func,
            base,
            multiply_by_inputs=m.multiply_by_inputs,
            internal_batch_size=m.internal_batch_size,
            amp=m.amp,
            memory_budget=m.memory_budget,
            progress=m.progress,
        )

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | Sequence[float] = 1.0,
        draw_baseline_from_distrib: bool = False,
        **kwargs: Any,
    ) -> Any:
        if draw_baseline_from_distrib:
            raise NotImplementedError("draw_baseline_from_distrib: use medattr.ExpectedGradients")
        rcd = kwargs.pop("return_convergence_delta", False)
        absolute = bool(kwargs.pop("abs", True)) if self._abs else False
        exp = self._sg.explain(
            inputs,
            kwargs.pop("target", None),
            kwargs.pop("additional_forward_args", None),
            nt_type,
            nt_samples,
            stdevs,
            None,
            kwargs.pop("seed", 0),
            nt_samples_batch_size=nt_samples_batch_size,
            absolute=absolute,
            **kwargs,
        )
        attr = exp.attributions
        out: Any = (attr,) if isinstance(inputs, tuple | list) else attr
        if rcd:
            return out, exp.extras["draw_deltas"].to(attr.dtype)
        return out
