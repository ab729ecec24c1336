"""Counterfactual baselines: this patient without the disease, from generative models trained
on healthy scans only: the healthy-only VAE (:mod:`~medattr.baselines.counterfactual.vae`), the
healthy inpainter filling an anomaly mask (:mod:`~medattr.baselines.counterfactual.inpaint`)
and the residual VAE counterfactual with the residual kept outside that mask
(:mod:`~medattr.baselines.counterfactual.masked_residual`), and that mask grown until the
classifier calls the infill healthy (:mod:`~medattr.baselines.counterfactual.guided`)."""

from medattr.baselines.counterfactual.guided import GuidedInpaintBaseline
from medattr.baselines.counterfactual.inpaint import (
    ANOMALY_SETTINGS,
    DEFAULT_INPAINTER,
    INPAINT_FEATHER_MM,
    INPAINTER,
    InpaintCounterfactualBaseline,
    MaskedBlurBaseline,
    MaskedInfillBaseline,
    MaskedVAEBaseline,
    inpainter_path,
)
from medattr.baselines.counterfactual.masked_residual import VAEGuidedMaskedResidualBaseline
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
    "ANOMALY_SETTINGS",
    "CF_STEPS",
    "CF_THRESHOLD",
    "DEFAULT_INPAINTER",
    "INPAINTER",
    "INPAINT_FEATHER_MM",
    "VAE",
    "GuidedInpaintBaseline",
    "InpaintCounterfactualBaseline",
    "MaskedBlurBaseline",
    "MaskedInfillBaseline",
    "MaskedVAEBaseline",
    "VAEGuidedBaseline",
    "VAEGuidedMaskedResidualBaseline",
    "VAEGuidedResidualBaseline",
    "VAEReconstructionBaseline",
    "inpainter_path",
    "paired_model_path",
]
