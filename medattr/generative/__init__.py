"""Generative models of healthy anatomy, for counterfactual baselines: the healthy-only VAE,
the healthy inpainter and the anomaly mask built on it."""

from medattr.generative.anomaly import (
    AnomalyMask,
    AnomalyMasker,
    AnomalySettings,
    calibrate_anomaly,
    residual_map,
)
from medattr.generative.inpaint import HealthyInpainter, LoadedInpainter, load_inpainter
from medattr.generative.vae import HealthyVAE, LoadedVAE, load_vae

__all__ = [
    "AnomalyMask",
    "AnomalyMasker",
    "AnomalySettings",
    "HealthyInpainter",
    "HealthyVAE",
    "LoadedInpainter",
    "LoadedVAE",
    "calibrate_anomaly",
    "load_inpainter",
    "load_vae",
    "residual_map",
]
