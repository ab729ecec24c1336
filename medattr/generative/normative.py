"""A normative anomaly score: how unusual is the healthy VAE's residual at each voxel?

The healthy-only VAE reconstructs a lesion partly (it removes about 70 % of it) and blurs
healthy tissue everywhere, most at tissue boundaries, so the raw residual ``x - D(mu(x))`` is as
large at the edge of a ventricle as in a lesion. What separates the two is that the boundary
error is *expected*: every healthy subject has it, at about the same place on the model grid.
This module learns, from healthy subjects only, the mean and spread of the smoothed signed
residual at every voxel of the grid (counting a subject at a voxel only where that voxel is in
its brain), and scores a new volume by the z-value

    z = | (G_sigma * (x - D(mu(x))) - mean) / sd |

(normative modelling of a residual; smoothing the *signed* residual averages out noise and the
alternating overshoot of blurred edges, and keeps the one-signed change of a lesion). Voxels
that too few healthy subjects cover get a wide spread (``fallback_sd_factor`` × the median),
and a margin at the edge of the field of view scores zero. The score plugs into
:class:`~medattr.generative.AnomalyMasker` in place of the inpainter's leave-block-out residual
(:func:`~medattr.generative.calibrate_anomaly` calibrates its threshold the same way).

It assumes what the model's grid already assumes: studies resampled to the same field of view
and orientation (the brain classifier's 64³, 3 mm, RAS grid), so that a voxel means roughly the
same place in every subject. The maps are stored with the VAE's SHA-256, and a score is refused
with any other VAE.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from medattr.errors import InputError, ModelError

__all__ = ["NormativeResidual", "fit_normative", "load_normative"]

FORMAT = "medattr-normative-residual/1"


def _device_of(vae: Any) -> torch.device:
    """Where the VAE's weights are (CPU for a module without parameters)."""
    module = getattr(vae, "module", vae)
    params = getattr(module, "parameters", None)
    for p in params() if callable(params) else ():
        return p.device
    return torch.device("cpu")


def _smooth(a: np.ndarray, sigma_mm: float, spacing: Sequence[float]) -> np.ndarray:
    if sigma_mm <= 0:
        return a
    return ndimage.gaussian_filter(a, [sigma_mm / float(s) for s in spacing], mode="nearest")


@dataclass
class NormativeResidual:
    """Voxel-wise healthy statistics of the VAE's smoothed residual, and the score they give.

    Attributes
    ----------
    mean, sd
        ``(D, H, W)`` float32 maps on the model grid.
    sigma_mm
        Gaussian smoothing of the signed residual (mm).
    spacing
        Voxel size (mm) the maps were made at.
    vae_sha256
        SHA-256 of the VAE file the maps belong to.
    margin_vox
        Voxels at each face of the field of view that score zero.
    calibration
        The anomaly-mask calibration (:func:`~medattr.generative.calibrate_anomaly`), once made.
    info
        Provenance: seeds, counts, settings (JSON-able).
    vae
        The loaded VAE (:class:`~medattr.generative.LoadedVAE`); set by :func:`load_normative`
        or by the caller.
    """

    mean: np.ndarray
    sd: np.ndarray
    sigma_mm: float
    spacing: tuple[float, float, float]
    vae_sha256: str
    margin_vox: int = 2
    calibration: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    vae: Any = None
    path: str = ""
    sha256: str = ""

    # ------------------------------------------------------------------ scoring
    def residual(self, x: Tensor) -> np.ndarray:
        """Smoothed signed residual ``G * (x - D(mu(x)))`` of ``(B, 1, D, H, W)``, as numpy."""
        if self.vae is None:
            raise ModelError("the normative residual has no VAE attached", self.path or None)
        if tuple(x.shape[2:]) != tuple(self.mean.shape):
            raise InputError(
                f"the normative maps are {tuple(self.mean.shape)} voxels but the volume is "
                f"{tuple(x.shape[2:])}; they score only the grid they were made on"
            )
        x = x.detach().float().to(_device_of(self.vae))
        with torch.no_grad():
            mu, _ = self.vae.encode(x)
            rec = self.vae.decode(mu).float()
        diff = (x - rec).cpu().numpy()[:, 0]
        return np.stack([_smooth(d, self.sigma_mm, self.spacing) for d in diff])

    def score(self, x: Tensor, spacing: Sequence[float] | None = None) -> Tensor:
        """Anomaly score ``|(residual - mean) / sd|``, ``(B, 1, D, H, W)`` float32 (zero in the
        field-of-view margin)."""
        if spacing is not None and not np.allclose(spacing, self.spacing, rtol=0.02):
            raise InputError(
                f"the normative maps were made at {self.spacing} mm voxels, not "
                f"{tuple(float(s) for s in spacing)}"
            )
        z = np.abs((self.residual(x) - self.mean) / self.sd).astype(np.float32)
        m = self.margin_vox
        if m > 0:
            keep = np.zeros(self.mean.shape, bool)
            keep[m:-m, m:-m, m:-m] = True
            z = np.where(keep, z, 0.0).astype(np.float32)
        return torch.from_numpy(z)[:, None]

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "score": "vae-normative",
            "sigma_mm": self.sigma_mm,
            "vae_sha256": self.vae_sha256,
        }

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the maps and their metadata to an ``.npz`` atomically (temp + rename)."""
        meta = {
            "format": FORMAT,
            "sigma_mm": self.sigma_mm,
            "spacing": list(self.spacing),
            "vae_sha256": self.vae_sha256,
            "margin_vox": self.margin_vox,
            "calibration": self.calibration,
            "info": self.info,
        }
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            mean=self.mean.astype(np.float32),
            sd=self.sd.astype(np.float32),
            meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        )
        from medattr._fs import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return Path(path)


def fit_normative(
    vae: Any,
    healthy: Tensor,
    regions: Tensor,
    spacing: Sequence[float],
    sigma_mm: float = 4.5,
    min_subjects: int = 20,
    fallback_sd_factor: float = 3.0,
    batch: int = 8,
) -> NormativeResidual:
    """Voxel-wise mean and spread of the smoothed VAE residual over healthy volumes.

    Parameters
    ----------
    vae
        The healthy VAE (``encode``/``decode``, and ``sha256``).
    healthy
        ``(N, 1, D, H, W)`` healthy volumes in model units.
    regions
        ``(N, D, H, W)`` bool: where each volume is brain. A subject counts at a voxel only
        there.
    min_subjects
        Voxels in fewer subjects' brains get the median mean-free spread × ``fallback_sd_factor``
        and mean 0.
    """
    if len(healthy) < 2 or len(regions) != len(healthy):
        raise InputError("fitting needs at least two healthy volumes, each with its region")
    sp = tuple(float(s) for s in spacing)
    shape = tuple(healthy.shape[2:])
    s1 = np.zeros(shape, np.float64)
    s2 = np.zeros(shape, np.float64)
    n = np.zeros(shape, np.float64)
    probe = NormativeResidual(
        np.zeros(shape, np.float32),
        np.ones(shape, np.float32),
        float(sigma_mm),
        sp,  # type: ignore[arg-type]
        str(getattr(vae, "sha256", "")),
        vae=vae,
    )
    for i in range(0, len(healthy), batch):
        r = probe.residual(healthy[i : i + batch])
        w = regions[i : i + batch].cpu().numpy().astype(np.float64)
        s1 += (r * w).sum(0)
        s2 += (r * r * w).sum(0)
        n += w.sum(0)
    covered = n >= max(2, int(min_subjects))
    mean = np.where(covered, s1 / np.maximum(n, 1), 0.0)
    var = np.where(covered, (s2 - n * mean**2) / np.maximum(n - 1, 1), np.nan)
    sd = np.sqrt(np.clip(var, 0.0, None))
    median_sd = float(np.nanmedian(sd)) if covered.any() else 1.0
    sd = np.where(covered, sd, fallback_sd_factor * median_sd)
    # a lightly smoothed spread: one voxel's estimate from a few dozen subjects is noisy
    sd = ndimage.gaussian_filter(sd, 1.0, mode="nearest")
    sd = np.maximum(sd, 1e-3 * max(median_sd, 1e-6))
    probe.mean = mean.astype(np.float32)
    probe.sd = sd.astype(np.float32)
    probe.info = {
        "n_healthy": len(healthy),
        "min_subjects": int(min_subjects),
        "fallback_sd_factor": float(fallback_sd_factor),
        "median_sd": median_sd,
        "covered_fraction": float(covered.mean()),
    }
    return probe


def load_normative(
    path: str | os.PathLike[str], vae: Any = None, device: str | torch.device = "cpu"
) -> NormativeResidual:
    """Load normative maps (``builtin:NAME`` for shipped ones) and attach their VAE.

    ``vae`` is a loaded VAE or a path; by default the one the file names
    (``info["vae"]``). Its SHA-256 must match the one the maps were made with.

    Raises
    ------
    ModelError
        If the file is missing or not normative maps, or the VAE is not theirs.
    """
    from medattr.generative.vae import load_vae
    from medattr.models.loading import builtin_model_path, file_sha256

    name = str(path)
    file = builtin_model_path(name.split(":", 1)[1]) if name.startswith("builtin:") else Path(name)
    if not file.is_file():
        raise ModelError("normative maps not found", file)
    try:
        with np.load(file, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            mean, sd = z["mean"].astype(np.float32), z["sd"].astype(np.float32)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ModelError(f"not a normative-maps file ({type(exc).__name__})", file) from None
    if meta.get("format") != FORMAT or mean.shape != sd.shape or mean.ndim != 3:
        raise ModelError(f"not a {FORMAT} file", file)
    if vae is None:
        vae = meta.get("info", {}).get("vae")
        if not vae:
            raise ModelError("the normative maps name no VAE; pass one", file)
    if isinstance(vae, (str, os.PathLike)):
        vae = load_vae(vae, device)
    if getattr(vae, "sha256", None) != meta["vae_sha256"]:
        raise ModelError(
            f"the normative maps belong to the VAE with SHA-256 {meta['vae_sha256'][:12]}…, "
            f"not {str(getattr(vae, 'sha256', '?'))[:12]}…",
            file,
        )
    return NormativeResidual(
        mean,
        sd,
        float(meta["sigma_mm"]),
        tuple(float(s) for s in meta["spacing"]),  # type: ignore[arg-type]
        str(meta["vae_sha256"]),
        int(meta.get("margin_vox", 2)),
        meta.get("calibration"),
        dict(meta.get("info", {})),
        vae,
        str(file),
        file_sha256(file),
    )
