"""Tiny stand-in weights for a temporary copy of the bundle (never written into bundles/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from medattr.models import IntensitySpec, ModelSpec, export_torchscript

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "medattr_explain"


def standin_spec(**extra: object) -> ModelSpec:
    """The shipped brain pair's contract, on a coarse 16^3 x 12 mm grid to keep tests fast."""
    return ModelSpec(
        class_names=["healthy", "lesion"],
        default_target=1,
        orientation="RAS",
        pixdim=(12.0, 12.0, 12.0),
        spatial_size=(16, 16, 16),
        intensity=IntensitySpec(a_min=0.0, a_max=1.0),
        name="standin-classifier",
        extra=dict(extra),
    )


def write_standin_models(models: Path, seed: int = 0) -> None:
    from monai.networks.nets import Classifier

    from medattr.generative import HealthyVAE

    models.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = Classifier(in_shape=(1, 16, 16, 16), classes=2, channels=(4, 8), strides=(2, 2))
    metrics = {"test_auc": 0.9, "test_accuracy": 0.85, "val_auc": 0.91}
    export_torchscript(net, standin_spec(metrics=metrics), models / "model.ts")
    vae = HealthyVAE((1, 16, 16, 16), latent_size=4, channels=(4, 8), strides=(2, 2))
    vspec = standin_spec(metrics={"val_l1": 0.05, "lesion_error_ratio": 0.6}, latent_size=4)
    export_torchscript(vae, vspec, models / "vae.ts")


def standin_bundle(dest: Path) -> Path:
    """Copy the bundle (configs, docs, sample data) to ``dest`` and add stand-in weights.

    The stand-ins are a classifier and a VAE, so the copy's default baseline is the VAE
    counterfactual ``vae-guided`` (the real bundle's ``inpaint`` needs the shipped brain
    inpainter and normative maps, on the shipped grid; tested with the real bundle)."""
    shutil.copytree(BUNDLE, dest, ignore=shutil.ignore_patterns("eval", "runs", "*.ts", "*.pt"))
    write_standin_models(dest / "models")
    config = dest / "configs" / "inference.json"
    text = config.read_text()
    assert '"baseline": "inpaint",' in text
    config.write_text(text.replace('"baseline": "inpaint",', '"baseline": "vae-guided",'))
    return dest
