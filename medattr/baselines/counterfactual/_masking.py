"""The pieces the masked baselines share: which inpainter and which anomaly score they use
(settings and paired defaults), the anomaly masker built from them, the feathered blend weight,
the voxel-size check and the mask's report. The baselines themselves are in
:mod:`medattr.baselines.counterfactual.inpaint` and
:mod:`medattr.baselines.counterfactual.masked_residual`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from medattr._baseline import BaselineContext, BaselineSetup
from medattr.baselines.counterfactual.vae import paired_model_path
from medattr.errors import InputError
from medattr.registry import Setting

__all__ = [
    "ANOMALY_MODEL",
    "ANOMALY_SETTINGS",
    "DEFAULT_INPAINTER",
    "INPAINTER",
    "INPAINTER_SCORE",
    "INPAINT_FEATHER_MM",
    "PAIRED_ANOMALY_MODELS",
    "PAIRED_INPAINTERS",
    "anomaly_model_path",
    "as_inpainter",
    "calibrated_spacing",
    "feather_mask",
    "inpainter_path",
    "load_anomaly_model",
    "make_masker",
    "mask_report",
    "paired_default",
]

DEFAULT_INPAINTER = "builtin:mni-inpainter"

PAIRED_INPAINTERS = {"medattr-mni-lesion-classifier": DEFAULT_INPAINTER}
"""Default inpainter by model name, for shipped classifiers whose weights predate the
inpainter (a newer model names its own in ``spec.extra["paired_inpainter"]``)."""

PAIRED_ANOMALY_MODELS = {"medattr-mni-lesion-classifier": "builtin:mni-normative"}
"""Default anomaly score by model name (a newer model names its own in
``spec.extra["paired_anomaly_model"]``); a model with neither uses the inpainter's own score."""

INPAINTER_SCORE = "inpainter"
"""``--anomaly-model`` value that selects the inpainter's leave-block-out residual."""

ANOMALY_MODEL = Setting(
    "anomaly_model",
    None,
    "inpaint* and *-masked baselines: what finds the anomaly: normative maps of the healthy "
    "VAE's residual (.npz or builtin:NAME; default: the ones paired with the model, "
    "builtin:mni-normative for the shipped brain classifier), or 'inpainter' for the "
    "inpainter's own leave-block-out residual",
    type=str,
    optional=True,
    asset=True,
)

INPAINTER = Setting(
    "inpainter",
    None,
    "inpaint* and *-masked baselines: the healthy inpainter whose residual finds the anomaly "
    "(TorchScript, bundle directory or builtin:NAME); default: the one paired with the model",
    type=str,
    optional=True,
    asset=True,
)
INPAINT_FEATHER_MM = Setting(
    "inpaint_feather_mm",
    4.5,
    "inpaint* and *-masked baselines: width in mm of the blend outside the anomaly mask's edge",
    type=float,
    minimum=0.0,
    param="feather_mm",
)
ANOMALY_SETTINGS = (
    Setting(
        "anomaly_threshold",
        None,
        "inpaint* and *-masked baselines: anomaly score threshold (default: the inpainter's "
        "healthy-calibrated one)",
        type=float,
        minimum=0.0,
        exclusive_minimum=True,
        optional=True,
    ),
    Setting(
        "anomaly_rounds",
        None,
        "inpaint* and *-masked baselines: mask refinement rounds (default: the calibration's)",
        type=int,
        minimum=0,
        optional=True,
        param="rounds",
    ),
    Setting(
        "anomaly_dilation_mm",
        None,
        "inpaint* and *-masked baselines: margin in mm around the found anomaly (default: the "
        "calibration's)",
        type=float,
        minimum=0.0,
        optional=True,
        param="dilation_mm",
    ),
)


def inpainter_path(settings: Mapping[str, Any], setup: BaselineSetup) -> str:
    """The inpainter a baseline uses: the ``inpainter`` setting, else the model spec's
    ``paired_inpainter``, else the default for the model's name (:data:`PAIRED_INPAINTERS`)."""
    if settings.get("inpainter"):
        return str(settings["inpainter"])
    paired = paired_default(setup, "paired_inpainter", PAIRED_INPAINTERS)
    if paired:
        return str(paired)
    # neither: the error that says what to pass
    return paired_model_path(settings, setup, key="inpainter", extra="paired_inpainter")


def paired_default(setup: BaselineSetup, extra: str, by_name: Mapping[str, Any]) -> Any:
    """A default that goes with the explained model: what its spec names in
    ``spec.extra[extra]``, else ``by_name``'s entry for the spec's name (for shipped models whose
    weights predate the setting), else ``None``. A value of ``0`` counts as named."""
    spec = getattr(setup.model, "spec", None)
    value = (getattr(spec, "extra", None) or {}).get(extra)
    if value is None or value == "":
        value = by_name.get(str(getattr(spec, "name", "") or ""))
    return value


def anomaly_model_path(settings: Mapping[str, Any], setup: BaselineSetup) -> str | None:
    """The normative maps a masked baseline scores with (``None``: the inpainter's own score):
    the ``anomaly_model`` setting, else the model spec's ``paired_anomaly_model``, else the
    default for the model's name (:data:`PAIRED_ANOMALY_MODELS`)."""
    value = settings.get("anomaly_model") or paired_default(
        setup, "paired_anomaly_model", PAIRED_ANOMALY_MODELS
    )
    if not value or value == INPAINTER_SCORE:
        return None
    return str(value)


def load_anomaly_model(settings: Mapping[str, Any], setup: BaselineSetup) -> Any:
    """The normative maps of :func:`anomaly_model_path`, loaded with their VAE on the run's
    device (``None``: the inpainter's own score)."""
    from medattr.generative.normative import load_normative

    path = anomaly_model_path(settings, setup)
    return None if path is None else load_normative(path, device=setup.device)


def make_masker(
    inpainter: Any,
    anomaly_model: Any = None,
    anomaly_threshold: float | None = None,
    rounds: int | None = None,
    dilation_mm: float | None = None,
) -> Any:
    """The :class:`~medattr.generative.AnomalyMasker` of a masked baseline: scored by the
    normative maps ``anomaly_model`` (a path, ``builtin:NAME`` or a loaded
    :class:`~medattr.generative.normative.NormativeResidual`), or by the inpainter's own
    leave-block-out residual when it is ``None`` or ``"inpainter"``."""
    from medattr.generative import AnomalyMasker
    from medattr.generative.normative import load_normative

    scorer = None
    if anomaly_model is not None and anomaly_model != INPAINTER_SCORE:
        scorer = (
            load_normative(anomaly_model)
            if isinstance(anomaly_model, str | os.PathLike)
            else anomaly_model
        )
    return AnomalyMasker(
        inpainter,
        threshold=anomaly_threshold,
        rounds=rounds,
        dilation_mm=dilation_mm,
        scorer=scorer,
    )


def as_inpainter(inpainter: Any) -> Any:
    if isinstance(inpainter, str | os.PathLike):
        from medattr.generative import load_inpainter

        return load_inpainter(inpainter)
    if not hasattr(inpainter, "predict"):
        raise InputError(f"inpainter must have predict(x, mask); got {type(inpainter).__name__}")
    return inpainter


def feather_mask(
    mask: Tensor, feather_mm: float, spacing: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """Blend weight and its support for a binary mask ``(B, 1, *spatial)``.

    The weight is 1 on the mask and falls linearly to 0 at ``feather_mm`` from its edge
    (Euclidean distance in mm); the support is where it is above 0.

    Returns
    -------
    weight, support
        float32 weight in ``[0, 1]`` and bool support, both of the mask's shape.
    """
    if feather_mm < 0:
        raise InputError(f"feather_mm must be >= 0, got {feather_mm}")
    m = mask.detach().cpu().numpy() > 0.5
    w = np.zeros(m.shape, dtype=np.float32)
    for i in range(m.shape[0]):
        if not m[i, 0].any():
            continue
        if feather_mm == 0:
            w[i, 0] = m[i, 0]
            continue
        d = ndimage.distance_transform_edt(~m[i, 0], sampling=[float(s) for s in spacing])
        w[i, 0] = np.clip(1.0 - d / feather_mm, 0.0, 1.0)
    weight = torch.from_numpy(w).to(mask.device)
    return weight, weight > 0


def calibrated_spacing(
    calibration: dict[str, Any], context: BaselineContext | None
) -> tuple[float, ...]:
    """The model grid's voxel size: the context's, else the calibration's. The two must agree
    (within 2 %): the anomaly threshold holds for the voxel size it was calibrated at."""
    cal = calibration.get("spacing")
    sp = context.spacing if context is not None and context.spacing is not None else cal
    if sp is None:
        raise InputError("the voxel spacing is unknown (BaselineContext.spacing)")
    sp = tuple(float(s) for s in sp)
    if cal is not None and not np.allclose(sp, [float(c) for c in cal], rtol=0.02):
        raise InputError(
            f"the anomaly mask was calibrated at {tuple(cal)} mm voxels but the model input "
            f"has {sp} mm; use an inpainter calibrated for this grid"
        )
    return sp


def mask_report(mask: Tensor, spacing: Sequence[float]) -> dict[str, Any]:
    """Per-volume voxels, volume (mm³), emptiness, components and their number of a
    ``(B, 1, *spatial)`` mask."""
    from medattr.generative.anomaly import component_stats

    vox = float(np.prod([float(s) for s in spacing]))
    mm = mask.detach().cpu().numpy()[:, 0] > 0.5
    components = [component_stats(v, spacing) for v in mm]
    return {
        "mask_voxels": [int(v.sum()) for v in mm],
        "mask_volume_mm3": [round(float(v.sum()) * vox, 3) for v in mm],
        "mask_empty": [not bool(v.any()) for v in mm],
        "n_components": [len(c) for c in components],
        "components": components,
    }
