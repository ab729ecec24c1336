"""From rows to numbers: mean and 95 % bootstrap CI per (method, baseline, metric), baseline
diagnostics, paired VAE-versus-classic comparisons and the verdict they support.

Intervals are percentile bootstraps over studies (:func:`medattr.metrics.bootstrap_ci`); NaN
values (undefined for a study) are left out and the count of values used is reported. Paired
comparisons bootstrap the per-study differences on the studies both rows have, which is far
more sensitive than comparing two intervals: two overlapping intervals can still hide a
consistent per-study difference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from medattr.benchmarking.config import (
    BASELINES,
    CLASSIC_BASELINES,
    COUNTERFACTUAL_BASELINES,
    EG_BASELINE,
    METHODS,
)
from medattr.benchmarking.evaluate import METRICS, Metric
from medattr.metrics import bootstrap_ci

__all__ = [
    "BASELINE_STATS",
    "HEALTHY_STATS",
    "cell_lookup",
    "ci",
    "collect",
    "compare",
    "summarise",
    "verdicts",
]

BASELINE_STATS = (
    ("f_baseline", "f(x')"),
    ("p_disease_baseline", "p(disease | x')"),
    ("healthy", "called healthy"),
    ("distance_lesion", "|x - x'| in lesion"),
    ("distance_outside", "|x - x'| outside lesion"),
    ("twin_error_lesion", "|x' - twin| in lesion"),
    ("twin_error_outside", "|x' - twin| outside"),
    ("mask_dice", "mask Dice"),
    ("mask_detected", "mask finds lesion"),
    ("guided", "mask grown by classifier"),
    ("seconds", "seconds / study"),
)
"""Per-baseline diagnostics reported for lesion studies (key, label)."""

HEALTHY_STATS = (
    ("p_disease_baseline", "p(disease | x')"),
    ("distance_region", "|x - x'| in region"),
    ("score_gap", "f(x) - f(x')"),
    ("abs_attribution", "sum |IG|"),
    ("anomaly_mask_empty", "mask empty"),
    ("seconds", "seconds / study"),
)
"""What each baseline does to healthy studies (key, label)."""


ZERO_ATTRIBUTION_SCORES = {"mass": 0.0, "rank": 0.0, "pointing": 0.0}
"""Localisation scores of an attribution that is zero everywhere (a baseline equal to the
input, e.g. an empty anomaly mask). The metrics leave the mass undefined (no relevance to share
out) and break ties of the all-zero map arbitrarily for rank and pointing; averaging only the
defined values would score a baseline on the studies where it found something. It placed no
relevance on the lesion: 0 for all three."""


def _num(v: Any) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean, 95 % bootstrap interval and count of the finite values (NaN interval if < 2).

    Examples
    --------
    >>> c = ci([1.0, 2.0, 3.0, float("nan")], n_boot=500)
    >>> c["mean"], c["n"], c["lo"] <= c["mean"] <= c["hi"]
    (2.0, 3, True)
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    mean, lo, hi = bootstrap_ci(finite, n_boot=n_boot, seed=seed)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(finite)}


def _in_scope(
    r: dict[str, Any],
    ids: set[str] | None,
    methods: set[str] | None,
    baselines: set[str] | None,
) -> bool:
    if ids is not None and r.get("study") not in ids:
        return False
    if methods is not None and "method" in r and r["method"] not in methods:
        return False
    return baselines is None or r.get("baseline") in baselines


def collect(
    rows: Iterable[dict[str, Any]],
    study_ids: set[str] | None = None,
    methods: set[str] | None = None,
    baselines: set[str] | None = None,
) -> dict[tuple[str, str, str], dict[str, float]]:
    """``(method, baseline, metric) -> {study: value}`` for the lesion studies' attribution and
    sensitivity rows (restricted to ``study_ids``, ``methods`` and ``baselines`` when given)."""
    table: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r.get("label") != 1 or not _in_scope(r, study_ids, methods, baselines):
            continue
        if r.get("kind") == "attribution":
            metrics = r.get("metrics") or {}
            nothing = _num(metrics.get("abs_attribution")) == 0.0
            for k, v in metrics.items():
                value = _num(v)
                if nothing and k in ZERO_ATTRIBUTION_SCORES:
                    value = ZERO_ATTRIBUTION_SCORES[k]
                table[(r["method"], r["baseline"], k)][r["study"]] = value
            table[(r["method"], r["baseline"], "seconds")][r["study"]] = _num(r.get("seconds"))
        elif r.get("kind") == "sensitivity":
            key = (r["method"], r["baseline"], "max_sensitivity")
            table[key][r["study"]] = _num(r.get("max_sensitivity"))
    return dict(table)


def compare(
    a: dict[str, float],
    b: dict[str, float],
    metric: Metric,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired comparison of ``a`` against ``b`` on their common studies.

    ``gain`` is ``a - b`` oriented so that positive means ``a`` is better (for a metric where
    lower is better, ``b - a``); ``verdict`` is ``"better"`` / ``"worse"`` when the 95 %
    interval of the gain excludes 0, ``"no clear difference"`` otherwise.

    Examples
    --------
    >>> from medattr.benchmarking.evaluate import Metric
    >>> m = Metric("mass", "relevance mass", True, "localisation")
    >>> compare({"s1": 0.5, "s2": 0.6, "s3": 0.7}, {"s1": 0.2, "s2": 0.3, "s3": 0.3}, m)["verdict"]
    'better'
    """
    common = sorted(s for s in set(a) & set(b) if math.isfinite(a[s]) and math.isfinite(b[s]))
    sign = 1.0 if metric.higher_is_better else -1.0
    diffs = [sign * (a[s] - b[s]) for s in common]
    c = ci(diffs, n_boot, seed)
    if c["n"] < 2 or not math.isfinite(c["lo"]):
        verdict = "too few studies"
    elif c["lo"] > 0:
        verdict = "better"
    elif c["hi"] < 0:
        verdict = "worse"
    else:
        verdict = "no clear difference"
    wins = sum(d > 0 for d in diffs)
    return {
        "gain": c["mean"],
        "lo": c["lo"],
        "hi": c["hi"],
        "n": c["n"],
        "wins": wins,
        "verdict": verdict,
    }


def _best(
    cells: dict[tuple[str, str, str], dict[str, Any]],
    method: str,
    names: Sequence[str],
    metric: Metric,
) -> str | None:
    best: str | None = None
    for name in names:
        c = cells.get((method, name, metric.key))
        if c is None or not math.isfinite(c["mean"]):
            continue
        if best is None or metric.better(c["mean"], cells[(method, best, metric.key)]["mean"]):
            best = name
    return best


def verdicts(
    table: dict[tuple[str, str, str], dict[str, float]],
    cells: dict[tuple[str, str, str], dict[str, Any]],
    method: str,
    n_boot: int = 2000,
    seed: int = 0,
    candidates: Sequence[str] = COUNTERFACTUAL_BASELINES,
) -> list[dict[str, Any]]:
    """For each metric: the best classic and the best of ``candidates`` (default the VAE
    baselines) for ``method`` (by mean), their paired comparison, the oracle's mean, and the
    share of the classic-to-oracle gap the candidate closes (under the key ``vae``)."""
    out = []
    for metric in METRICS:
        classic = _best(cells, method, CLASSIC_BASELINES, metric)
        vae = _best(cells, method, candidates, metric)
        if classic is None or vae is None:
            continue
        cmp = compare(
            table[(method, vae, metric.key)],
            table[(method, classic, metric.key)],
            metric,
            n_boot,
            seed,
        )
        oracle = cells.get((method, "oracle", metric.key))
        c_mean = cells[(method, classic, metric.key)]["mean"]
        v_mean = cells[(method, vae, metric.key)]["mean"]
        gap = math.nan
        if oracle is not None and math.isfinite(oracle["mean"]):
            span = oracle["mean"] - c_mean
            if abs(span) > 1e-12 and metric.better(oracle["mean"], c_mean):
                gap = (v_mean - c_mean) / span
        out.append(
            {
                "metric": metric.key,
                "label": metric.label,
                "group": metric.group,
                "higher_is_better": metric.higher_is_better,
                "classic": classic,
                "classic_mean": c_mean,
                "vae": vae,
                "vae_mean": v_mean,
                "oracle_mean": oracle["mean"] if oracle is not None else math.nan,
                "gap_closed": gap,
                **cmp,
            }
        )
    return out


def _group_stats(
    rows: Iterable[dict[str, Any]],
    kind: str,
    label: int,
    keys: Sequence[str],
    ids: set[str] | None,
    n_boot: int,
    seed: int,
    method: str | None = None,
    baselines: set[str] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("kind") != kind or r.get("label") != label:
            continue
        if not _in_scope(r, ids, None, baselines):
            continue
        if method is not None and r.get("method") != method:
            continue
        src = {**r, **(r.get("metrics") or {})}
        for k in keys:
            if k in src:
                values[r["baseline"]][k].append(_num(src[k]))
    return {b: {k: ci(v, n_boot, seed) for k, v in per.items()} for b, per in values.items()}


def _merge(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {**a.get(k, {}), **b.get(k, {})} for k in dict.fromkeys([*a, *b])}


def summarise(
    rows: Sequence[dict[str, Any]],
    *,
    study_ids: Sequence[str] | None = None,
    healthy_ids: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything the report shows, JSON-able.

    Keys: ``studies`` / ``healthy_studies`` (ids), ``cells`` (list of ``{method, baseline,
    metric, mean, lo, hi, n}``), ``baselines`` (lesion-study diagnostics per baseline),
    ``healthy`` (what each baseline does to healthy studies), ``verdicts`` (per method, see
    :func:`verdicts`). ``study_ids`` / ``healthy_ids``, ``methods`` and ``baselines`` restrict
    the rows used (the Expected Gradients row is kept whenever ``"eg"`` is among the methods).
    """
    ids = set(study_ids) if study_ids is not None else None
    hids = set(healthy_ids) if healthy_ids is not None else None
    ms = set(methods) if methods is not None else None
    bs = ({*baselines, EG_BASELINE}) if baselines is not None else None
    table = collect(rows, ids, ms, bs)
    cells = {k: ci(list(v.values()), n_boot, seed) for k, v in table.items()}
    order_m = {m: i for i, m in enumerate(METHODS)}
    order_b = {b: i for i, b in enumerate((*BASELINES, EG_BASELINE))}
    studies = sorted(
        {r["study"] for r in rows if r.get("label") == 1 and (ids is None or r["study"] in ids)}
    )
    healthy = sorted(
        {r["study"] for r in rows if r.get("label") == 0 and (hids is None or r["study"] in hids)}
    )
    # ties (names outside the built-in order) by name: the same page from the same rows
    present = sorted({k[0] for k in table}, key=lambda m: (order_m.get(m, 99), m))
    return {
        "studies": studies,
        "healthy_studies": healthy,
        "methods": present,
        "baselines_present": sorted({k[1] for k in table}, key=lambda b: (order_b.get(b, 99), b)),
        "cells": [
            {"method": m, "baseline": b, "metric": k, **c}
            for (m, b, k), c in sorted(
                cells.items(), key=lambda kv: (order_m.get(kv[0][0], 99), order_b.get(kv[0][1], 99))
            )
        ],
        "baselines": _group_stats(
            rows, "baseline", 1, [k for k, _ in BASELINE_STATS], ids, n_boot, seed, baselines=bs
        ),
        "healthy": _merge(
            _group_stats(
                rows,
                "baseline",
                0,
                ["p_disease_baseline", "distance_region", "anomaly_mask_empty", "seconds"],
                hids,
                n_boot,
                seed,
                baselines=bs,
            ),
            _group_stats(
                rows,
                "attribution",
                0,
                ["score_gap", "abs_attribution"],
                hids,
                n_boot,
                seed,
                method="ig",
                baselines=bs,
            ),
        ),
        "verdicts": {m: verdicts(table, cells, m, n_boot, seed) for m in present if m != "eg"},
        "local": _local(table, cells, n_boot, seed),
        "local_guided": _local(
            table, cells, n_boot, seed, name=GUIDED_BASELINE, rivals=(LOCAL_BASELINE,)
        ),
    }


LOCAL_BASELINE = "inpaint"
"""The local counterfactual measured against the issue's bar (mask, healthy infill, stitch)."""
ABLATIONS = ("inpaint-mask-blur", "inpaint-mask-vae")
"""The same mask filled otherwise: how much comes from the mask and how much from the infill."""
GUIDED_BASELINE = "inpaint-guided"
"""The local counterfactual whose mask the classifier grows (reported apart, against the same
bars and against :data:`LOCAL_BASELINE`)."""


def _local(
    table: dict[tuple[str, str, str], dict[str, float]],
    cells: dict[tuple[str, str, str], dict[str, Any]],
    n_boot: int,
    seed: int,
    name: str = LOCAL_BASELINE,
    rivals: Sequence[str] = (*ABLATIONS, "vae-guided"),
) -> dict[str, Any]:
    """IG: the local counterfactual ``name`` against the best classic per metric, and each of
    ``rivals`` (its ablations and the former default ``vae-guided``, or for the guided one the
    mask-only ``inpaint``) against it on relevance mass."""
    if ("ig", name, "mass") not in cells:
        return {}
    mass = next(m for m in METRICS if m.key == "mass")
    against = {}
    for other in rivals:
        if ("ig", other, "mass") in table:
            against[other] = {
                "mean": cells[("ig", other, "mass")]["mean"],
                **compare(
                    table[("ig", name, "mass")],
                    table[("ig", other, "mass")],
                    mass,
                    n_boot,
                    seed,
                ),
            }
    return {
        "baseline": name,
        "verdicts": verdicts(table, cells, "ig", n_boot, seed, candidates=(name,)),
        "against": against,
    }


def cell_lookup(summary: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``(method, baseline, metric) -> cell`` from a summary's ``cells`` list."""
    return {(c["method"], c["baseline"], c["metric"]): c for c in summary["cells"]}
