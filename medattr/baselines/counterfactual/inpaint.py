"""Local counterfactual baselines: find the anomaly, fill only it with healthy tissue.

``x' = (1 - w) * x + w * G`` where ``w`` is the anomaly mask (:class:`medattr.generative.
AnomalyMasker`, no ground truth) feathered over ``feather_mm`` outside its edge, and ``G`` is
the healthy content for the masked region. Every voxel where ``w = 0`` is exactly the input's
value, so Integrated Gradients, which multiplies by ``x - x'``, gives those voxels exactly zero
attribution: the attribution can only land where the counterfactual changed the anatomy.
This is the mask -> infill -> stitch shape of AutoDDPM (Bercea et al. 2023), IterMask3D
(Liang et al. 2025) and FIDO (Chang et al. 2019).

Three fillings of the same mask, so that what comes from the mask and what from the infill
can be told apart:

- :class:`InpaintCounterfactualBaseline` (``inpaint``): the healthy inpainter's prediction
  ``G(x with the region blanked, mask)``;
- :class:`MaskedBlurBaseline` (``inpaint-mask-blur``, ablation): the input blurred;
- :class:`MaskedVAEBaseline` (``inpaint-mask-vae``, ablation): the healthy VAE's
  reconstruction ``D(mu(x))``.

The inpainter (``--inpainter``, default: the one paired with the model, ``builtin:mni-inpainter``
for the shipped brain classifier) is an asset: the manifest records its SHA-256 and the cohort
fingerprint follows its contents. The report (``info``, the manifest's ``baseline``) holds per
volume the mask's voxels, volume in mm³, emptiness, components and their count, the mask's
construction steps, and with the classifier ``p(disease | x)`` and ``p(disease | x')``.

None of them consults the classifier to build ``x'``: they stop on the mask criterion. With a
classifier in the context they report ``p(disease | x)`` and ``p(disease | x')`` and flag a
baseline still called diseased (``still_diseased``, logged as a warning), which then is not a
"missingness" reference. A volume with an empty mask gets ``x' = x``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext, BaselineResult, BaselineSetup
from medattr.baselines._registry import register
from medattr.baselines.classic import BLUR_SIGMA_MM, blur_mm
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
    CF_THRESHOLD,
    VAE,
    _as_vae,
    _check_grid,
    _disease_probability,
    _distance,
    paired_model_path,
)
from medattr.errors import InputError
from medattr.registry import Setting

__all__ = [
    "ANOMALY_MODEL",
    "ANOMALY_SETTINGS",
    "DEFAULT_INPAINTER",
    "INPAINTER",
    "INPAINT_FEATHER_MM",
    "InpaintCounterfactualBaseline",
    "MaskedBlurBaseline",
    "MaskedInfillBaseline",
    "MaskedVAEBaseline",
    "anomaly_model_path",
    "calibrated_spacing",
    "feather_mask",
    "inpainter_path",
    "load_anomaly_model",
    "make_masker",
    "mask_report",
]

log = logging.getLogger("medattr.baselines")


class MaskedInfillBaseline(Baseline):
    """Anomaly mask, feathered, filled by :meth:`_fill`; the shared machinery of this module.

    Parameters
    ----------
    inpainter
        The healthy inpainter whose residual finds the anomaly: a
        :class:`~medattr.generative.LoadedInpainter`, an object with ``predict`` and a
        ``calibration``, or a path / ``builtin:NAME`` (default :data:`DEFAULT_INPAINTER`).
    disease_class
        Classifier output meaning "diseased", for the report.
    threshold
        Disease probability above which the baseline is flagged as still diseased.
    feather_mm
        Width of the linear blend outside the mask's edge.
    anomaly_threshold, rounds, dilation_mm
        Override the calibrated anomaly-mask settings (defaults: the calibration stored with
        the anomaly score).
    anomaly_model
        What scores the anomaly: normative maps of the healthy VAE's residual (a path,
        ``builtin:mni-normative``, or loaded), or ``None`` / ``"inpainter"`` for the
        inpainter's leave-block-out residual. The command line, bundle and benchmark default
        to the maps paired with the model (:func:`anomaly_model_path`).
    """

    name = "masked-infill"
    expensive = True
    """Made once per study and cached by the benchmark (the mask costs 16+ inpainter passes)."""
    settings: ClassVar[tuple[Setting, ...]] = (
        INPAINTER,
        CF_THRESHOLD,
        INPAINT_FEATHER_MM,
        *ANOMALY_SETTINGS,
        ANOMALY_MODEL,
    )
    asset_labels: ClassVar[dict[str, str]] = {
        "inpainter": "the healthy inpainter",
        "anomaly_model": "the anomaly score's normative maps",
    }

    def __init__(
        self,
        inpainter: Any = DEFAULT_INPAINTER,
        disease_class: int = 1,
        threshold: float = 0.5,
        feather_mm: float = 4.5,
        anomaly_threshold: float | None = None,
        rounds: int | None = None,
        dilation_mm: float | None = None,
        anomaly_model: Any = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise InputError(f"threshold must be in (0, 1), got {threshold}")
        if feather_mm < 0:
            raise InputError(f"feather_mm must be >= 0, got {feather_mm}")
        self.inpainter = as_inpainter(inpainter)
        self.masker = make_masker(
            self.inpainter, anomaly_model, anomaly_threshold, rounds, dilation_mm
        )
        self.disease_class = int(disease_class)
        self.threshold = float(threshold)
        self.feather_mm = float(feather_mm)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "disease_class": self.disease_class,
            "threshold": self.threshold,
            "feather_mm": self.feather_mm,
            "anomaly_mask": self.masker.describe(),
        }
        if hasattr(self.inpainter, "describe"):
            info["inpainter"] = self.inpainter.describe()
        return info

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        from medattr.generative import load_inpainter

        kwargs = {
            s.keyword: settings[s.name] for s in cls.settings if s.name in settings and not s.asset
        }
        kwargs.update(cls._load_assets(settings, setup))
        inpainter = load_inpainter(inpainter_path(settings, setup), setup.device)
        kwargs["anomaly_model"] = load_anomaly_model(settings, setup)
        return cls(inpainter, disease_class=setup.disease_class, **kwargs)

    @classmethod
    def _load_assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, Any]:
        """Generative models besides the inpainter, loaded, by ``__init__`` keyword."""
        return {}

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        out = {"inpainter": inpainter_path(settings, setup)}
        scorer = anomaly_model_path(settings, setup)
        if scorer is not None:
            out["anomaly_model"] = scorer
        return out

    # ------------------------------------------------------------------ the pieces
    def spacing(self, inputs: Tensor, context: BaselineContext | None) -> tuple[float, ...]:
        """The model grid's voxel size (see :func:`calibrated_spacing`)."""
        return calibrated_spacing(self.masker.calibration, context)

    def masks(self, inputs: Tensor, spacing: Sequence[float]) -> list[Any]:
        """The anomaly masks (:class:`~medattr.generative.AnomalyMask`) of ``inputs``."""
        return self.masker(inputs.detach(), spacing)

    def _fill(self, x: Tensor, support: Tensor, spacing: Sequence[float]) -> Tensor:
        raise NotImplementedError

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        sp = self.spacing(inputs, context)
        return self.from_masks(inputs, self.masks(inputs, sp), context, sp)

    def from_masks(
        self,
        inputs: Tensor,
        masks: Sequence[Any] | Tensor,
        context: BaselineContext | None = None,
        spacing: Sequence[float] | None = None,
    ) -> BaselineResult:
        """The baseline for given masks: :class:`AnomalyMask` objects (from :meth:`masks`, so
        that several fillings share one mask) or a bool tensor ``(B, 1, *spatial)``."""
        if inputs.dim() != 5 or inputs.shape[1] != 1:
            raise InputError(f"inputs must be (B, 1, D, H, W), got {tuple(inputs.shape)}")
        sp = tuple(spacing) if spacing is not None else self.spacing(inputs, context)
        found = None
        if isinstance(masks, Tensor):
            m = masks.to(inputs.device) > 0.5
        else:
            found = list(masks)
            m = torch.from_numpy(np.stack([a.mask for a in found]))[:, None].to(inputs.device)
        if tuple(m.shape) != tuple(inputs.shape):
            raise InputError(
                f"masks must have the inputs' shape {tuple(inputs.shape)}, got {tuple(m.shape)}"
            )
        x = inputs.detach()
        weight, support = feather_mask(m, self.feather_mm, sp)
        b = x.clone()
        rows = [i for i in range(len(x)) if bool(support[i].any())]
        if rows:
            fill = self._fill(x[rows], support[rows], sp).to(x.dtype)
            w = weight[rows].to(x.dtype)
            b[rows] = torch.where(support[rows], (1 - w) * x[rows] + w * fill, x[rows])
        return BaselineResult(b, self._report(x, b, m, sp, context, found), {"anomaly_mask": m})

    def _report(
        self,
        x: Tensor,
        b: Tensor,
        m: Tensor,
        spacing: Sequence[float],
        context: BaselineContext | None,
        found: list[Any] | None,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {**mask_report(m, spacing), "distance_to_input": _distance(x, b)}
        if found is not None:
            info["steps"] = [a.steps for a in found]
        if context is not None and context.forward_func is not None:
            with torch.no_grad():
                p_x = _disease_probability(context.forward_func, x, self.disease_class)
                p_b = _disease_probability(context.forward_func, b, self.disease_class)
            still = (p_b > self.threshold).tolist()
            info.update(
                p_disease_input=p_x.tolist(),
                p_disease_baseline=p_b.tolist(),
                reached_healthy=[not s for s in still],
                still_diseased=still,
            )
            if any(still):
                log.warning(
                    "%s baseline: the classifier still calls %d of %d baseline(s) diseased "
                    "(p = %s > %.2f); it is not a 'missingness' reference for them",
                    self.name,
                    sum(still),
                    len(still),
                    ", ".join(f"{v:.2f}" for v in p_b.tolist()),
                    self.threshold,
                )
        return info


@register("inpaint")
class InpaintCounterfactualBaseline(MaskedInfillBaseline):
    """The anomaly mask filled by the healthy inpainter: ``x' = (1 - w) x + w G(x, mask)``.

    See :class:`MaskedInfillBaseline` for the parameters.

    Examples
    --------
    >>> base = InpaintCounterfactualBaseline("builtin:mni-inpainter")  # doctest: +SKIP
    >>> res = base.generate(x, BaselineContext(spacing=(3.0, 3.0, 3.0)))  # doctest: +SKIP
    >>> res.info["mask_volume_mm3"], res.info["steps"]  # doctest: +SKIP
    """

    name = "inpaint"

    def _fill(self, x: Tensor, support: Tensor, spacing: Sequence[float]) -> Tensor:
        with torch.no_grad():
            return self.inpainter.predict(x, support.float())


@register("inpaint-mask-blur")
class MaskedBlurBaseline(MaskedInfillBaseline):
    """Ablation: the same anomaly mask filled with the input blurred by ``sigma_mm``.

    Parameters
    ----------
    sigma_mm
        Gaussian sigma of the blur (the classic ``blur`` baseline's default, 10 mm).
    **settings
        As for :class:`MaskedInfillBaseline`.
    """

    name = "inpaint-mask-blur"
    settings = (*MaskedInfillBaseline.settings, BLUR_SIGMA_MM)

    def __init__(self, inpainter: Any = DEFAULT_INPAINTER, sigma_mm: float = 10.0, **settings: Any):
        super().__init__(inpainter, **settings)
        if sigma_mm < 0:
            raise InputError(f"sigma_mm must be >= 0, got {sigma_mm}")
        self.sigma_mm = float(sigma_mm)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "sigma_mm": self.sigma_mm}

    def _fill(self, x: Tensor, support: Tensor, spacing: Sequence[float]) -> Tensor:
        return blur_mm(x, self.sigma_mm, spacing)


@register("inpaint-mask-vae")
class MaskedVAEBaseline(MaskedInfillBaseline):
    """Ablation: the same anomaly mask filled with the healthy VAE's reconstruction.

    Parameters
    ----------
    vae
        A :class:`~medattr.generative.LoadedVAE`, a module with ``encode``/``decode``, or a
        path (default ``builtin:mni-vae``).
    **settings
        As for :class:`MaskedInfillBaseline`.
    """

    name = "inpaint-mask-vae"
    settings = (*MaskedInfillBaseline.settings, VAE)
    asset_labels: ClassVar[dict[str, str]] = {
        "inpainter": "the healthy inpainter",
        "vae": "the healthy-only VAE",
    }

    @classmethod
    def _load_assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, Any]:
        from medattr.generative import load_vae

        return {"vae": load_vae(paired_model_path(settings, setup), setup.device)}

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        return {**super().assets(settings, setup), "vae": paired_model_path(settings, setup)}

    def __init__(
        self, inpainter: Any = DEFAULT_INPAINTER, vae: Any = "builtin:mni-vae", **settings: Any
    ):
        super().__init__(inpainter, **settings)
        self.vae = _as_vae(vae)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if hasattr(self.vae, "describe"):
            info["vae"] = self.vae.describe()
        return info

    def _fill(self, x: Tensor, support: Tensor, spacing: Sequence[float]) -> Tensor:
        _check_grid(self.vae, x)
        with torch.no_grad():
            mu, _ = self.vae.encode(x)
            return self.vae.decode(mu)
