"""Brain classifiers side by side on the new classifier's held-out test split, with both lesion
kinds: the widened lesions it was trained for and the classic lesions of the benchmark.

The subjects are those of the test split recorded in ``--model`` (its training config); every
study is rendered once per lesion kind, healthy studies are shared. For each classifier the
AUC (with a 95 % bootstrap CI over studies), sensitivity and specificity at p = 0.5, and for
the widened lesions the sensitivity per category value. For reference, the same numbers for a
detector that is not a trained classifier at all: the study's peak normative anomaly score
(``builtin:mni-normative``, the score behind the ``inpaint`` mask), thresholded at its own
healthy-calibrated level.

Run (2 CPU cores: about 5 minutes, most of it rendering)::

    python benchmarks/eval_classifier.py --model builtin:mni \
        --split-config configs/train_mni_classifier_widened.json \
        --out benchmarks/results/eval_classifier_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _auc_ci(p: np.ndarray, y: np.ndarray, n_boot: int = 2000) -> dict[str, float]:
    from medattr.training.classifier import _roc_auc

    rng = np.random.default_rng(0)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            boots.append(_roc_auc(p[i], y[i]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"auc": round(_roc_auc(p, y), 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from medattr.models import load_model
    from medattr.training.classifier import ClassifierTrainingConfig, predict_probabilities
    from medattr.training.data import render_split, to_model_units
    from medattr.training.evaluation import category_sensitivity, operating_point_metrics

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a classifier (its test split is used)")
    ap.add_argument(
        "--split-config",
        type=Path,
        default=None,
        help="a training config (JSON) whose test split is used instead of --model's",
    )
    ap.add_argument("--other", nargs="*", default=[], help="NAME=PATH classifiers to compare")
    ap.add_argument("--cache", type=Path, default=None, help="render cache directory")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    main_model = load_model(a.model)
    if a.split_config is not None:
        t = json.loads(a.split_config.read_text())
    else:
        t = dict(main_model.spec.extra["training"])
    cfg = ClassifierTrainingConfig(**t)
    seeds = cfg.split_seeds()["test"]
    labels = cfg.split_labels()["test"]
    others = dict(o.split("=", 1) for o in a.other)
    models = {"this": main_model, **{n: load_model(p) for n, p in others.items()}}
    out: dict[str, Any] = {
        "test_seeds": [seeds[0], seeds[-1]],
        "n_lesion": int(sum(labels)),
        "n_healthy": int(len(labels) - sum(labels)),
        "models": {"this": a.model, **others},
        "splits": {},
    }
    base = {"shape": cfg.spatial_size, "spacing": cfg.pixdim}
    for kind in ("widened", "classic"):
        data = render_split(
            cfg.kind,
            seeds,
            labels,
            workers=cfg.workers,
            options={**base, **cfg.render_options, "lesions": kind},
            cache_dir=a.cache,
            arrays=("image",),
        )
        x = to_model_units(data["image"], cfg.intensity)
        y = data["label"].astype(bool)
        cats = {
            k.removeprefix("category_"): v for k, v in data.items() if k.startswith("category_")
        }
        rows = {}
        scores = {n: predict_probabilities(m.module.eval(), x) for n, m in models.items()}
        peak, level = _normative_peaks(x, cfg.pixdim)
        scores["normative-peak"] = peak
        for name, p in scores.items():
            cut = level if name == "normative-peak" else 0.5
            row: dict[str, Any] = {**_auc_ci(p, y), **operating_point_metrics(p, y, cut)}
            if cats:
                row["by_category"] = category_sensitivity(p, y, cats, cut)
            rows[name] = row
            print(
                kind, name, {k: row[k] for k in ("auc", "lo", "hi", "sensitivity", "specificity")}
            )
        out["splits"][kind] = rows
    out["machine"] = f"{platform.machine()}, torch {torch.__version__}, 2 threads"
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


def _normative_peaks(x: torch.Tensor, spacing: Any) -> tuple[np.ndarray, float]:
    """Per study the peak normative anomaly score, and the calibrated mask threshold."""
    from medattr.generative.normative import load_normative

    norm = load_normative("builtin:mni-normative")
    peaks = []
    with torch.no_grad():
        for i in range(0, len(x), 16):
            z = norm.score(x[i : i + 16], spacing)
            peaks.append(z.flatten(1).amax(1).numpy())
    return np.concatenate(peaks), float(norm.calibration["threshold"])


if __name__ == "__main__":
    main()
