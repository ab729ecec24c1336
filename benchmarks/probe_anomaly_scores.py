"""Probe: does any cheap anomaly score separate the benchmark's lesions from healthy tissue?

For lesion studies (seeds from 610000, the inpainter's validation block) and healthy studies
(from 611000), each score map's peak inside the lesion, its peak in brain tissue away from the
lesion (lesion dilated by 3 voxels excluded) and its peak in healthy brains. A score that
could drive a mask needs lesion peaks above both other columns. Scores: the shipped
inpainter's leave-block-out residual, normalised by its error scale (``norm``) or not
(``raw``), for several block sizes; the healthy VAE's reconstruction residual ``x - D(mu(x))``
(``recon``); and the change the classifier-guided latent search asks for, ``D(mu) - D(z_cf)``
(``guided``), each smoothed at two widths. Nothing is tuned on the benchmark's test split.

Example::

    python benchmarks/probe_anomaly_scores.py --studies 6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _NoScale:
    """The inpainter's mean prediction only (error scale 1)."""

    def __init__(self, g: Any) -> None:
        self.g = g

    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.g.predict(x, mask)


def _studies(spec: Any, base: int, n: int, lesion: bool) -> list[Any]:
    from medattr.benchmarking.studies import load_study
    from medattr.errors import InputError

    out, seed = [], base
    while len(out) < n:
        try:
            out.append(load_study(spec, "mni", seed, lesion))
        except InputError:  # no lesion placement for this seed
            pass
        seed += 1
    return out


def _peaks(maps: list[np.ndarray], studies: list[Any], lesion: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"lesion": [], "away": []} if lesion else {"healthy": []}
    for r, st in zip(maps, studies, strict=True):
        region = st.region[0].numpy()
        if lesion:
            m = st.mask[0].numpy()
            away = region & ~ndimage.binary_dilation(m, iterations=3)
            out["lesion"].append(round(float(r[m].max()), 4))
            out["away"].append(round(float(r[away].max()), 4))
        else:
            out["healthy"].append(round(float(r[region].max()), 4))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--studies", type=int, default=6, help="lesion and healthy studies each")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from medattr.baselines import BaselineContext
    from medattr.baselines.counterfactual import (
        VAEGuidedResidualBaseline,
        VAEReconstructionBaseline,
    )
    from medattr.generative import load_inpainter, load_vae
    from medattr.generative.anomaly import AnomalySettings, residual_map
    from medattr.models import load_model

    clf = load_model("builtin:mni")
    inp, vae = load_inpainter("builtin:mni-inpainter"), load_vae("builtin:mni-vae")
    groups = {
        True: _studies(clf.spec, 610_000, args.studies, True),
        False: _studies(clf.spec, 611_000, args.studies, False),
    }
    sp = groups[True][0].spacing
    ctx = BaselineContext(spacing=sp, forward_func=clf.module)
    guided = VAEGuidedResidualBaseline(vae, max_steps=60)
    recon = VAEReconstructionBaseline(vae)

    def smooth(d: torch.Tensor, sigma_mm: float) -> np.ndarray:
        arr = d[0, 0].numpy()
        return np.abs(ndimage.gaussian_filter(arr, [sigma_mm / v for v in sp]))

    scores: dict[str, Any] = {}
    for block, sigma in ((12.0, 3.0), (24.0, 4.5), (36.0, 4.5)):
        for name, g in (("norm", inp), ("raw", _NoScale(inp))):
            st = AnomalySettings(block_mm=(block,), shifts=2, sigma_mm=sigma)
            key = f"{name}{int(block)}mm"
            scores[key] = {}
            for lesion, studies in groups.items():
                maps = [residual_map(g, s.x, sp, st)[0, 0].numpy() for s in studies]
                scores[key].update(_peaks(maps, studies, lesion))
    for base_name, base in (("recon", recon), ("guided", guided)):
        diffs = {
            lesion: [s.x - base.generate(s.x, ctx).baselines for s in studies]
            for lesion, studies in groups.items()
        }
        for sigma in (3.0, 6.0):
            key = f"{base_name}_sigma{int(sigma)}mm"
            scores[key] = {}
            for lesion, studies in groups.items():
                maps = [smooth(d, sigma) for d in diffs[lesion]]
                scores[key].update(_peaks(maps, studies, lesion))
    for key, v in scores.items():
        above = sum(
            lp > max(a, max(v["healthy"])) for lp, a in zip(v["lesion"], v["away"], strict=True)
        )
        v["lesions_above_both"] = above
        print(f"{key:18s} lesions above both: {above}/{len(v['lesion'])}  {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": "cpu", "torch": torch.__version__, "scores": scores}, f, indent=1)


if __name__ == "__main__":
    main()
