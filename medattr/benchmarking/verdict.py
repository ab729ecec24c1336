"""The verdict paragraph: do the VAE counterfactuals beat zero / blur / noise, and by how much?

Stated from the paired comparisons of :func:`medattr.benchmarking.aggregate.verdicts` (best
classic against best VAE baseline per metric, 95 % CI of the per-study gain) and, where they do
not win, from the baseline diagnostics that say why (the counterfactual is still called
diseased; it keeps the lesion; it changes healthy anatomy as much as the lesion).
"""

from __future__ import annotations

import math
from typing import Any

from medattr.benchmarking.aggregate import cell_lookup
from medattr.benchmarking.config import COUNTERFACTUAL_BASELINES

__all__ = ["local_lines", "overall", "verdict_lines"]

_NAMES = {"ig": "IG", "smoothgrad": "SmoothGrad over IG", "split-ig": "Split IG"}
_PHRASES = {
    "beat": "beat",
    "mostly beat": "mostly beat",
    "mixed": "are mixed against",
    "do not beat": "do not beat",
    "do not clearly beat": "do not clearly beat",
    "lose to": "lose to",
    "undecided": "cannot yet be told apart from (too few studies)",
}


def overall(items: list[dict[str, Any]]) -> str:
    """One word for a set of per-metric verdicts: ``"beat"``, ``"mostly beat"``, ``"mixed"``,
    ``"do not beat"``, ``"lose to"`` or ``"undecided"``.

    Examples
    --------
    >>> overall([{"verdict": "better"}, {"verdict": "no clear difference"}])
    'mostly beat'
    """
    v = [i["verdict"] for i in items if i["verdict"] != "too few studies"]
    if not v:
        return "undecided"
    better, worse = v.count("better"), v.count("worse")
    if better == len(v):
        return "beat"
    if worse == len(v):
        return "lose to"
    if better and not worse:
        return "mostly beat"
    if worse and not better:
        return "do not beat"
    if not better and not worse:
        return "do not clearly beat"
    return "mixed"


def _metric_line(v: dict[str, Any]) -> str:
    if not math.isfinite(v["gain"]):
        return f"- {v['label']}: not enough defined values."
    ci = f" [{v['lo']:+.3f}, {v['hi']:+.3f}]" if math.isfinite(v["lo"]) else ""
    line = (
        f"- {v['label']}: best VAE `{v['vae']}` {v['vae_mean']:.3f} vs best classic "
        f"`{v['classic']}` {v['classic_mean']:.3f}; gain {v['gain']:+.3f}{ci} "
        f"(VAE better in {v['wins']}/{v['n']} studies) → **{v['verdict']}**"
    )
    if math.isfinite(v["oracle_mean"]):
        line += f"; oracle {v['oracle_mean']:.3f}"
        if math.isfinite(v["gap_closed"]):
            line += f", {100 * v['gap_closed']:.0f} % of the classic-to-oracle gap closed"
    return line + "."


def _diagnostics(summary: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    stats = summary.get("baselines") or {}
    oracle = stats.get("oracle", {})
    lines = []
    for name in COUNTERFACTUAL_BASELINES:
        s = stats.get(name)
        if not s:
            continue

        healthy, p = _mean(s, "healthy"), _mean(s, "p_disease_baseline")
        d_in, d_out = _mean(s, "distance_lesion"), _mean(s, "distance_outside")
        t_in = _mean(s, "twin_error_lesion")
        lesion_size = (
            float(oracle["distance_lesion"]["mean"]) if oracle.get("distance_lesion") else d_in
        )
        causes = []
        if math.isfinite(healthy) and healthy < 0.8:
            causes.append(
                f"the classifier still calls it diseased in {100 * (1 - healthy):.0f} % of "
                f"studies (mean p = {p:.2f}): disease evidence stays in x' and cannot be "
                "attributed"
            )
        if math.isfinite(t_in) and math.isfinite(lesion_size) and t_in > 0.5 * lesion_size:
            causes.append(
                f"it keeps much of the lesion (|x' - twin| in the lesion {t_in:.3f} against a "
                f"lesion contrast of {lesion_size:.3f})"
            )
        if (
            math.isfinite(d_out)
            and math.isfinite(d_in)
            and d_out > 0.25 * d_in
            and d_out > 0.1 * lesion_size
        ):
            causes.append(
                f"it changes healthy tissue by {d_out:.3f} on average against {d_in:.3f} in the "
                "lesion, and IG spreads attribution over every voxel that changed"
            )
        text = (
            f"- `{name}`: called healthy in {100 * healthy:.0f} % of studies "
            f"(p(disease | x') = {p:.2f}); |x - x'| {d_in:.3f} in the lesion, {d_out:.3f} "
            "outside."
        )
        if causes:
            text += " Likely limits: " + "; ".join(causes) + "."
        lines.append(text)
    return lines


def _mean(stats: dict[Any, Any], key: Any) -> float:
    """The mean of the interval ``stats[key]``; NaN when it is missing or empty."""
    c = stats.get(key)
    return float(c["mean"]) if c and c.get("n") else math.nan


def _bar(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**meets**" if ok else "**misses**")


def local_lines(summary: dict[str, Any], key: str = "local") -> list[str]:
    """The local counterfactual (anomaly mask + healthy infill) against the bar it was built
    to clear, its ablations, and whether it should be the default; IG only. ``key``
    ``"local_guided"``: the same for the classifier-guided mask, against the mask-only one."""
    local = summary.get(key) or {}
    if not local:
        return []
    guided = key == "local_guided"
    name = local["baseline"]
    by = {v["metric"]: v for v in local["verdicts"]}
    stats = (summary.get("baselines") or {}).get(name, {})
    healthy = (summary.get("healthy") or {}).get(name, {})
    cells = cell_lookup(summary)

    def cell(b: str, k: str) -> float:
        return _mean(cells, ("ig", b, k))

    rows: list[tuple[str, bool | None]] = []
    m = by.get("mass")
    if m:
        gap = m["gap_closed"]
        ok = math.isfinite(gap) and gap >= 0.5 and m["lo"] > 0
        rows.append(
            (
                f"relevance mass {m['vae_mean']:.3f} against {m['classic_mean']:.3f} for the best "
                f"classic (`{m['classic']}`) and {m['oracle_mean']:.3f} for the oracle: "
                f"{100 * gap:.1f} % of the gap closed, paired gain {m['gain']:+.3f} "
                f"[{m['lo']:+.3f}, {m['hi']:+.3f}] (bar: ≥ 50 % with the CI above zero)",
                ok,
            )
        )
    pg = cell(name, "pointing")
    rows.append((f"pointing game {pg:.2f} (bar: ≥ 0.9)", pg >= 0.9 if math.isfinite(pg) else None))
    d_out = _mean(stats, "distance_outside")
    rows.append(
        (
            f"mean |x − x′| outside the lesion {d_out:.4f} (bar: ≤ 0.005)",
            d_out <= 0.005 if math.isfinite(d_out) else None,
        )
    )
    ce, co = cell(name, "completeness"), cell("oracle", "completeness")
    rows.append(
        (
            f"completeness error {ce:.3f} against the oracle's {co:.3f} (bar: ≤ 2×)",
            ce <= 2 * co if math.isfinite(ce) and math.isfinite(co) else None,
        )
    )
    for key in ("deletion_fixed", "insertion_fixed"):
        v = by.get(key)
        if v:
            rows.append(
                (
                    f"{v['label']} {v['vae_mean']:.3f} against the best classic "
                    f"`{v['classic']}` {v['classic_mean']:.3f}: {v['verdict']} (bar: not worse)",
                    v["verdict"] != "worse",
                )
            )
    empty = _mean(healthy, "anomaly_mask_empty")
    rows.append(
        (
            f"healthy studies with an empty mask (x′ = x): {100 * empty:.0f} % (bar: ≥ 90 %)",
            empty >= 0.9 if math.isfinite(empty) else None,
        )
    )
    sec = _mean(stats, "seconds")
    rows.append(
        (
            f"{sec:.2f} s per study for the baseline on this machine (bar: < 5 s on 2 CPU cores)",
            sec < 5 if math.isfinite(sec) else None,
        )
    )
    met = sum(ok is True for _, ok in rows)
    judged = sum(ok is not None for _, ok in rows)
    dice, found = _mean(stats, "mask_dice"), _mean(stats, "mask_detected")
    what = (
        "(the anomaly mask grown by components that carry the classifier's evidence, healthy "
        "inpainter infill, every other voxel kept)"
        if guided
        else "(anomaly mask, healthy inpainter infill, every other voxel kept)"
    )
    lines = [
        f"The local counterfactual `{name}` {what} **meets {met} of the {judged} "
        "bars** it was built for (IG, lesion studies unless stated):",
        "",
        *(f"- {text} → {_bar(ok)}" for text, ok in rows),
        "",
        f"Why: its mask finds the lesion in {100 * found:.0f} % of lesion studies (mean Dice "
        f"{dice:.2f} against the true lesion, missed lesions count 0). Where it finds nothing "
        "the baseline is the input and IG attributes nothing; those studies score 0 on "
        "relevance mass, rank and pointing game.",
    ]
    against = local.get("against") or {}
    if guided:
        share = _mean(stats, "guided")
        if math.isfinite(share):
            lines += [
                "",
                f"The classifier grew the mask in {100 * share:.0f} % of lesion studies; a "
                "mask that depends on the model being explained is reported apart.",
            ]
        for b, a in against.items():
            lines += [
                "",
                f"Against the mask-only `{b}` ({a['mean']:.3f}) on relevance mass the guided "
                f"mask is **{a['verdict']}** (gain {a['gain']:+.3f} [{a['lo']:+.3f}, "
                f"{a['hi']:+.3f}]).",
            ]
        return lines
    abl = [b for b in against if b != "vae-guided"]
    if abl:
        lines += [
            "",
            "Same mask, other fillings (relevance mass, paired against the inpainter):",
            "",
        ]
        for b in abl:
            a = against[b]
            lines.append(
                f"- `{b}` {a['mean']:.3f}: the inpainter's infill is **{a['verdict']}** "
                f"(gain {a['gain']:+.3f} [{a['lo']:+.3f}, {a['hi']:+.3f}])."
            )
    cur = against.get("vae-guided")
    if cur:
        wins = cur["verdict"] == "better"
        lines += [
            "",
            f"Against the current default `vae-guided` ({cur['mean']:.3f}) on relevance mass the "
            f"local counterfactual is **{cur['verdict']}** (gain {cur['gain']:+.3f} "
            f"[{cur['lo']:+.3f}, {cur['hi']:+.3f}]): "
            + (
                f"`{name}` wins (the rule for replacing the default)."
                if wins
                else "it does not win (the rule for replacing the default)."
            ),
        ]
    return lines


def verdict_lines(summary: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """Markdown lines of the verdict section."""
    verdicts = summary.get("verdicts") or {}
    if not verdicts or not any(verdicts.values()):
        return [
            "No verdict: the run needs at least one classic (zero, blur, noise) and one VAE "
            "baseline measured with IG, SmoothGrad or Split IG."
        ]
    lines: list[str] = []
    primary = "ig" if verdicts.get("ig") else next(m for m, v in verdicts.items() if v)
    items = verdicts[primary]
    loc = [v for v in items if v["group"] == "localisation"]
    faith = [v for v in items if v["group"] in ("faithfulness", "robustness")]
    n = len(summary.get("studies", []))
    lines.append(
        f"With {_NAMES.get(primary, primary)} on {n} lesion "
        f"stud{'y' if n == 1 else 'ies'}, the VAE counterfactuals "
        f"**{_PHRASES[overall(loc)]}** the classic baselines (zero, blur, noise) on localisation "
        f"and **{_PHRASES[overall(faith)]}** them on faithfulness and robustness (a metric "
        "counts as won or lost only where the 95 % CI of the paired per-study gain excludes "
        "zero):"
    )
    lines.append("")
    lines += [_metric_line(v) for v in items]
    others = [m for m in verdicts if m != primary and verdicts[m]]
    if others:
        lines.append("")
        for m in others:
            v = verdicts[m]
            counts = {k: sum(i["verdict"] == k for i in v) for k in ("better", "worse")}
            lines.append(
                f"- {_NAMES.get(m, m)}: VAE better on {counts['better']}, worse on "
                f"{counts['worse']}, no clear difference on "
                f"{len(v) - counts['better'] - counts['worse']} of {len(v)} metrics "
                f"(localisation: {overall([i for i in v if i['group'] == 'localisation'])})."
            )
    diag = _diagnostics(summary, cfg)
    if diag:
        lines += ["", "What the counterfactuals are (automatic diagnostics):", "", *diag]
    local = local_lines(summary)
    if local:
        lines += ["", "### The local counterfactual", "", *local]
    guided = local_lines(summary, "local_guided")
    if guided:
        lines += [
            "",
            "### The classifier-guided local counterfactual (reported apart)",
            "",
            *guided,
        ]
    return lines
