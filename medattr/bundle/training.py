"""The bundle's training workflows: retrain a shipped model and check it reproduces the metrics.

``configs/train_classifier.json``, ``configs/train_vae.json`` and
``configs/train_inpainter.json`` build a :class:`TrainingRun` from
:class:`~medattr.training.ClassifierTrainingConfig` /
:class:`~medattr.training.vae.VAETrainingConfig` /
:class:`~medattr.training.inpaint.InpainterTrainingConfig`; ``run()`` trains, exports
TorchScript with its spec and metrics, and compares the metrics with those stored in the
reference model (the bundle's shipped weights), writing ``reproduction.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from medattr._fs import atomic_write_text
from medattr.errors import MedattrError
from medattr.registry import parse_flag as flag

__all__ = [
    "DEFAULT_TOLERANCES",
    "ReproductionError",
    "TrainingRun",
    "compare_metrics",
    "stored_metrics",
]

log = logging.getLogger("medattr.bundle")

DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "classifier": {"test_auc": 0.02, "test_accuracy": 0.03},
    "vae": {"val_l1": 0.005, "lesion_error_ratio": 0.05},
    "inpainter": {"test_l1": 0.005, "test_ssim": 0.02, "test_psnr": 0.5},
}
"""Largest accepted absolute difference from the shipped model's metrics, per task.

Test AUC ±0.02 is about two standard errors of an AUC near 0.95 on the 400-study test split
(Hanley & McNeil 1982); accuracy ±0.03 is two binomial standard errors at 0.9. For the VAE,
validation L1 ±0.005 (intensities in [0, 1]) and lesion-error ratio ±0.05. For the inpainter,
in-mask test L1 ±0.005, SSIM ±0.02 and PSNR ±0.5 dB. Differences come
from non-deterministic GPU kernels and other hardware; same device and versions give the
same numbers."""


class ReproductionError(MedattrError):
    """A retrained model's metrics are further from the shipped ones than the tolerance."""


def stored_metrics(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The training metrics stored in a medattr TorchScript model's spec, if any."""
    from medattr.models.loading import load_torchscript

    path = Path(model_path)
    if not path.is_file():
        return None
    _, meta = load_torchscript(path, torch.device("cpu"))
    metrics = meta.get("medattr", {}).get("extra", {}).get("metrics")
    return dict(metrics) if isinstance(metrics, dict) else None


def compare_metrics(
    new: Mapping[str, Any], reference: Mapping[str, Any], tolerances: Mapping[str, float]
) -> dict[str, Any]:
    """Per-metric ``new``, ``reference``, ``difference``, ``tolerance`` and ``ok``."""
    rows: dict[str, Any] = {}
    for name, tol in tolerances.items():
        a, b = new.get(name), reference.get(name)
        if not isinstance(a, int | float) or not isinstance(b, int | float):
            rows[name] = {"new": a, "reference": b, "tolerance": tol, "ok": None}
            continue
        diff = float(a) - float(b)
        ok = math.isfinite(diff) and abs(diff) <= float(tol)
        rows[name] = {
            "new": float(a),
            "reference": float(b),
            "difference": diff,
            "tolerance": float(tol),
            "ok": ok,
        }
    return rows


class TrainingRun:
    """Train one shipped model from a bundle config and compare with the shipped weights.

    Parameters
    ----------
    task
        ``"classifier"``, ``"vae"`` or ``"inpainter"``.
    config
        A ``ClassifierTrainingConfig``, ``VAETrainingConfig`` or ``InpainterTrainingConfig``
        (or a dict of its fields).
    output
        Where the TorchScript model goes (``<output>.metrics.json`` beside it).
    device
        Training device.
    reference
        The shipped model to compare with (skipped when the file does not exist).
    tolerances
        Metric -> largest accepted absolute difference (default :data:`DEFAULT_TOLERANCES`).
    strict
        Raise :class:`ReproductionError` when a metric is out of tolerance.
    pair_with
        VAE and inpainter: the classifier whose grid contract the spec records.
    paired_vae
        Classifier only: the VAE recorded in the spec as this classifier's default for the
        counterfactual baselines (e.g. ``"builtin:mni-vae"``).
    """

    def __init__(
        self,
        task: str,
        config: Any,
        output: str | os.PathLike[str],
        device: str = "cpu",
        reference: str | os.PathLike[str] | None = None,
        tolerances: Mapping[str, float] | None = None,
        strict: bool = True,
        pair_with: str | os.PathLike[str] | None = None,
        paired_vae: str | None = None,
    ) -> None:
        if task not in DEFAULT_TOLERANCES:
            raise MedattrError(f"task must be 'classifier', 'vae' or 'inpainter', got {task!r}")
        self.task = task
        self.config = _as_config(task, config)
        self.output = Path(output)
        self.device = str(device)
        self.reference = Path(reference) if reference else None
        self.tolerances = dict(tolerances or DEFAULT_TOLERANCES[task])
        self.strict = flag(strict, "strict")
        self.pair_with = pair_with
        self.paired_vae = paired_vae

    def run(self) -> dict[str, Any]:
        """Train, export, compare; returns ``{"metrics": ..., "reproduction": ...}``."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        if self.task == "classifier":
            from medattr.training.classifier import train_classifier

            metrics = train_classifier(
                self.config, self.output, device=self.device, paired_vae=self.paired_vae
            )
        else:
            pair = None
            if self.pair_with and Path(self.pair_with).is_file():
                from medattr.models import load_model

                pair = load_model(self.pair_with).spec
            if self.task == "vae":
                from medattr.training.vae import train_vae

                metrics = train_vae(self.config, self.output, device=self.device, pair_spec=pair)
            else:
                from medattr.training.inpaint import train_inpainter

                metrics = train_inpainter(
                    self.config, self.output, device=self.device, pair_spec=pair
                )
        report: dict[str, Any] = {"task": self.task, "output": str(self.output)}
        ref = stored_metrics(self.reference) if self.reference else None
        if ref is None:
            report["reproduction"] = None
            log.warning("no reference metrics (%s); nothing to compare with", self.reference)
        else:
            report["reference"] = str(self.reference)
            report["reproduction"] = compare_metrics(metrics, ref, self.tolerances)
        atomic_write_text(
            self.output.parent / "reproduction.json", json.dumps(report, indent=2) + "\n"
        )
        bad = [k for k, v in (report["reproduction"] or {}).items() if v.get("ok") is False]
        if bad:
            msg = ", ".join(
                f"{k} {report['reproduction'][k]['new']:.4f} vs shipped "
                f"{report['reproduction'][k]['reference']:.4f} (tolerance "
                f"{report['reproduction'][k]['tolerance']})"
                for k in bad
            )
            if self.strict:
                raise ReproductionError(f"retrained {self.task} is out of tolerance: {msg}")
            log.warning("retrained %s is out of tolerance: %s", self.task, msg)
        return {"metrics": metrics, "reproduction": report["reproduction"]}


def _as_config(task: str, config: Any) -> Any:
    if task == "classifier":
        from medattr.training.classifier import ClassifierTrainingConfig as cls
    elif task == "vae":
        from medattr.training.vae import VAETrainingConfig as cls  # type: ignore[assignment]
    else:
        from medattr.training.inpaint import (  # type: ignore[assignment]
            InpainterTrainingConfig as cls,
        )
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return cls(**dict(config))  # the configs turn JSON lists into their tuples
    raise MedattrError(f"config must be a {cls.__name__} or a dict, got {type(config).__name__}")
