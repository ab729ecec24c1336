"""Probe: the normative anomaly mask's settings, chosen on a tuning block of their own.

Fits the normative maps (``medattr.training.normative``'s fit seeds) at two smoothing widths,
calibrates the threshold for two minimum component volumes, and measures each mask setting
(edge fraction, dilation) on 40 lesion studies (seeds 632000-632039) and 40 healthy ones
(632500-632539): lesions found, Dice against the true lesion, healthy masks left empty. These
seeds are used by no model, by neither the maps' reported metrics (631000+, 631500+) nor the
benchmark's test split. The shipped settings (sigma 4.5 mm, 300 mm³, edge 0.5, dilation 6 mm)
came from this table (``benchmarks/results/probe_normative_settings_cpu.txt``).

Example::

    python benchmarks/probe_normative_settings.py --cache-dir /tmp/renders
"""

from __future__ import annotations

import argparse
import os
import sys
import time

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
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
