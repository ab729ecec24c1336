"""Counterfactual baselines: this patient without the disease, from generative models trained
on healthy scans only (healthy-only VAE today)."""

from medattr.baselines.counterfactual.vae import (
    CF_STEPS,
    CF_THRESHOLD,
    VAE,
    VAEGuidedBaseline,
    VAEGuidedResidualBaseline,
    VAEReconstructionBaseline,
    paired_model_path,
)

__all__ = [
    "CF_STEPS",
    "CF_THRESHOLD",
    "VAE",
    "VAEGuidedBaseline",
    "VAEGuidedResidualBaseline",
    "VAEReconstructionBaseline",
    "paired_model_path",
]
