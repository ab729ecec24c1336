"""Classic baselines: zero, constant, Gaussian blur (sigma in mm), uniform and Gaussian noise.

They are what the literature compares against; for CT and MR they are rarely a meaningful
"absence of disease" (see ``medattr.baselines.counterfactual``). The noise baselines follow
Sturmfels, Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines", Distill
2020: uniform noise over each input's value range, and the input plus Gaussian noise clipped
to that range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from medattr._baseline import (
    Baseline,
    BaselineContext,
    BaselineResult,
    BaselineSetup,
    broadcast_baseline,
    seeded_generator,
)
from medattr.baselines._registry import register
from medattr.registry import Setting

__all__ = [
    "ConstantBaseline",
    "GaussianBlurBaseline",
    "GaussianNoiseBaseline",
    "TensorBaseline",
    "UniformNoiseBaseline",
    "ZeroBaseline",
    "blur_mm",
]

BASELINE_VALUE = Setting(
    "baseline_value",
    None,
    "constant baseline: value in SOURCE units (e.g. -1000 for air in HU), mapped through the "
    "model's intensity window; default: each input's minimum",
    type=float,
    optional=True,
)
BLUR_SIGMA_MM = Setting(
    "blur_sigma_mm", 10.0, "blur baseline: sigma in mm", type=float, minimum=0.0, param="sigma_mm"
)
NOISE_SIGMA_FRACTION = Setting(
    "noise_sigma_fraction",
    0.2,
    "noise-gaussian baseline: sigma as a fraction of the input's range",
    type=float,
    minimum=0.0,
    param="sigma_fraction",
)


def _per_sample(x: Tensor, fn: str) -> Tensor:
    flat = x.flatten(1)
    val = flat.amin(1) if fn == "min" else flat.amax(1) if fn == "max" else flat.mean(1)
    return val.view(-1, *([1] * (x.dim() - 1)))


@register("zero")
class ZeroBaseline(Baseline):
    """All zeros in model units (Captum's default).

    Examples
    --------
    >>> ZeroBaseline()(torch.ones(1, 1, 2, 2, 2)).sum().item()
    0.0
    """

    name = "zero"

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        return BaselineResult(torch.zeros_like(inputs))


@register("constant")
class ConstantBaseline(Baseline):
    """A constant volume (``--baseline-value`` in source units; default each input's minimum).

    Parameters
    ----------
    value
        A number in the units of the model input, or ``"min"``, ``"max"`` or ``"mean"`` of each
        input. (For a value in source units such as -1000 HU air, the pipeline maps it through
        the model's intensity preprocessing first.)
    """

    name = "constant"
    settings = (BASELINE_VALUE,)

    def __init__(self, value: float | str = "min") -> None:
        if isinstance(value, str) and value not in ("min", "max", "mean"):
            raise ValueError(
                f"value must be a number or one of 'min', 'max', 'mean'; got {value!r}"
            )
        self.value = value

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        value = settings.get("baseline_value")
        if value is None:
            return cls("min")
        spec = getattr(setup.model, "spec", None)
        intensity = getattr(spec, "intensity", None)
        return cls(intensity.to_model(value) if intensity is not None else value)

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        if isinstance(self.value, str):
            return BaselineResult(_per_sample(inputs, self.value).expand_as(inputs).clone())
        return BaselineResult(torch.full_like(inputs, float(self.value)))


def blur_mm(
    inputs: Tensor,
    sigma_mm: float | Sequence[float],
    spacing: Sequence[float],
    truncated: float = 4.0,
) -> Tensor:
    """Gaussian-blur the spatial axes of ``(B, C, *spatial)`` with sigma in millimetres.

    Borders are replicated (no darkening at the edge of the field of view). ``sigma_mm = 0``
    returns the input unchanged.
    """
    nd = inputs.dim() - 2
    sig = (
        [float(sigma_mm)] * nd
        if isinstance(sigma_mm, int | float)
        else [float(s) for s in sigma_mm]
    )
    if len(sig) != nd or len(spacing) != nd:
        raise ValueError(
            f"need {nd} sigma and spacing values, got sigma={sig} spacing={list(spacing)}"
        )
    if any(s < 0 for s in sig):
        raise ValueError(f"sigma must be >= 0, got {sig}")
    sig_vox = [s / float(sp) for s, sp in zip(sig, spacing, strict=True)]
    return _blur_voxels(inputs, sig_vox, truncated)


def _blur_voxels(inputs: Tensor, sigma_vox: Sequence[float], truncated: float) -> Tensor:
    from monai.networks.layers.convutils import gaussian_1d  # lazy: importing MONAI is slow
    from monai.networks.layers.simplelayers import separable_filtering

    if all(s == 0 for s in sigma_vox):
        return inputs.clone()
    kernels = []
    for s in sigma_vox:
        if s == 0:
            kernels.append(torch.ones(1, dtype=torch.float32))
        else:
            kernels.append(
                gaussian_1d(
                    torch.tensor(s), truncated=truncated, approx="sampled", normalize=True
                ).float()
            )
    x = inputs.float()
    out = separable_filtering(x, [k.to(x.device) for k in kernels], mode="replicate")
    return out.to(inputs.dtype)


@register("blur")
class GaussianBlurBaseline(Baseline):
    """The input blurred with a Gaussian of standard deviation ``sigma_mm`` millimetres.

    Parameters
    ----------
    sigma_mm
        Sigma in mm (scalar or one per spatial axis); needs the voxel spacing, taken from the
        :class:`BaselineContext` (the pipeline and the ``spacing=`` argument of the methods set
        it).
    sigma_voxels
        Alternatively, sigma in voxels, when no spacing is known.
    truncated
        Kernel radius in sigmas.

    Examples
    --------
    >>> b = GaussianBlurBaseline(sigma_mm=0.0)
    >>> x = torch.rand(1, 1, 4, 4, 4)
    >>> torch.equal(b(x, BaselineContext(spacing=(1, 1, 1))), x)
    True
    """

    name = "blur"
    settings = (BLUR_SIGMA_MM,)

    def __init__(
        self,
        sigma_mm: float | Sequence[float] | None = 10.0,
        sigma_voxels: float | Sequence[float] | None = None,
        truncated: float = 4.0,
    ) -> None:
        if sigma_voxels is not None:
            sigma_mm = None
        if sigma_mm is None and sigma_voxels is None:
            raise ValueError("give sigma_mm or sigma_voxels")
        self.sigma_mm = sigma_mm
        self.sigma_voxels = sigma_voxels
        self.truncated = truncated

    def describe(self) -> dict[str, Any]:
        if self.sigma_voxels is not None:
            return {"name": self.name, "sigma_voxels": self.sigma_voxels}
        return {"name": self.name, "sigma_mm": self.sigma_mm}

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        nd = inputs.dim() - 2
        if self.sigma_voxels is not None:
            sv = self.sigma_voxels
            sig = [float(sv)] * nd if isinstance(sv, int | float) else list(sv)
            return BaselineResult(_blur_voxels(inputs, sig, self.truncated))
        spacing = context.spacing if context is not None else None
        if spacing is None:
            raise ValueError(
                "GaussianBlurBaseline(sigma_mm=...) needs the voxel spacing: pass spacing=... to "
                "the "
                "attribution method, use a MONAI MetaTensor input, or give sigma_voxels"
            )
        assert self.sigma_mm is not None
        return BaselineResult(blur_mm(inputs, self.sigma_mm, spacing, self.truncated))


@register("noise-uniform")
class UniformNoiseBaseline(Baseline):
    """Uniform noise between ``low`` and ``high`` (default: each input's min and max).

    ``seed`` makes it reproducible; each call with the same seed gives the same noise.
    """

    name = "noise-uniform"

    def __init__(
        self, low: float | None = None, high: float | None = None, seed: int | None = 0
    ) -> None:
        if low is not None and high is not None and high < low:
            raise ValueError(f"high ({high}) must be >= low ({low})")
        self.low, self.high, self.seed = low, high, seed

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "low": self.low, "high": self.high, "seed": self.seed}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        return cls(seed=setup.seed)

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        g = seeded_generator(self.seed, inputs.device)
        lo = (
            _per_sample(inputs, "min")
            if self.low is None
            else torch.tensor(float(self.low), device=inputs.device)
        )
        hi = (
            _per_sample(inputs, "max")
            if self.high is None
            else torch.tensor(float(self.high), device=inputs.device)
        )
        u = torch.rand(inputs.shape, generator=g, device=inputs.device, dtype=torch.float32)
        return BaselineResult((lo + (hi - lo) * u).to(inputs.dtype))


@register("noise-gaussian")
class GaussianNoiseBaseline(Baseline):
    """The input plus Gaussian noise, clipped to each input's value range.

    Parameters
    ----------
    sigma
        Absolute standard deviation in the units of the model input, or
    sigma_fraction
        standard deviation as a fraction of each input's (max - min) (used when ``sigma`` is
        ``None``; default 0.2).
    clip
        Clip to each input's [min, max].
    seed
        Seed for reproducible noise.
    """

    name = "noise-gaussian"
    settings = (NOISE_SIGMA_FRACTION,)

    def __init__(
        self,
        sigma: float | None = None,
        sigma_fraction: float = 0.2,
        clip: bool = True,
        seed: int | None = 0,
    ) -> None:
        if sigma is not None and sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if sigma_fraction < 0:
            raise ValueError(f"sigma_fraction must be >= 0, got {sigma_fraction}")
        self.sigma, self.sigma_fraction, self.clip, self.seed = sigma, sigma_fraction, clip, seed

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sigma": self.sigma,
            "sigma_fraction": self.sigma_fraction,
            "clip": self.clip,
            "seed": self.seed,
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        return cls(sigma_fraction=settings["noise_sigma_fraction"], seed=setup.seed)

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        g = seeded_generator(self.seed, inputs.device)
        lo, hi = _per_sample(inputs, "min"), _per_sample(inputs, "max")
        std = (
            (hi - lo) * self.sigma_fraction
            if self.sigma is None
            else torch.tensor(float(self.sigma))
        )
        noise = torch.randn(inputs.shape, generator=g, device=inputs.device, dtype=torch.float32)
        out = inputs.float() + std.to(inputs.device) * noise
        if self.clip:
            out = torch.maximum(torch.minimum(out, hi), lo)
        return BaselineResult(out.to(inputs.dtype))


class TensorBaseline(Baseline):
    """A fixed, user-supplied baseline (broadcast to the inputs)."""

    name = "tensor"

    def __init__(self, tensor: Tensor, name: str = "tensor") -> None:
        self.tensor = tensor
        self.name = name

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        return BaselineResult(broadcast_baseline(self.tensor, inputs))
