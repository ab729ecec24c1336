"""The manifest of one explained study: inputs, model, method, baseline, numbers, timings and
outputs, JSON-able, written last beside the outputs it describes."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medattr._version import __version__
from medattr.models.loading import asset_sha256

if TYPE_CHECKING:
    from medattr.explain.explainer import Explainer, StudyResult

__all__ = ["MANIFEST_VERSION", "build_manifest", "device_name"]

MANIFEST_VERSION = 1

_EXTRAS = (
    "alpha_star",
    "f_alpha_star",
    "saturated",
    "ig_delta",
    "f_noisy_mean",
    "bytes_per_point",
    "adaptive",
)


def build_manifest(
    explainer: Explainer, result: StudyResult, outputs: dict[str, Any]
) -> dict[str, Any]:
    """The manifest of ``result`` written with ``outputs`` (file names by role)."""
    exp = result.explanation
    vol = result.volume
    src = vol.source
    s = exp.summary()
    attr_sum_source = float(np.asarray(result.attribution, np.float64).sum())
    warnings = [w for w in (explainer.model_warning, result.baseline_info.get("warning")) if w]
    warnings += list(getattr(getattr(src, "dicom", None), "header_repairs", ()) or ())
    return {
        "manifest_version": MANIFEST_VERSION,
        "medattr_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {
            "path": src.path if src else None,
            "format": src.format if src else None,
            "name": vol.name,
            "shape": list(vol.spatial_shape),
            "spacing_mm": [round(v, 6) for v in vol.spacing],
            "affine_ras": vol.affine.tolist(),
        },
        "model": {
            **explainer.model.describe(),
            "contract": _contract(explainer),
            "inferer": _inferer(explainer),
            "preprocessing": "model's own transforms"
            if explainer.model.preprocessing is not None
            else "spec",
            "grid_shape": list(result.pre.image.shape[2:]),
            "grid_spacing_mm": [round(v, 6) for v in result.pre.spacing],
        },
        "assets": assets_record(explainer.assets()),
        "method": {"name": result.config.method, "implementation": exp.method, **s["settings"]},
        "baseline": result.baseline_info,
        "target": s["target"],
        "f_input": s["f_input"][0],
        "f_baseline": s["f_baseline"][0],
        "convergence_delta": s["convergence_delta"][0],
        "relative_delta": s["relative_delta"][0],
        "attribution_sum_model_grid": s["attribution_sum"][0],
        "attribution_sum_source_grid": attr_sum_source,
        "n_evaluations": s["n_evaluations"],
        "chunk_sizes": s["chunk_sizes"],
        "oom_retries": s["oom_retries"],
        "extras": {k: exp.extras[k] for k in _EXTRAS if k in exp.extras},
        "config": result.config.to_dict(),
        "timings_s": {
            k: round(v, 4)
            for k, v in {"load_model": explainer.model_seconds, **result.timings}.items()
        },
        "environment": {
            "device": device_name(explainer.device),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "outputs": outputs,
        "warnings": warnings,
    }


def _contract(explainer: Explainer) -> dict[str, Any] | None:
    c = explainer.contract
    if c is None:
        return None
    return {"kind": c.kind, "channels": c.channels, "class_names": list(c.class_names)}


def _inferer(explainer: Explainer) -> dict[str, Any]:
    describe = getattr(explainer.network, "describe", None)
    return describe() if callable(describe) else {"type": "whole volume"}


def assets_record(assets: dict[str, str]) -> dict[str, dict[str, Any]]:
    """``{label: {"path": ..., "sha256": ...}}`` for the files an explanation depended on."""
    return {label: {"path": name, "sha256": asset_sha256(name)} for label, name in assets.items()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"
