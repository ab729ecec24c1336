"""Calibrate ``inpaint-guided``'s ``guide_min_drop`` for a classifier on healthy studies only.

For each healthy study of a dedicated block (seeds neither the benchmark, the tuning probe nor
any model uses), take the candidate components the guide would try (the anomaly score's
components at ``guide_factor`` times the calibrated threshold, strongest first, at most
``guide_components``), infill each on top of the calibrated mask, and record how much it lowers
the classifier's disease log-odds. A component of healthy tissue should carry no lesion
evidence, so the level is set where few healthy studies have any component above it: the
``--quantile`` (default 0.95) of the per-study largest drop, the same "at most 5 % of healthy
studies" rule the anomaly mask is calibrated with. No lesion study is used.

Run (2 CPU cores: about a minute)::

    python benchmarks/calibrate_guide_drop.py --model builtin:mni --healthy 40 \
        --out benchmarks/results/calibrate_guide_drop_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: First seed of the healthy calibration block.
HEALTHY_SEED_BASE = 642_000


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from medattr._baseline import BaselineContext
    from medattr.baselines.counterfactual import GuidedInpaintBaseline
    from medattr.benchmarking.studies import load_study
    from medattr.models import load_model

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--model", default="builtin:mni")
    ap.add_argument("--healthy", type=int, default=40)
    ap.add_argument("--quantile", type=float, default=0.95)
    ap.add_argument("--factor", type=float, default=0.5)
    ap.add_argument("--components", type=int, default=6)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model(a.model)
    net = model.module.eval()
    # the guide itself measures the drops: with a threshold no healthy study is under, it runs
    # on every study, and with a drop no component reaches, it keeps none, so every candidate's
    # drop is measured against the calibrated mask alone
    base = GuidedInpaintBaseline(
        anomaly_model="builtin:mni-normative",
        guide_factor=a.factor,
        guide_components=a.components,
        guide_min_drop=1e9,
        threshold=1e-6,
    )
    per_study = []
    for k in range(a.healthy):
        s = load_study(model.spec, "mni", HEALTHY_SEED_BASE + k, False)
        res = base.generate(s.x, BaselineContext(spacing=list(s.spacing), forward_func=net))
        steps = res.info["steps"][0]
        per_study.append(
            {
                "seed": HEALTHY_SEED_BASE + k,
                "p_disease_input": round(res.info["p_disease_input"][0], 6),
                "calibrated_mask_empty": steps[1]["voxels"] == 0,
                "drops": [st["logit_drop"] for st in steps if st["step"].startswith("guide ")],
            }
        )
    largest = np.array([max(r["drops"], default=0.0) for r in per_study])
    level = float(np.quantile(largest, a.quantile))
    out = {
        "model": a.model,
        "guide_factor": a.factor,
        "guide_components": a.components,
        "quantile": a.quantile,
        "guide_min_drop": round(level, 4),
        "healthy_studies": len(per_study),
        "studies_with_a_candidate": int(sum(bool(r["drops"]) for r in per_study)),
        "largest_drop_percentiles": {
            str(q): round(float(np.quantile(largest, q)), 4) for q in (0.5, 0.9, 0.95, 1.0)
        },
        "per_study": per_study,
        "machine": f"{platform.machine()}, torch {torch.__version__}, 2 threads",
    }
    print(json.dumps({k: v for k, v in out.items() if k != "per_study"}, indent=1))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
