"""NoiseTunnel: any path method averaged over noisy copies of the input (Captum's call shape)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from medattr.attribution._base import Explanation, PathAttribution
from medattr.attribution.jobs import EngineResult
from medattr.attribution.saliency import Saliency
from medattr.attribution.smoothgrad import (
    BaseMethod,
    NoiseType,
    SmoothGrad,
    draw_noise,
    noise_sigma,
    owned,
    owner_args,
)
from medattr.options import parse_option
from medattr.targets import BoundTarget, Target

__all__ = ["NoiseTunnel"]


class _Prebound(Target):
    """A target already bound at the clean inputs, applied to noisy copies of them."""

    def __init__(self, bound: BoundTarget, owners: Tensor, description: dict[str, Any]) -> None:
        self.bound, self.owners, self.description = bound, owners, description

    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        return owned(self.bound, self.owners)

    def describe(self) -> dict[str, Any]:
        return self.description


class NoiseTunnel:
    """Captum's ``NoiseTunnel`` over any medattr path method: the method's attribution averaged
    over noisy copies of the input (``smoothgrad``, ``smoothgrad_sq`` or ``vargrad``).

    ``NoiseTunnel(method).attribute(x, nt_type=..., nt_samples=..., stdevs=..., **method_kwargs)``
    where ``method_kwargs`` are the wrapped method's own (``baselines``, ``target``,
    ``n_steps``, ...). The target is bound once at the clean input (a ``"predicted"`` class
    stays that of the clean input), baselines are made once from the clean input, and the
    noise is added to the input only. Noisy copies are batched together through the wrapped
    method, so the engine plans their path points as one run. :class:`IntegratedGradients` and
    :class:`Saliency` go through :class:`SmoothGrad` (the same numbers).

    Differences from Captum: noise comes from per-draw seeded generators (``seed=``), and
    ``draw_baseline_from_distrib`` is not supported (use :class:`ExpectedGradients`).
    """

    def __init__(self, attribution_method: PathAttribution) -> None:
        from medattr.attribution.integrated_gradients import IntegratedGradients

        if not isinstance(attribution_method, PathAttribution):
            raise TypeError(
                f"NoiseTunnel wraps a medattr path method, got {type(attribution_method).__name__}"
            )
        self.attribution_method = attribution_method
        self._abs = isinstance(attribution_method, Saliency)
        m = attribution_method
        self._sg: SmoothGrad | None = None
        if type(m) in (IntegratedGradients, Saliency):
            self._sg = SmoothGrad(
                m.forward_func,
                BaseMethod.GRADIENT if self._abs else BaseMethod.INTEGRATED_GRADIENTS,
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
        exp = self.explain(
            inputs,
            nt_type=nt_type,
            nt_samples=nt_samples,
            nt_samples_batch_size=nt_samples_batch_size,
            stdevs=stdevs,
            **kwargs,
        )
        attr = exp.attributions
        out: Any = (attr,) if isinstance(inputs, tuple | list) else attr
        if rcd:
            return out, exp.extras["draw_deltas"].to(attr.dtype)
        return out

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        nt_type: str = "smoothgrad",
        nt_samples: int = 5,
        nt_samples_batch_size: int | None = None,
        stdevs: float | Sequence[float] | None = 1.0,
        noise_level: float | None = None,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> Explanation:
        """Like :meth:`attribute`, returning an :class:`Explanation` (per-draw deltas in
        ``extras["draw_deltas"]``)."""
        if noise_level is not None:
            stdevs = None
        if self._sg is not None:
            absolute = bool(kwargs.pop("abs", True)) if self._abs else False
            return self._sg.explain(
                inputs,
                kwargs.pop("target", None),
                kwargs.pop("additional_forward_args", None),
                nt_type,
                nt_samples,
                stdevs,
                noise_level,
                seed,
                nt_samples_batch_size=nt_samples_batch_size,
                absolute=absolute,
                **kwargs,
            )
        return self._generic(
            inputs, nt_type, nt_samples, nt_samples_batch_size, stdevs, noise_level, seed, kwargs
        )

    def _generic(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        nt_type: str,
        nt_samples: int,
        group_size: int | None,
        stdevs: float | Sequence[float] | None,
        noise_level: float | None,
        seed: int | None,
        kwargs: dict[str, Any],
    ) -> Explanation:
        m = self.attribution_method
        kind = parse_option(NoiseType, nt_type, "nt_type")
        if isinstance(nt_samples, bool) or not isinstance(nt_samples, int) or nt_samples < 1:
            raise ValueError(f"nt_samples must be a positive int, got {nt_samples!r}")
        call = m.begin(
            inputs, kwargs.pop("target", None), kwargs.pop("additional_forward_args", None)
        )
        x, batch = call.x, call.batch
        sigma = noise_sigma(x, stdevs, noise_level)
        seed = int(torch.randint(0, 2**31, (1,))) if seed is None else seed
        spec = kwargs.pop("baselines", None)
        if m.baseline_kind == "single":
            base = call.baselines(spec)
            b: Any = base.baselines
        else:
            b, base = spec, None
        total = batch * nt_samples
        group = group_size or max(1, min(total, 64))
        mean = torch.zeros_like(x, dtype=torch.float32)
        sq = torch.zeros_like(x, dtype=torch.float32)
        draw_deltas = torch.zeros(total, dtype=torch.float64)
        f_base = torch.zeros(batch, dtype=torch.float64)
        chunk_sizes: list[int] = []
        for v0 in range(0, total, group):
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
            dev = owners.to(x.device)
            exp = m.explain(
                noisy,
                baselines=b.index_select(0, dev) if base is not None else b,
                target=_Prebound(call.bound, owners, call.target.describe()),
                additional_forward_args=owner_args(call.args, dev, batch) or None,
                **kwargs,
            )
            a = exp.attributions.float()
            mean.index_add_(0, dev, a)
            sq.index_add_(0, dev, a * a)
            draw_deltas[v0:v1] = exp.convergence_delta
            f_base.index_add_(0, owners, exp.f_baseline.double() / nt_samples)
            chunk_sizes += exp.chunk_sizes
        mean /= nt_samples
        sq /= nt_samples
        attr = (
            mean
            if kind is NoiseType.SMOOTHGRAD
            else sq
            if kind is NoiseType.SMOOTHGRAD_SQ
            else sq - mean * mean
        )
        per_input = draw_deltas.view(batch, nt_samples).mean(1)
        nan = torch.full((batch,), float("nan"), dtype=torch.float64)
        return call.explanation(
            attr,
            f_base,
            EngineResult(attr, torch.zeros(0, dtype=torch.float64), chunk_sizes),
            {
                "nt_type": kind.value,
                "nt_samples": nt_samples,
                "sigma": sigma.tolist(),
                "seed": seed,
            },
            baselines=b if base is not None else None,
            convergence_delta=per_input if kind is NoiseType.SMOOTHGRAD else nan,
            method=f"{kind.value}[{m.method_name}]",
            extras={"draw_deltas": draw_deltas, "baseline": base.info if base is not None else {}},
        )
