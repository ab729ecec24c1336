"""Tuning probe for the classifier-guided mask (``inpaint-guided``), on its own block of seeds.

For lesion and healthy studies of a tuning block that neither the benchmark's test split nor
the normative model's report block uses, compare the calibrated mask (``inpaint``) with the
guided one at a few ``guide_factor`` values: how often the mask touches the lesion, its Dice,
how often a healthy study keeps an empty mask, how often the classifier calls the baseline
healthy, and the time per study. The benchmark's own studies are never used here.

Run (2 CPU cores: about a minute per 10 studies and setting)::

    python benchmarks/probe_guided.py --model builtin:mni --lesion 40 --healthy 20 \
        --out benchmarks/results/probe_guided_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

#: First seeds of the tuning block (classic lesion studies, then healthy ones).
LESION_SEED_BASE = 640_000
HEALTHY_SEED_BASE = 640_500


def _dice(m: np.ndarray, truth: np.ndarray) -> float:
    return 2.0 * float((m & truth).sum()) / max(float(m.sum() + truth.sum()), 1.0)


def main(argv: list[str] | None = None) -> dict:
    from medattr._baseline import BaselineContext
    from medattr.baselines.counterfactual import (
        GuidedInpaintBaseline,
        InpaintCounterfactualBaseline,
    )
    from medattr.benchmarking.studies import load_study
    from medattr.errors import InputError
    from medattr.models import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="builtin:mni")
    p.add_argument("--lesion", type=int, default=40)
    p.add_argument("--healthy", type=int, default=20)
    p.add_argument("--factors", type=float, nargs="+", default=[0.5, 0.7])
    p.add_argument(
        "--min-drop",
        type=float,
        nargs="*",
        default=[],
        help="also the factor-0.5 guide with these guide_min_drop levels",
    )
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(a.model)
    net = model.module.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x)

    studies = []
    seed = LESION_SEED_BASE
    while sum(s.label for s in studies) < a.lesion:
        try:
            studies.append(load_study(model.spec, "mni", seed, True))
        except InputError:
            pass
        seed += 1
    studies += [
        load_study(model.spec, "mni", HEALTHY_SEED_BASE + k, False) for k in range(a.healthy)
    ]
    kw = {"anomaly_model": "builtin:mni-normative"}
    variants = {"inpaint": InpaintCounterfactualBaseline(**kw)}
    for f in a.factors:
        variants[f"inpaint-guided f={f}"] = GuidedInpaintBaseline(guide_factor=f, **kw)
    for d in a.min_drop:
        variants[f"inpaint-guided f=0.5 min_drop={d}"] = GuidedInpaintBaseline(
            guide_factor=0.5, guide_min_drop=d, **kw
        )
    rows: dict[str, dict] = {}
    for name, base in variants.items():
        found, dice, empty, healthy_called, secs, grown = [], [], [], [], [], []
        for s in studies:
            ctx = BaselineContext(spacing=list(s.spacing), forward_func=forward)
            t0 = time.perf_counter()
            res = base.generate(s.x, ctx)
            secs.append(time.perf_counter() - t0)
            m = res.masks["anomaly_mask"][0, 0].cpu().numpy().astype(bool)
            healthy_called.append(not res.info["still_diseased"][0])
            if s.label:
                truth = s.mask[0].cpu().numpy().astype(bool)
                found.append(bool((m & truth).any()))
                dice.append(_dice(m, truth))
                grown.append(bool(res.info.get("guided", [False])[0]))
            else:
                empty.append(not m.any())
        rows[name] = {
            "lesion_found": float(np.mean(found)),
            "dice_mean": float(np.mean(dice)),
            "lesion_baseline_called_healthy": float(
                np.mean([h for h, s in zip(healthy_called, studies, strict=True) if s.label])
            ),
            "healthy_empty_mask": float(np.mean(empty)) if empty else None,
            "mask_grown_by_guide": float(np.mean(grown)),
            "seconds_per_study": float(np.mean(secs)),
        }
        print(name, json.dumps(rows[name]))
    out = {
        "model": a.model,
        "lesion_seeds": [s.seed for s in studies if s.label],
        "healthy_seeds": [s.seed for s in studies if not s.label],
        "called_healthy_threshold": 0.5,
        "rows": rows,
        "machine": f"{platform.machine()}, torch {torch.__version__}, 2 threads",
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
