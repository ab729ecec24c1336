"""Fit the normative VAE-residual anomaly score, calibrate its mask, measure it, save it.

Seeds (all disjoint from every other model's and from the benchmark's test split): healthy
subjects 630000-630199 fit the voxel-wise statistics, 630200-630299 calibrate the threshold
(at most ``healthy_fpr`` of them may produce a component), and the reported metrics come from
631000-631059 (lesion studies: detection and Dice against the true lesion) and 631500-631559
(healthy: the fraction whose mask is empty). Only healthy subjects decide the maps and the
threshold; the lesion studies are only measured.

Example::

    python -m medattr.training.normative --out medattr/assets/mni_normative.npz
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medattr.generative.anomaly import AnomalyMasker, AnomalySettings, calibrate_anomaly
from medattr.generative.normative import NormativeResidual, fit_normative
from medattr.generative.vae import load_vae
from medattr.training.data import render_split, to_model_units

__all__ = ["NormativeConfig", "fit_and_calibrate", "mask_metrics"]


@dataclass
class NormativeConfig:
    """Everything that determines the shipped normative maps and their calibration."""

    kind: str = "mni"
    vae: str = "builtin:mni-vae"
    spatial_size: tuple[int, int, int] = (64, 64, 64)
    pixdim: tuple[float, float, float] = (3.0, 3.0, 3.0)
    intensity: dict[str, Any] = field(default_factory=lambda: {"a_min": 0.0, "a_max": 1.0})
    sigma_mm: float = 4.5
    min_subjects: int = 20
    fit_seeds: tuple[int, int] = (630_000, 200)
    calibration_seeds: tuple[int, int] = (630_200, 100)
    lesion_eval_seeds: tuple[int, int] = (631_000, 60)
    healthy_eval_seeds: tuple[int, int] = (631_500, 60)
    anomaly: dict[str, Any] = field(
        default_factory=lambda: {
            "min_volume_mm3": 300.0,
            "healthy_fpr": 0.05,
            "dilation_mm": 6.0,
            "rounds": 0,
            "edge_fraction": 0.5,
        }
    )
    workers: int = 2

    def __post_init__(self) -> None:
        self.spatial_size = tuple(int(v) for v in self.spatial_size)  # type: ignore[assignment]
        self.pixdim = tuple(float(v) for v in self.pixdim)  # type: ignore[assignment]
        self.fit_seeds = tuple(self.fit_seeds)  # type: ignore[assignment]
        self.calibration_seeds = tuple(self.calibration_seeds)  # type: ignore[assignment]
        self.lesion_eval_seeds = tuple(self.lesion_eval_seeds)  # type: ignore[assignment]
        self.healthy_eval_seeds = tuple(self.healthy_eval_seeds)  # type: ignore[assignment]
        AnomalySettings(**self.settings_dict())  # validates early

    def settings_dict(self) -> dict[str, Any]:
        return {**self.anomaly, "sigma_mm": self.sigma_mm}


def _render(
    cfg: NormativeConfig, seeds: tuple[int, int], lesion: bool, cache_dir: str | None
) -> tuple[torch.Tensor, np.ndarray]:
    base, n = seeds
    s = range(base, base + n)
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim}
    data = render_split(
        cfg.kind, s, [lesion] * n, workers=cfg.workers, options=opts, cache_dir=cache_dir
    )
    return to_model_units(data["image"], cfg.intensity), data["mask"] > 0.5


def _regions(x: torch.Tensor) -> torch.Tensor:
    from medattr.training.inpaint import brain_region

    return torch.from_numpy(np.stack([brain_region(v[0].numpy()) for v in x]))


def mask_metrics(
    masker: AnomalyMasker,
    lesion_x: torch.Tensor,
    lesion_masks: np.ndarray,
    healthy_x: torch.Tensor,
    spacing: tuple[float, ...],
    batch: int = 8,
) -> dict[str, Any]:
    """Detection (mask touches the lesion), Dice against the true lesion, false-positive
    studies (a mask that misses the lesion) and the empty fraction on healthy volumes."""
    dice: list[float] = []
    hit: list[bool] = []
    fp_only: list[bool] = []
    for i in range(0, len(lesion_x), batch):
        for m, truth in zip(
            masker(lesion_x[i : i + batch], spacing), lesion_masks[i : i + batch], strict=True
        ):
            inter = float((m.mask & truth).sum())
            dice.append(2 * inter / max(float(m.mask.sum() + truth.sum()), 1.0))
            hit.append(inter > 0)
            fp_only.append(bool(m.mask.any()) and inter == 0)
    empty: list[bool] = []
    for i in range(0, len(healthy_x), batch):
        empty.extend(m.empty for m in masker(healthy_x[i : i + batch], spacing))
    return {
        "n_lesion": len(dice),
        "detected_fraction": float(np.mean(hit)),
        "dice_mean": float(np.mean(dice)),
        "dice_median": float(np.median(dice)),
        "dice_detected_mean": (
            float(np.mean([d for d, h in zip(dice, hit, strict=True) if h])) if any(hit) else 0.0
        ),
        "missed_with_false_mask": int(np.sum(fp_only)),
        "n_healthy": len(empty),
        "healthy_empty_fraction": float(np.mean(empty)),
    }


def fit_and_calibrate(
    cfg: NormativeConfig, out: str | Path | None = None, cache_dir: str | None = None
) -> NormativeResidual:
    """Fit, calibrate and measure (see the module docstring); save to ``out`` if given."""
    t0 = time.perf_counter()
    vae = load_vae(cfg.vae)
    x_fit, _ = _render(cfg, cfg.fit_seeds, False, cache_dir)
    norm = fit_normative(vae, x_fit, _regions(x_fit), cfg.pixdim, cfg.sigma_mm, cfg.min_subjects)
    x_cal, _ = _render(cfg, cfg.calibration_seeds, False, cache_dir)
    settings = AnomalySettings(**cfg.settings_dict())
    norm.calibration = calibrate_anomaly(norm, x_cal, settings, cfg.pixdim)
    t_fit = time.perf_counter() - t0
    masker = AnomalyMasker(None, scorer=norm)
    xl, ml = _render(cfg, cfg.lesion_eval_seeds, True, cache_dir)
    xh, _ = _render(cfg, cfg.healthy_eval_seeds, False, cache_dir)
    t1 = time.perf_counter()
    metrics = mask_metrics(masker, xl, ml, xh, cfg.pixdim)
    metrics["mask_seconds_per_volume"] = (time.perf_counter() - t1) / (len(xl) + len(xh))
    cfg_d = asdict(cfg)
    norm.info.update(
        {
            "vae": cfg.vae,
            "config": cfg_d,
            "metrics": metrics,
            "fit_and_calibration_seconds": round(t_fit, 1),
            "device": "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    )
    if out is not None:
        norm.save(out)
    return norm


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="JSON file of NormativeConfig fields")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args(argv)
    fields = json.loads(Path(args.config).read_text()) if args.config else {}
    norm = fit_and_calibrate(NormativeConfig(**fields), args.out, args.cache_dir)
    print(json.dumps({"threshold": norm.calibration["threshold"], **norm.info["metrics"]}))  # type: ignore[index]


if __name__ == "__main__":
    main()
