"""Tables for ``bench_ig.py``: plain text for the terminal, Markdown for docs/performance.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "evaluate_targets",
    "format_bytes",
    "ladder_table",
    "machine_lines",
    "results_table",
    "targets_lines",
    "to_markdown",
]

OVERHEAD_TARGET = 1.10
"""medattr's wall time may exceed n_steps x the raw per-point cost by at most 10 %."""
SPEEDUP_TARGET = 1.5
"""medattr at least 1.5x faster than Captum ..."""
SPEEDUP_CAP_LIMIT = 8 * 2**30
"""... at every memory cap up to 8 GiB ..."""
BF16_DELTA_LIMIT = 0.01
"""... where reduced precision counts only if |delta| stays within 1 % of |f(x) - f(x')|."""


def format_bytes(n: float | None) -> str:
    """``1610612736 -> '1.50 GiB'``; ``None -> '-'``."""
    if n is None:
        return "-"
    n = float(n)
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def _s(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}×"


def _pct(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{100.0 * v:.2f} %" if 100.0 * v >= 0.01 or v == 0 else f"{100.0 * v:.1e} %"


def _sci(v: float | None) -> str:
    return "-" if v is None else f"{v:.1e}"


def _chunks(runs: Sequence[Sequence[int]] | None) -> str:
    if not runs:
        return "-"
    return " ".join(f"{s}×{c}" if c > 1 else f"{s}" for s, c in runs)


RESULT_COLUMNS = (
    "size",
    "cap",
    "amp",
    "Captum ibs",
    "Captum peak",
    "Captum s",
    "medattr chunks",
    "medattr peak",
    "medattr s",
    "raw s/pt @b",
    "overhead",
    "speed-up",
    "|δ|/|Δf| Captum",
    "|δ|/|Δf| medattr",
    "max|Δφ|/max|φ|",
)


def _result_cells(row: dict[str, Any]) -> list[str]:
    cap = row["captum"]
    med = row["medattr"]
    raw = row.get("raw") or {}
    cap_ibs = cap.get("internal_batch_size")
    if cap.get("error"):
        cap_cells = [cap.get("error_short", "error"), "-", "-"]
    else:
        cap_cells = [
            "all" if cap_ibs is None else str(cap_ibs),
            format_bytes(cap.get("peak_metric_bytes")),
            _s(cap.get("seconds_median")),
        ]
    if med.get("error"):
        med_cells = ["-", med.get("error_short", "error"), "-"]
    else:
        med_cells = [
            _chunks(med.get("chunk_runs")),
            format_bytes(med.get("peak_metric_bytes")),
            _s(med.get("seconds_median")),
        ]
    raw_cell = "-"
    if raw.get("per_point_seconds_median") is not None:
        raw_cell = f"{raw['per_point_seconds_median']:.4f} @{raw['batch']}"
    return [
        str(row["size"]),
        row["cap_label"],
        row["amp"],
        *cap_cells,
        *med_cells,
        raw_cell,
        _ratio(row.get("overhead_median")),
        _ratio(row.get("speedup_median")),
        _pct(cap.get("relative_delta")),
        _pct(med.get("relative_delta")),
        _sci(row.get("attribution_max_rel_diff")),
    ]


def _render(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:  # a literal "|" inside a cell must be escaped

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        lines = [line(header), "|" + "|".join("---" for _ in header) + "|"]
        lines += [line(r) for r in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), *(fmt.format(*r) for r in rows)])


CPU_TIME_COLUMNS = ("overhead (CPU time)", "speed-up (CPU time)")


def results_table(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """One line per (size, cap, precision): Captum at the cap against medattr at the cap.

    CPU runs add the two ratios computed from process CPU time instead of wall time.
    """
    cells = [_result_cells(r) for r in rows]
    header: tuple[str, ...] = RESULT_COLUMNS
    if any("speedup_cpu_time_median" in r for r in rows):
        header = RESULT_COLUMNS[:12] + CPU_TIME_COLUMNS + RESULT_COLUMNS[12:]
        extra = [
            [_ratio(r.get("overhead_cpu_time_median")), _ratio(r.get("speedup_cpu_time_median"))]
            for r in rows
        ]
        cells = [[*c[:12], *e, *c[12:]] for c, e in zip(cells, extra, strict=True)]
    return _render(header, cells, markdown)


def ladder_table(ladder: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    """Captum's memory/time trade-off over ``internal_batch_size`` (one calibration run each)."""
    header = ("size", "Captum ibs", "peak", "time s (1 run)", "status")
    rows = []
    for e in ladder:
        ibs = "all" if e["internal_batch_size"] is None else str(e["internal_batch_size"])
        if e.get("error"):
            rows.append([str(e["size"]), ibs, "-", "-", e.get("error_short", "error")])
        else:
            rows.append(
                [str(e["size"]), ibs, format_bytes(e["peak_metric_bytes"]), _s(e["seconds"]), "ok"]
            )
    return _render(header, rows, markdown)


def machine_lines(machine: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """Human-readable description of where and how the numbers were taken."""
    dev = machine.get("gpu_name") or machine.get("cpu_model", "unknown CPU")
    lines = [
        f"device: {settings['device']} ({dev}); CPU: {machine.get('cpu_model')}, "
        f"{machine.get('cpu_count')} logical cores, torch threads {machine.get('torch_threads')}",
        f"torch {machine.get('torch')}, MONAI {machine.get('monai')}, "
        f"Captum {machine.get('captum')}, medattr {machine.get('medattr')}, "
        f"Python {machine.get('python')}",
        f"model {settings['model']} (random weights, seed {settings['seed']}"
        f"{', random batch-norm statistics' if settings.get('randomize_norm') else ''}), n_steps "
        f"{settings['n_steps']}, method {settings['method']}, {settings['rounds']} interleaved "
        f"rounds (medians), load average {machine.get('load_start')} -> {machine.get('load_end')}",
    ]
    if machine.get("gpu_name"):
        lines.append(
            f"GPU: {machine['gpu_name']}, {format_bytes(machine.get('gpu_total_bytes'))}, "
            f"CUDA {machine.get('cuda_version')}"
        )
    return lines


def targets_lines(targets: Sequence[dict[str, Any]]) -> list[str]:
    """One line per target check, marked PASS/FAIL (informational off the GPU)."""
    out = []
    for t in targets:
        verdict = "PASS" if t["passed"] else "FAIL"
        if not t.get("binding", True):
            verdict += " (informational: the targets are stated for the GPU)"
        out.append(f"[{verdict}] {t['description']}: {t['value']}")
    return out


def evaluate_targets(rows: Sequence[dict[str, Any]], binding: bool) -> list[dict[str, Any]]:
    """Check the rows against the stated targets (``binding``: measured on the GPU)."""
    out = []
    for r in rows:
        if r.get("overhead_median") is not None:
            out.append(
                {
                    "description": f"{r['size']}^3 cap {r['cap_label']} {r['amp']}: medattr "
                    f"wall time <= {OVERHEAD_TARGET} x n_steps x raw per-point cost",
                    "value": f"{r['overhead_median']:.3f}",
                    "passed": r["overhead_median"] <= OVERHEAD_TARGET,
                    "binding": binding,
                }
            )
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        cap = r["cap_bytes"]
        if cap is None or cap > SPEEDUP_CAP_LIMIT or r.get("speedup_median") is None:
            continue
        rel = r["medattr"].get("relative_delta")
        if r["amp"] != "none" and (rel is None or rel > BF16_DELTA_LIMIT):
            continue
        groups.setdefault((r["size"], cap), []).append(r)
    for (size, _cap), cands in sorted(groups.items()):
        best = max(cands, key=lambda r: r["speedup_median"])
        out.append(
            {
                "description": f"{size}^3 cap {best['cap_label']}: medattr >= {SPEEDUP_TARGET}x "
                f"faster than Captum (best precision with |δ| <= 1 % of |Δf|: {best['amp']})",
                "value": f"{best['speedup_median']:.2f}x",
                "passed": best["speedup_median"] >= SPEEDUP_TARGET,
                "binding": binding,
            }
        )
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The section of docs/performance.md for one run: machine, results, ladder, targets."""
    s = result["settings"]
    m = result["machine"]
    lines = [
        f"### {s['device'].upper()}: {m.get('gpu_name') or m['cpu_model']}",
        "",
        *(f"- {ln}" for ln in machine_lines(m, s)),
        "",
        results_table(result["rows"], markdown=True),
        "",
        "Captum's memory/time ladder (one calibration run each, not a median):",
        "",
        ladder_table(result["captum_ladder"], markdown=True),
        "",
    ]
    if result["targets"]:
        lines += ["Targets:", "", *(f"- {t}" for t in targets_lines(result["targets"])), ""]
    return "\n".join(lines)
