"""Split a baseline benchmark run by whether the anomaly mask found the lesion.

Reads a run's ``rows.jsonl`` (``medattr benchmark --out RUN``) and, for a masked baseline
(default ``inpaint``), reports over the lesion studies where its mask touches the lesion and
over those where it does not: the IG relevance mass and pointing game, the fraction the
classifier calls healthy at the baseline, the mean p(disease) at input and baseline, the
baseline's distance to the healthy twin inside the lesion, and the lesion's contrast (the
oracle's |x - x'| inside the lesion). It also counts the studies whose input the classifier
calls diseased (p > ``--threshold``, the run's counterfactual threshold) and, of those, the
ones whose true healthy twin it calls healthy: the most that a mask grown until the classifier
calls the infill healthy (``inpaint-guided``) could reach. ``docs/results.md`` quotes these
numbers.

Example::

    python benchmarks/mask_found_split.py RUN/rows.jsonl --json split.json
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any


def _mean(values: list[float]) -> float:
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    return sum(v) / len(v) if v else math.nan


def split(
    rows: list[dict[str, Any]], baseline: str = "inpaint", threshold: float = 0.2
) -> dict[str, dict[str, Any]]:
    """``{"found": {...}, "missed": {...}}`` for ``baseline`` (see the module docstring)."""
    base = {
        r["study"]: r
        for r in rows
        if r.get("kind") == "baseline" and r.get("label") == 1 and r["baseline"] == baseline
    }
    oracle = {
        r["study"]: r
        for r in rows
        if r.get("kind") == "baseline" and r.get("label") == 1 and r["baseline"] == "oracle"
    }
    ig = {
        r["study"]: r["metrics"]
        for r in rows
        if r.get("kind") == "attribution" and r["baseline"] == baseline and r["method"] == "ig"
    }
    out = {}
    for group, want in (("found", True), ("missed", False)):
        ids = sorted(s for s, r in base.items() if bool(r.get("mask_detected")) is want)
        out[group] = {
            "studies": len(ids),
            "relevance_mass": _mean([ig[s].get("mass") for s in ids if s in ig]),
            "pointing_game": _mean([ig[s].get("pointing") for s in ids if s in ig]),
            "mask_dice": _mean([base[s].get("mask_dice") for s in ids]),
            "called_healthy": _mean([float(base[s]["healthy"]) for s in ids]),
            "p_disease_input": _mean([base[s]["p_disease_input"] for s in ids]),
            "p_disease_baseline": _mean([base[s]["p_disease_baseline"] for s in ids]),
            "twin_error_lesion": _mean([base[s]["twin_error_lesion"] for s in ids]),
            "lesion_contrast": _mean([oracle[s]["distance_lesion"] for s in ids if s in oracle]),
            "input_called_diseased": sum(base[s]["p_disease_input"] > threshold for s in ids),
            "input_diseased_twin_healthy": sum(
                base[s]["p_disease_input"] > threshold
                and s in oracle
                and oracle[s]["p_disease_baseline"] <= threshold
                for s in ids
            ),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("rows", help="the run's rows.jsonl")
    p.add_argument("--baseline", default="inpaint")
    p.add_argument("--threshold", type=float, default=0.2, help="called healthy at p <= this")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    with open(args.rows, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    result = split(rows, args.baseline, args.threshold)
    for group, v in result.items():
        print(group, " ".join(f"{k}={v[k]:.3f}" if k != "studies" else f"{k}={v[k]}" for k in v))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {"baseline": args.baseline, "threshold": args.threshold, **result}, fh, indent=1
            )
    return result


if __name__ == "__main__":
    main()
