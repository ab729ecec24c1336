"""The residual VAE counterfactual, fixed: residual correction only outside the anomaly mask.

:class:`~medattr.baselines.counterfactual.VAEGuidedResidualBaseline`
(``vae-guided-residual``) adds the whole residual
``x - D(mu(x))`` back, and a healthy-only decoder cannot draw the lesion, so the residual puts
the lesion back into ``x'``. Here the residual is added only where the anomaly mask
(:class:`medattr.generative.AnomalyMasker`) says the tissue is normal:

``x' = D(z_cf) + (1 - w) * (x - D(mu(x)))``

with ``w`` the feathered mask. Inside the mask ``x'`` is the decoded healthy anatomy; outside
it is the input plus only the change the latent optimisation makes (``D(z_cf) - D(mu)``). At
the first step (``z = mu``) that is exactly the mask filled by the VAE; the optimisation moves
``z`` only while the classifier still calls ``x'`` diseased (as
:class:`~medattr.baselines.counterfactual.VAEGuidedBaseline`), with the distance to ``x``
counted outside the mask only. With an empty mask (a healthy volume) it is the plain residual
variant, which starts at ``x' = x``. Registered as ``vae-guided-residual-masked``; the VAE and
the inpainter are both assets (manifest SHA-256, cohort fingerprint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext, BaselineResult, BaselineSetup
from medattr.baselines._registry import register
from medattr.baselines.counterfactual._masking import (
    ANOMALY_MODEL,
    ANOMALY_SETTINGS,
    DEFAULT_INPAINTER,
    INPAINT_FEATHER_MM,
    INPAINTER,
    anomaly_model_path,
    as_inpainter,
    calibrated_spacing,
    feather_mask,
    inpainter_path,
    load_anomaly_model,
    make_masker,
    mask_report,
)
from medattr.baselines.counterfactual.vae import (
    CF_STEPS,
    CF_THRESHOLD,
    VAE,
    VAEGuidedBaseline,
    _check_grid,
    paired_model_path,
)
from medattr.errors import InputError
from medattr.registry import Setting

__all__ = ["VAEGuidedMaskedResidualBaseline"]


@register("vae-guided-residual-masked")
class VAEGuidedMaskedResidualBaseline(VAEGuidedBaseline):
    """Classifier-guided VAE counterfactual with the residual kept only outside the anomaly mask.

    Parameters
    ----------
    vae, disease_class, threshold, max_steps, lr, proximity, prior
        As for :class:`~medattr.baselines.counterfactual.VAEGuidedBaseline`.
    inpainter
        The healthy inpainter whose calibrated residual gives the anomaly mask (a
        :class:`~medattr.generative.LoadedInpainter` or a path / ``builtin:NAME``).
    feather_mm
        Width of the linear blend outside the mask's edge.
    anomaly_threshold, rounds, dilation_mm
        Override the calibrated anomaly-mask settings.
    anomaly_model
        What scores the anomaly (see :class:`~medattr.baselines.counterfactual.inpaint.
        MaskedInfillBaseline`).
    """

    name = "vae-guided-residual-masked"
    residual = True
    expensive = True
    settings: ClassVar[tuple[Setting, ...]] = (
        VAE,
        INPAINTER,
        CF_THRESHOLD,
        CF_STEPS,
        INPAINT_FEATHER_MM,
        *ANOMALY_SETTINGS,
        ANOMALY_MODEL,
    )
    asset_labels: ClassVar[dict[str, str]] = {
        "vae": "the healthy-only VAE",
        "inpainter": "the healthy inpainter",
        "anomaly_model": "the anomaly score's normative maps",
    }

    def __init__(
        self,
        vae: Any,
        inpainter: Any = DEFAULT_INPAINTER,
        disease_class: int = 1,
        threshold: float = 0.2,
        max_steps: int = 150,
        lr: float = 0.05,
        proximity: float = 1.0,
        prior: float = 0.01,
        feather_mm: float = 4.5,
        anomaly_threshold: float | None = None,
        rounds: int | None = None,
        dilation_mm: float | None = None,
        anomaly_model: Any = None,
    ) -> None:
        super().__init__(vae, disease_class, threshold, max_steps, lr, proximity, prior)
        if feather_mm < 0:
            raise InputError(f"feather_mm must be >= 0, got {feather_mm}")
        self.inpainter = as_inpainter(inpainter)
        self.masker = make_masker(
            self.inpainter, anomaly_model, anomaly_threshold, rounds, dilation_mm
        )
        self.feather_mm = float(feather_mm)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        from medattr.generative import load_inpainter, load_vae

        vae = load_vae(paired_model_path(settings, setup), setup.device)
        inpainter = load_inpainter(inpainter_path(settings, setup), setup.device)
        kwargs = {s.keyword: settings[s.name] for s in cls.settings if s.name in settings}
        kwargs.pop("vae", None)
        kwargs.pop("inpainter", None)
        kwargs["anomaly_model"] = load_anomaly_model(settings, setup)
        return cls(vae, inpainter, disease_class=setup.disease_class, **kwargs)

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        out = {
            "vae": paired_model_path(settings, setup),
            "inpainter": inpainter_path(settings, setup),
        }
        scorer = anomaly_model_path(settings, setup)
        if scorer is not None:
            out["anomaly_model"] = scorer
        return out

    def describe(self) -> dict[str, Any]:
        info = {
            **super().describe(),
            "feather_mm": self.feather_mm,
            "anomaly_mask": self.masker.describe(),
        }
        if hasattr(self.inpainter, "describe"):
            info["inpainter"] = self.inpainter.describe()
        return info

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        if context is None or context.forward_func is None:
            raise InputError(f"{self.name} needs the classifier (BaselineContext.forward_func)")
        sp = calibrated_spacing(self.masker.calibration, context)
        found = self.masker(inputs.detach(), sp)
        mask = torch.stack([torch.from_numpy(a.mask) for a in found])[:, None]
        return self.from_masks(inputs, mask.to(inputs.device), context, sp, found)

    def from_masks(
        self,
        inputs: Tensor,
        masks: Tensor,
        context: BaselineContext,
        spacing: tuple[float, ...] | None = None,
        found: list[Any] | None = None,
    ) -> BaselineResult:
        """The baseline for a given bool mask ``(B, 1, *spatial)`` (e.g. one shared with the
        inpainting baselines)."""
        if context is None or context.forward_func is None:
            raise InputError(f"{self.name} needs the classifier (BaselineContext.forward_func)")
        if tuple(masks.shape) != tuple(inputs.shape):
            raise InputError(
                f"masks must have the inputs' shape {tuple(inputs.shape)}, got {tuple(masks.shape)}"
            )
        sp = (
            spacing if spacing is not None else calibrated_spacing(self.masker.calibration, context)
        )
        _check_grid(self.vae, inputs)
        x = inputs.detach()
        m = masks.to(x.device) > 0.5
        weight, _ = feather_mask(m, self.feather_mm, sp)
        keep = (1.0 - weight).to(x.dtype)
        mu, recon = self._reconstruct(x)
        offset = keep * (x - recon)
        best, steps = self._optimise(context.forward_func, x, mu, recon, offset, keep)
        info = self._report(
            x,
            best,
            context,
            {"steps": steps.tolist(), "max_steps": self.max_steps, **mask_report(m, sp)},
        )
        if found is not None:
            info["mask_steps"] = [a.steps for a in found]
        return BaselineResult(best, info, {"anomaly_mask": m})
