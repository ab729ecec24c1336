"""Write a run's report: ``summary.json``, PNG figures and a markdown page (``results.md``).

The page is generated from the rows: tables, figures, setup and the verdict paragraph are
rewritten on every run. One part is a person's: the text between the interpretation markers
is carried over from the existing page, so regenerating the numbers keeps it.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from medattr._fs import atomic_write_text
from medattr.benchmarking.aggregate import (
    BASELINE_STATS,
    HEALTHY_STATS,
    cell_lookup,
    summarise,
)
from medattr.benchmarking.config import (
    BASELINES,
    EG_BASELINE,
    ordered_baselines,
    ordered_methods,
)
from medattr.benchmarking.evaluate import METRICS
from medattr.benchmarking.figures import baseline_figure, example_figure, metric_figure
from medattr.benchmarking.rows import read_rows
from medattr.benchmarking.verdict import verdict_lines
from medattr.errors import InputError

__all__ = [
    "INTERPRETATION_END",
    "INTERPRETATION_START",
    "fmt",
    "kept_interpretation",
    "render_markdown",
    "write_report",
]

INTERPRETATION_START = "<!-- interpretation:start (kept when the page is regenerated) -->"
INTERPRETATION_END = "<!-- interpretation:end -->"
_DEFAULT_INTERPRETATION = (
    "*Not written yet.* A person who has read the tables and figures above states here what "
    "the numbers mean: whether the VAE counterfactuals earn their cost, why they fall short "
    "where they do (the diagnostics in the baseline table point at the cause), and what would "
    "fix it. This section is kept when the page is regenerated."
)
_METHOD_NAMES = {
    "ig": "IG",
    "smoothgrad": "SmoothGrad over IG",
    "split-ig": "Split IG (left part)",
    "eg": "Expected Gradients",
}


def fmt(cell: dict[str, Any] | None, total: int | None = None, digits: int = 3) -> str:
    """``mean [lo, hi]`` (``n=k`` appended when fewer than ``total`` values were defined).

    Examples
    --------
    >>> fmt({"mean": 0.4123, "lo": 0.35, "hi": 0.47, "n": 18}, total=20)
    '0.412 [0.350, 0.470] (n=18)'
    """
    if cell is None or cell.get("n", 0) == 0 or not math.isfinite(cell["mean"]):
        return "–"
    m, lo, hi = cell["mean"], cell["lo"], cell["hi"]

    def num(v: float) -> str:
        if not math.isfinite(v):
            return "nan"
        if v != 0 and (abs(v) >= 1000 or abs(v) < 10 ** (-digits)):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}f}"

    text = num(m) if not math.isfinite(lo) else f"{num(m)} [{num(lo)}, {num(hi)}]"
    if total is not None and cell["n"] < total:
        text += f" (n={cell['n']})"
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _metric_table(summary: dict[str, Any], group: str) -> str:
    cells = cell_lookup(summary)
    metrics = [m for m in METRICS if m.group == group and any(k[2] == m.key for k in cells)]
    if not metrics:
        return "*(no rows)*"
    total = len(summary["studies"])
    rows = []
    for method in ordered_methods(k[0] for k in cells):
        for b in (*ordered_baselines(k[1] for k in cells), EG_BASELINE):
            if not any((method, b, m.key) in cells for m in metrics):
                continue
            rows.append(
                [_METHOD_NAMES.get(method, method), b]
                + [fmt(cells.get((method, b, m.key)), total) for m in metrics]
            )
    arrows = ["↑" if m.higher_is_better else "↓" for m in metrics]
    header = ["method", "baseline"] + [
        f"{m.label} {a}" for m, a in zip(metrics, arrows, strict=True)
    ]
    return _table(header, rows)


def _baseline_table(summary: dict[str, Any]) -> str:
    stats = summary.get("baselines") or {}
    names = ordered_baselines(b for b in stats if b != EG_BASELINE)
    if not names:
        return "*(no rows)*"
    rows = [[b] + [fmt(stats[b].get(k)) for k, _ in BASELINE_STATS] for b in names]
    return _table(["baseline"] + [label for _, label in BASELINE_STATS], rows)


def _healthy_table(summary: dict[str, Any]) -> str:
    stats = summary.get("healthy") or {}
    names = ordered_baselines(b for b in stats if b != EG_BASELINE)
    if not names:
        return "*(no healthy studies in this run)*"
    rows = [[b] + [fmt(stats[b].get(k)) for k, _ in HEALTHY_STATS] for b in names]
    return _table(["baseline"] + [label for _, label in HEALTHY_STATS], rows)


def _comparison_table(summary: dict[str, Any], method: str) -> str:
    rows = []
    for v in summary["verdicts"].get(method, []):
        gain = (
            "–"
            if not math.isfinite(v["gain"])
            else (
                f"{v['gain']:+.3f}"
                + (f" [{v['lo']:+.3f}, {v['hi']:+.3f}]" if math.isfinite(v["lo"]) else "")
            )
        )
        gap = "–" if not math.isfinite(v["gap_closed"]) else f"{100 * v['gap_closed']:.0f} %"
        rows.append(
            [
                v["label"],
                f"{v['classic']} {v['classic_mean']:.3f}",
                f"{v['vae']} {v['vae_mean']:.3f}",
                gain,
                f"{v['wins']}/{v['n']}",
                f"**{v['verdict']}**",
                "–" if not math.isfinite(v["oracle_mean"]) else f"{v['oracle_mean']:.3f}",
                gap,
            ]
        )
    if not rows:
        return "*(needs at least one classic and one VAE baseline)*"
    return _table(
        [
            "metric",
            "best classic",
            "best VAE",
            "gain (VAE better > 0) [95 % CI]",
            "VAE better in",
            "verdict",
            "oracle",
            "gap to oracle closed",
        ],
        rows,
    )


def _timing_table(rows: list[dict[str, Any]], study_ids: set[str]) -> str:
    per: dict[str, list[tuple[float, float, int]]] = {}
    for r in rows:
        if r.get("kind") != "attribution" or r.get("study") not in study_ids:
            continue
        per.setdefault(r["method"], []).append(
            (
                float(r.get("seconds") or 0.0),
                float(r.get("metric_seconds") or 0.0),
                int(r.get("n_evaluations") or 0),
            )
        )
    out = []
    for m in ordered_methods(per):
        v = per[m]
        out.append(
            [
                _METHOD_NAMES.get(m, m),
                f"{sum(a for a, _, _ in v) / len(v):.2f}",
                f"{sum(n for _, _, n in v) / len(v):.0f}",
                f"{sum(b for _, b, _ in v) / len(v):.2f}",
            ]
        )
    note = (
        "\n\nIG and Split IG share one path evaluation; its time appears in both rows."
        if "ig" in per and "split-ig" in per
        else ""
    )
    return (
        _table(["method", "seconds / attribution", "gradient evaluations", "metric seconds"], out)
        + note
    )


def kept_interpretation(existing: Path | None) -> str:
    """The person-written text between the interpretation markers of an existing page, or the
    placeholder when there is none (no page, no markers, or an empty section)."""
    if existing is not None and existing.exists():
        text = existing.read_text(encoding="utf-8")
        if INTERPRETATION_START in text and INTERPRETATION_END in text:
            start = text.index(INTERPRETATION_START) + len(INTERPRETATION_START)
            end = text.index(INTERPRETATION_END)
            kept = text[start:end].strip()
            if kept:
                return kept
    return _DEFAULT_INTERPRETATION


def render_markdown(
    summary: dict[str, Any],
    run: dict[str, Any],
    rows: list[dict[str, Any]],
    figures: dict[str, str],
    interpretation: str,
) -> str:
    """The report page (see the module docstring)."""
    cfg = run.get("config", {})
    models = run.get("models", {})
    clf = (models.get("classifier") or {}).get("path", cfg.get("classifier", "?"))
    vae = (models.get("vae") or {}).get("path", cfg.get("vae", "?")) if models.get("vae") else "–"
    stand_in = not str(cfg.get("classifier", "")).startswith("builtin:")
    n, nh = len(summary["studies"]), len(summary["healthy_studies"])
    total_s = sum(float(s.get("seconds", 0.0)) for s in run.get("sessions", []))
    parts = [
        "# Which baseline? Counterfactual versus classic baselines for path attribution",
        "",
        "<!-- Generated by `medattr benchmark` (medattr.benchmarking.report) from the run's "
        "rows.jsonl. Everything outside the interpretation markers is rewritten on each run. -->",
        "",
    ]
    if stand_in:
        parts += [
            f"> **Models other than the shipped ones** (classifier `{cfg.get('classifier')}`). "
            "These numbers describe those models, not `builtin:mni` / `builtin:mni-vae`.",
            "",
        ]
    parts += [
        f"{n} held-out lesion studies and {nh} healthy studies "
        f"({run.get('plan', {}).get('source', '')}); methods "
        f"{', '.join(_METHOD_NAMES.get(m, m) for m in summary['methods'])}; baselines "
        f"{', '.join(b for b in summary['baselines_present'] if b != EG_BASELINE)}, and for "
        "Expected Gradients a bank of healthy subjects. The **oracle** baseline is each study's "
        "true healthy twin (same subject, same noise, no lesion): it bounds what any "
        "counterfactual could achieve. Intervals are 95 % percentile-bootstrap CIs over studies.",
        "",
        "## Verdict",
        "",
        "*Computed from the numbers below by `medattr.benchmarking.verdict`.*",
        "",
        *verdict_lines(summary, cfg),
        "",
        "## Localisation (lesion studies, within the brain)",
        "",
        _metric_table(summary, "localisation"),
        "",
        "## Faithfulness",
        "",
        _metric_table(summary, "faithfulness"),
        "",
        "## Robustness: IG max-sensitivity (every baseline regenerated for each perturbed input)",
        "",
        _metric_table(summary, "robustness"),
        "",
        "## VAE counterfactual versus classic baselines (IG, paired over studies)",
        "",
        _comparison_table(
            summary, "ig" if "ig" in summary["verdicts"] else next(iter(summary["verdicts"]), "ig")
        ),
        "",
        "## The baselines themselves (lesion studies)",
        "",
        _baseline_table(summary),
        "",
        "## Healthy studies: what each baseline invents where there is nothing to find",
        "",
        _healthy_table(summary),
        "",
        "## Figures",
        "",
    ]
    captions = {
        "localisation": "Localisation metrics (mean, 95 % CI)",
        "faithfulness": "Faithfulness and robustness metrics (mean, 95 % CI)",
        "baselines": "Baseline diagnostics",
    }
    for key, rel in figures.items():
        label = captions.get(key, f"Example study {key.split(':', 1)[-1]}")
        parts += [f"![{label}]({rel})", ""]
    parts += [
        "## Interpretation",
        "",
        INTERPRETATION_START,
        interpretation,
        INTERPRETATION_END,
        "",
        "## Setup",
        "",
        f"- Classifier: `{clf}` (sha256 `{(models.get('sha256') or {}).get('classifier', '?')}`)",
        f"- VAE: `{vae}` (sha256 `{(models.get('sha256') or {}).get('vae') or '–'}`)",
        f"- Machine: {json.dumps(run.get('machine', {}))}",
        f"- Wall time of the run: {total_s / 60:.1f} min over {len(run.get('sessions', []))} "
        "session(s)",
        f"- Lesion studies: {', '.join(summary['studies'])}",
        f"- Healthy studies: {', '.join(summary['healthy_studies']) or '–'}",
        f"- EG references: seeds {run.get('plan', {}).get('reference_seeds', [])}",
        "",
        "Settings:",
        "",
        "```json",
        json.dumps(cfg, indent=1, default=str),
        "```",
        "",
        "Cost per attribution (lesion studies):",
        "",
        _timing_table(rows, set(summary["studies"])),
        "",
        "## How each number is computed",
        "",
        _METHODS_TEXT.format(
            target=cfg.get("target_score", "margin"),
            frac=100 * float(cfg.get("perturbation_fraction", 0.1)),
            steps=cfg.get("perturbation_steps", "?"),
            fixed=cfg.get("fixed_reference", "blur"),
            sigma=cfg.get("blur_sigma_mm", "?"),
            thr=cfg.get("cf_threshold", "?"),
            tol=cfg.get("pointing_tolerance_mm", 0.0),
        ),
        "",
        f"*Generated {time.strftime('%Y-%m-%d %H:%M')} by `medattr benchmark`.*",
        "",
    ]
    return "\n".join(parts)


_METHODS_TEXT = """\
- **Target**: the classifier's disease score `{target}` (`margin`: log-odds
  `logit_lesion - logit_healthy`, the quantity the decision depends on).
- **Region**: localisation metrics look only at the brain (the region mask of each study), where
  every lesion lies; the question is whether the map singles out the lesion within the organ.
- **Relevance mass**: share of positive attribution inside the lesion; **relevance rank**: share of
  the K highest-attributed voxels inside the lesion (K = lesion size); **ROC AUC**: voxel-wise
  AUC of the signed attribution against the mask; **pointing game**: whether the single
  highest-attributed voxel lies in the lesion (tolerance {tol} mm). Arras et al. 2022; Zhang
  et al. 2018.
- **Completeness error**: `|sum(phi) - (F - f(x'))| / |F - f(x')|`, with F = f(x) for IG and
  EG (mean f over the drawn references for EG), f at alpha* for Split IG's left part, the mean f
  over the noisy copies for SmoothGrad.
- **Deletion / insertion** (Petsiuk et al. 2018): brain voxels are replaced (deletion) or
  restored (insertion) in the map's order, in {steps} equal steps over the first {frac:.0f} % of
  the brain (the rest of the volume keeps the input's values); the AUC over that range is
  rescaled so that the score with the whole brain replaced is 0 and the input's is 1
  (deletion: lower is better; insertion: higher is better). **own**: the
  replacement is the baseline the map was computed against (for EG the mean reference), which
  matches the attribution's own notion of absence; **fixed**: one replacement for every row,
  `{fixed}` (blur sigma {sigma} mm), which makes rows comparable but favours the baseline equal
  to it. A value is undefined (left out, `n` shown) when replacing the brain barely changes
  the score (`|f(x) - f(r)| < 0.1 max(1, |f(x)|, |f(r)|)`).
- **Max-sensitivity** (Yeh et al. 2019): largest relative L2 change of the IG map over uniform
  perturbations of the input in an L-infinity ball, each baseline regenerated for the perturbed
  input (the oracle of a perturbed input is it minus the exact lesion signal).
- **Baseline diagnostics**: p(disease | x') from the classifier; "called healthy" means
  p <= {thr}; distances are mean absolute differences in model units, inside the lesion and in
  the rest of the brain; `|x' - twin|` measures how close a baseline is to the oracle.
- **Paired comparison**: for each metric, the best classic (zero, blur, noise) and the best VAE
  baseline by mean; the per-study differences are bootstrapped; *better* / *worse* when the 95 %
  CI excludes 0. "Gap to oracle closed" is `(VAE - classic) / (oracle - classic)`."""


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    docs: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Aggregate the rows of the run in ``out_dir``; write ``summary.json``, ``results.md`` and
    ``images/*.png`` there, and with ``docs`` also the page at that path with its figures in
    ``images/results/`` beside it. Returns the summary.

    Raises
    ------
    InputError
        If ``out_dir`` holds no run (``run.json``) or no rows.
    """
    out = Path(out_dir)
    run_file = out / "run.json"
    if not run_file.exists():
        raise InputError("not a benchmark run directory (no run.json)", out)
    run = json.loads(run_file.read_text())
    rows = read_rows(out / "rows.jsonl")
    if not rows:
        raise InputError("the run has no measured rows yet (rows.jsonl is empty)", out)
    cfg = run.get("config", {})
    summary = summarise(
        rows,
        study_ids=run.get("study_ids"),
        healthy_ids=run.get("healthy_ids"),
        methods=cfg.get("methods"),
        baselines=cfg.get("baselines"),
        n_boot=int(cfg.get("n_boot", 2000)),
        seed=int(cfg.get("seed", 0)),
    )
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    targets = [(out / "results.md", out / "images", "images")]
    if docs is not None:
        page = Path(docs)
        targets.append((page, page.parent / "images" / "results", "images/results"))
    for page, img_dir, rel in targets:
        figures = _figures(summary, out, img_dir, rel, cfg)
        text = render_markdown(summary, run, rows, figures, kept_interpretation(page))
        atomic_write_text(page, text)
    return summary


def _figures(
    summary: dict[str, Any], out: Path, img_dir: Path, rel: str, cfg: dict[str, Any]
) -> dict[str, str]:
    import torch

    figs: dict[str, str] = {}
    for group in ("localisation", "faithfulness"):
        p = metric_figure(summary, group, img_dir / f"{group}.png")
        if p is not None:
            figs[group] = f"{rel}/{p.name}"
    p = baseline_figure(summary, img_dir / "baselines.png")
    if p is not None:
        figs["baselines"] = f"{rel}/{p.name}"
    ex_dir = out / "cache" / "examples"
    for sid in summary["studies"][: int(cfg.get("n_examples", 2))]:
        f = ex_dir / f"{sid}.pt"
        if not f.exists():
            continue
        blob = torch.load(f, weights_only=True)
        names = ordered_baselines(cfg.get("baselines", BASELINES))
        p = example_figure(blob, sid, img_dir / f"example_{sid}.png", names)
        figs[f"example:{sid}"] = f"{rel}/{p.name}"
    return figs
