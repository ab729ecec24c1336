"""Probe: the normative anomaly mask's settings, chosen on a tuning block of their own.

Fits the normative maps (``medattr.training.normative``'s fit seeds) at two smoothing widths,
calibrates the threshold for two minimum component volumes, and measures each mask setting
(edge fraction, dilation) on 40 lesion studies (seeds 632000-632039) and 40 healthy ones
(632500-632539): lesions found, Dice against the true lesion, healthy masks left empty. These
seeds are used by no model, by neither the maps' reported metrics (631000+, 631500+) nor the
benchmark's test split. The shipped settings (sigma 4.5 mm, 300 mm³, edge 0.5, dilation 6 mm)
came from this table (``benchmarks/results/probe_normative_settings_cpu.txt``). Two more
one-line-per-setting sweeps at the shipped settings: the healthy rate the threshold allows
(5, 10, 15, 20 % of the calibration brains keeping a component), and dividing each volume's
score by its own median or 90th / 99th percentile in the head before thresholding.

Example::

    python benchmarks/probe_normative_settings.py --cache-dir /tmp/renders
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args()
    import torch

    from medattr.generative.anomaly import AnomalyMasker, AnomalySettings, calibrate_anomaly
    from medattr.generative.normative import fit_normative
    from medattr.generative.vae import load_vae
    from medattr.training.normative import NormativeConfig, _regions, _render, mask_metrics

    cfg = NormativeConfig()
    vae = load_vae(cfg.vae)
    t0 = time.perf_counter()
    x_fit, _ = _render(cfg, cfg.fit_seeds, False, args.cache_dir)
    x_cal, _ = _render(cfg, cfg.calibration_seeds, False, args.cache_dir)
    xl, ml = _render(cfg, (632_000, 40), True, args.cache_dir)
    xh, _ = _render(cfg, (632_500, 40), False, args.cache_dir)
    regions = _regions(x_fit)
    print(f"device cpu, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for sigma in (4.5, 6.0):
        norm = fit_normative(vae, x_fit, regions, cfg.pixdim, sigma, cfg.min_subjects)
        for min_volume in (300.0, 600.0):
            st = AnomalySettings(sigma_mm=sigma, min_volume_mm3=min_volume, rounds=0)
            norm.calibration = calibrate_anomaly(norm, x_cal, st, cfg.pixdim)
            print(
                f"sigma {sigma} mm, min volume {min_volume} mm3: "
                f"threshold {norm.calibration['threshold']:.2f}"
            )
            for edge in (0.3, 0.5, 0.6):
                for dilation in (0.0, 3.0, 6.0):
                    masker = AnomalyMasker(None, scorer=norm, dilation_mm=dilation)
                    masker.settings = AnomalySettings(
                        **{**masker.settings.to_dict(), "edge_fraction": edge}
                    )
                    r = mask_metrics(masker, xl, ml, xh, cfg.pixdim)
                    print(
                        f"  edge {edge} dilation {dilation}: found {r['detected_fraction']:.3f} "
                        f"dice {r['dice_mean']:.3f} (found: {r['dice_detected_mean']:.3f}) "
                        f"healthy empty {r['healthy_empty_fraction']:.3f}"
                    )
    # the shipped settings: what the healthy rate and a per-volume normalisation change
    norm = fit_normative(vae, x_fit, regions, cfg.pixdim, cfg.sigma_mm, cfg.min_subjects)
    z = {k: _scores(norm, x) for k, x in (("cal", x_cal), ("lesion", xl), ("healthy", xh))}
    heads = {k: _heads(x) for k, x in (("cal", x_cal), ("lesion", xl), ("healthy", xh))}
    for label, q in (("plain", None), ("median", 50.0), ("p90", 90.0), ("p99", 99.0)):
        for rate in (0.05, 0.10, 0.15, 0.20) if q is None else (0.05,):
            r = _sweep(z, heads, ml, q, rate, cfg)
            print(
                f"{label} healthy rate {rate:.2f}: threshold {r['threshold']:.3f} "
                f"found {r['found']:.3f} dice {r['dice']:.3f} healthy empty {r['empty']:.3f}"
            )
    print(f"{time.perf_counter() - t0:.0f} s")


def _scores(norm: Any, x: Any) -> Any:
    import numpy as np

    return np.concatenate([norm.score(x[i : i + 8]).numpy()[:, 0] for i in range(0, len(x), 8)])


def _heads(x: Any) -> Any:
    """Each volume's head, one voxel in from its edge (where a per-volume level is taken)."""
    import numpy as np
    from scipy import ndimage

    return np.stack([ndimage.binary_erosion(v[0].numpy() > 0.1, iterations=1) for v in x])


def _sweep(
    z: dict[str, Any], heads: dict[str, Any], truth: Any, q: float | None, rate: float, cfg: Any
) -> dict[str, float]:
    """Threshold at ``rate`` of the calibration brains, mask as shipped, measure."""
    import math

    import numpy as np

    from medattr.generative.anomaly import _clear_level, _core, _dilate

    st = cfg.settings_dict()
    min_vox = st["min_volume_mm3"] / float(np.prod(cfg.pixdim))

    def level(a: Any, head: Any) -> Any:
        return a if q is None else a / np.percentile(a[head], q)

    pairs = zip(z["cal"], heads["cal"], strict=True)
    cal = sorted(_clear_level(level(a, h), min_vox) for a, h in pairs)
    t = cal[min(math.ceil((len(cal) + 1) * (1 - rate)), len(cal)) - 1]
    found, dice = [], []
    for a, h, m in zip(z["lesion"], heads["lesion"], truth, strict=True):
        core = _core(level(a, h), t, min_vox, st["edge_fraction"])
        mask = _dilate(core, st["dilation_mm"], cfg.pixdim)
        inter = float((mask & m).sum())
        found.append(inter > 0)
        dice.append(2 * inter / float(mask.sum() + m.sum()))
    empty = [
        not _core(level(a, h), t, min_vox, st["edge_fraction"]).any()
        for a, h in zip(z["healthy"], heads["healthy"], strict=True)
    ]
    return {
        "threshold": float(t),
        "found": float(np.mean(found)),
        "dice": float(np.mean(dice)),
        "empty": float(np.mean(empty)),
    }


if __name__ == "__main__":
    main()
