"""Benchmark: gradient evaluations that Integrated Gradients needs for a 1 % completeness error,
fixed Gauss-Legendre rules against the adaptive rule (``medattr.attribution.adaptive``).

For every study (a generated lesion study, a trained model, a baseline):

* **oracle**: the smallest ``n_steps`` of Gauss-Legendre whose completeness error
  ``|sum(phi) - (f(x) - f(x'))|`` is within ``rtol * |f(x) - f(x')|``, found by sweeping
  ``n = 1, 2, 3, ...`` (which a user cannot do: it needs the answer for every ``n``);
* **Captum's default**, 50-point Gauss-Legendre, and its error;
* **adaptive**: the evaluations it spent, the error it reached, whether it converged.

Over all studies: the smallest fixed ``n`` that meets the tolerance on *every* study (scanned
over every integer from the largest oracle up, each candidate stopped at the first study that
fails it), the total evaluations of each approach, and the two ratios the issue asks for.

Models: the shipped brain classifier ``builtin:mni`` with a VAE-guided counterfactual
(``builtin:mni-vae``) and with a 10 mm blur, the shipped phantom classifier with blur, and
MONAI DenseNet121 with random batch-norm statistics (``bench_ig.py --randomize-norm``) on
generated torso phantoms with a zero baseline. Target: the lesion logit (DenseNet: the logit
that moves most). The studies come from a seed block of their own (see ``_steps_cases.py``).

Examples
--------
CPU preset (about 15 minutes on 2 idle cores; longer on a shared machine)::

    python benchmarks/bench_steps.py --json steps.json --markdown steps.md

GPU::

    python benchmarks/bench_steps.py --preset gpu --device cuda --json gpu.json --markdown gpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _ig_pool import load_average, machine_info
from _steps_cases import (
    STEPS_SEED_BASE,
    VALIDATION_SEED_BASE,
    Case,
    build_cases,
    gl_error,
    interleaved_timing,
    run_adaptive,
)

PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"mni": 3, "phantom": 3, "densenet": 1, "densenet_size": 32, "n_max": 128},
    "gpu": {"mni": 10, "phantom": 10, "densenet": 5, "densenet_size": 96, "n_max": 256},
    "quick": {"mni": 0, "phantom": 1, "densenet": 1, "densenet_size": 16, "n_max": 32},
}


def log(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def oracle(case: Case, rtol: float, n_max: int) -> int | None:
    """The smallest ``n`` whose Gauss-Legendre rule meets ``rtol`` on ``case`` (None: > n_max)."""
    for n in range(1, n_max + 1):
        if abs(gl_error(case, n)) <= rtol:
            return n
    return None


def common_count(cases: list[Case], start: int, rtol: float, n_max: int) -> int | None:
    """The smallest ``n >= start`` meeting ``rtol`` on every case (None: none up to n_max).

    Each candidate is tried first on the case that failed the previous one, then on the others
    in order, and abandoned at the first failure (so a candidate usually costs one case).
    """
    order = list(range(len(cases)))
    for n in range(start, n_max + 1):
        for k, i in enumerate(order):
            if abs(gl_error(cases[i], n)) > rtol:
                order.insert(0, order.pop(k))
                break
        else:
            return n
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    machine = machine_info()
    machine["torch_threads"] = torch.get_num_threads()
    if args.device.startswith("cuda"):
        machine["gpu_name"] = torch.cuda.get_device_name(args.device)
    cases = build_cases(args)
    log(args, f"{len(cases)} studies built in {time.perf_counter() - t0:.0f} s")
    if args.adaptive_only:
        return compare_rules(args, cases, machine, t0)
    rows = []
    for c in cases:
        ts = time.perf_counter()
        n_min = oracle(c, args.rtol, args.n_max)
        e16 = gl_error(c, 16)
        t50 = None if 50 in c.gl else time.perf_counter()
        e50 = gl_error(c, 50)
        gl50_s = None if t50 is None else round(time.perf_counter() - t50, 2)
        sweep_s = time.perf_counter() - ts
        adaptive = {
            r: run_adaptive(c, r, args.rtol, args.max_steps, args.round_points) for r in args.rules
        }
        a = adaptive[args.rules[0]]
        log(
            args,
            f"{c.id}: df {c.span:+.3f}, oracle {n_min}, GL-50 {100 * e50:+.2f} %, "
            f"adaptive {a['evaluations']} evals {100 * a['relative_error']:+.2f} %",
        )
        rows.append(
            {
                "id": c.id,
                "model": c.model_name,
                "baseline": c.baseline_name,
                "seed": c.seed,
                "target": c.target,
                "f_input": c.f_input,
                "f_baseline": c.f_baseline,
                "span": c.span,
                "baseline_info": c.info,
                "oracle_n": n_min,
                "gl16_relative_error": e16,
                "captum_default_relative_error": e50,
                "adaptive": adaptive,
                "sweep_seconds": round(sweep_s, 2),
                "captum_default_seconds": gl50_s,
                **_timing(args, c),
            }
        )
    firsts = [r["oracle_n"] for r in rows]
    start = max((n for n in firsts if n is not None), default=1)
    n_common = None if None in firsts else common_count(cases, start, args.rtol, args.n_max)
    for r, c in zip(rows, cases, strict=True):
        r["gl_relative_errors"] = {str(n): e for n, e in sorted(c.gl.items())}
        r["gl_evaluations_spent"] = c.gl_evaluations
    totals = summarise(rows, n_common, args)
    return _envelope(args, machine, rows, totals, t0)


def _envelope(
    args: argparse.Namespace,
    machine: dict[str, Any],
    rows: list[dict[str, Any]],
    totals: dict[str, Any],
    t0: float,
) -> dict[str, Any]:
    """A run's result: the machine (with its load at the end), settings, rows, totals, wall."""
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "markdown", "quiet")}
    machine["load_end"] = load_average()
    return {
        "machine": machine,
        "settings": settings,
        "rows": rows,
        "totals": totals,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }


def _timing(args: argparse.Namespace, case: Case) -> dict[str, Any]:
    if not args.timing_rounds:
        return {}
    return {
        "timing": interleaved_timing(
            case, list(args.rules), args.timing_rounds, args.rtol, args.round_points
        )
    }


def timing_table(result: dict[str, Any]) -> str:
    """Medians of interleaved wall-time measurements (``--timing-rounds``)."""
    rules = result["settings"]["rules"]
    n = result["settings"]["timing_rounds"]
    head = ["study", f"GL-50 s (median of {n})"]
    head += [f"{r}: evals, s (median of {n})" for r in rules]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["rows"]:
        med = row["timing"]["median"]
        cells = [row["id"], f"{med['gl50']:.2f}"]
        cells += [f"{row['adaptive'][r]['evaluations']}, {med[r]:.2f}" for r in rules]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def compare_rules(
    args: argparse.Namespace, cases: list[Case], machine: dict[str, Any], t0: float
) -> dict[str, Any]:
    """Adaptive rules only (no sweeps): evaluations, rounds and errors per study and in total."""
    rows = []
    for c in cases:
        adaptive = {
            r: run_adaptive(c, r, args.rtol, args.max_steps, args.round_points) for r in args.rules
        }
        log(
            args,
            f"{c.id}: "
            + ", ".join(f"{r} {a['evaluations']}/{a['rounds']}" for r, a in adaptive.items()),
        )
        rows.append(
            {
                "id": c.id,
                "model": c.model_name,
                "baseline": c.baseline_name,
                "seed": c.seed,
                "span": c.span,
                "adaptive": adaptive,
                **_timing(args, c),
            }
        )
    totals = {
        "studies": len(rows),
        "adaptive_totals": {
            r: sum(x["adaptive"][r]["evaluations"] for x in rows) for r in args.rules
        },
        "adaptive_rounds": {r: sum(x["adaptive"][r]["rounds"] for x in rows) for r in args.rules},
        "adaptive_converged": {
            r: sum(x["adaptive"][r]["converged"] for x in rows) for r in args.rules
        },
    }
    return _envelope(args, machine, rows, totals, t0)


def rules_table(result: dict[str, Any]) -> str:
    rules = result["settings"]["rules"]
    head = ["study", "f(x) − f(x′)", *(f"{r}: evals / rounds / error" for r in rules)]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["rows"]:
        cells = [row["id"], f"{row['span']:+.3f}"]
        for r in rules:
            a = row["adaptive"][r]
            cells.append(f"{a['evaluations']} / {a['rounds']} / {_pct(a['relative_error'])}")
        out.append("| " + " | ".join(cells) + " |")
    t = result["totals"]
    cells = ["**total**", ""]
    cells += [
        f"{t['adaptive_totals'][r]} / {t['adaptive_rounds'][r]} / "
        f"{t['adaptive_converged'][r]} converged"
        for r in rules
    ]
    out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def summarise(rows: list[dict[str, Any]], n_common: int | None, args: argparse.Namespace) -> dict:
    """Totals and the issue's targets (for the first adaptive rule)."""
    rule = args.rules[0]
    s = len(rows)
    oracle_total = sum(r["oracle_n"] or args.n_max for r in rows)
    adaptive_total = sum(r["adaptive"][rule]["evaluations"] for r in rows)
    common_total = (n_common or args.n_max) * s
    out: dict[str, Any] = {
        "studies": s,
        "rule": rule,
        "oracle_total": oracle_total,
        "oracle_all_found": all(r["oracle_n"] is not None for r in rows),
        "n_common": n_common,
        "n_common_total": common_total,
        "captum_default_total": 50 * s,
        "captum_default_meets": sum(
            abs(r["captum_default_relative_error"]) <= args.rtol for r in rows
        ),
        "adaptive_totals": {
            k: sum(r["adaptive"][k]["evaluations"] for r in rows) for k in args.rules
        },
        "adaptive_converged": sum(r["adaptive"][rule]["converged"] for r in rows),
        "ratio_to_oracle": adaptive_total / oracle_total,
        "ratio_to_common": adaptive_total / common_total,
    }
    within = all(
        abs(r["adaptive"][rule]["relative_error"]) <= args.rtol
        or not r["adaptive"][rule]["converged"]
        for r in rows
    )
    out["targets"] = [
        {
            "description": f"adaptive meets {100 * args.rtol:g} % on every study (or says it could "
            f"not within max_steps)",
            "value": f"{out['adaptive_converged']}/{s} "
            "converged, every reported error is the one reached",
            "passed": within,
        },
        {
            "description": "adaptive total <= 1.5 x sum of per-study oracle minima",
            "value": f"{adaptive_total} / {oracle_total} = {out['ratio_to_oracle']:.2f}"
            + ("" if out["oracle_all_found"] else " (an oracle was above n_max: bound)"),
            "passed": out["ratio_to_oracle"] <= 1.5,
        },
        {
            "description": "adaptive total <= 0.5 x (smallest fixed n meeting it on every study) x "
            "studies",
            "value": f"{adaptive_total} / ({n_common or f'>{args.n_max}'} x {s}) = "
            f"{out['ratio_to_common']:.2f}",
            "passed": out["ratio_to_common"] <= 0.5,
        },
    ]
    return out


# ---------------------------------------------------------------------------- reporting
def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:+.2f} %"


def machine_lines(result: dict[str, Any]) -> list[str]:
    m, s = result["machine"], result["settings"]
    cpu = f"{m.get('cpu_model')}, {m.get('cpu_count')} logical cores"
    dev = f"{m['gpu_name']}; CPU {cpu}" if m.get("gpu_name") else cpu
    return [
        f"device: {s['device']} ({dev}), torch threads {m.get('torch_threads')}, load average "
        f"{m.get('load_start')} -> {m.get('load_end')}",
        f"torch {m.get('torch')}, MONAI {m.get('monai')}, medattr {m.get('medattr')}, Python "
        f"{m.get('python')}; wall time {result['wall_seconds']:.0f} s",
        f"rtol {s['rtol']}, adaptive max_steps {s['max_steps']}, rules {', '.join(s['rules'])}, "
        f"round_points {s.get('round_points', 1)}; "
        f"sweeps up to n = {s['n_max']}; study seeds from {s['seed_base']}"
        + (" (validation block)" if s["seed_base"] == VALIDATION_SEED_BASE else ""),
    ]


def table(result: dict[str, Any], markdown: bool = True) -> str:
    rules = result["settings"]["rules"]
    head = [
        "study",
        "model",
        "baseline",
        "f(x) − f(x′)",
        "oracle n",
        "GL-16 error",
        "Captum default (GL-50) error",
    ]
    for r in rules:
        head += [f"{r}: evals", f"{r}: error", f"{r}: rounds"]
    lines = []
    for row in result["rows"]:
        cells = [
            row["id"],
            row["model"],
            row["baseline"],
            f"{row['span']:+.3f}",
            str(row["oracle_n"] or f">{result['settings']['n_max']}"),
            _pct(row["gl16_relative_error"]),
            _pct(row["captum_default_relative_error"]),
        ]
        for r in rules:
            a = row["adaptive"][r]
            cells += [
                str(a["evaluations"]) + ("" if a["converged"] else " (not converged)"),
                _pct(a["relative_error"]),
                str(a["rounds"]),
            ]
        lines.append(cells)
    t = result["totals"]
    total = [
        "**total**",
        "",
        "",
        "",
        f"**{t['oracle_total']}**",
        "",
        f"{t['captum_default_total']} ({t['captum_default_meets']}/{t['studies']} meet)",
    ]
    for r in rules:
        total += [f"**{t['adaptive_totals'][r]}**", "", ""]
    lines.append(total)
    if not markdown:
        return "\n".join(" | ".join(c) for c in [head, *lines])
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(c) + " |" for c in lines]
    return "\n".join(out)


def time_table(result: dict[str, Any]) -> str:
    """Wall time of GL-50 and of each adaptive rule, and how much the panels' errors cancel."""
    rules = result["settings"]["rules"]
    head = ["study", "GL-50 s", *(f"{r} s" for r in rules), f"{rules[0]}: Σ\\|panel error\\|"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in result["rows"]:
        t50 = row["captum_default_seconds"]
        cells = [row["id"], "—" if t50 is None else f"{t50:.1f}"]
        cells += [f"{row['adaptive'][r]['seconds']:.1f}" for r in rules]
        cells.append(f"{100 * row['adaptive'][rules[0]]['local_relative_error']:.1f} %")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def to_markdown(result: dict[str, Any]) -> str:
    t = result["totals"]
    lines = [*(f"- {ln}" for ln in machine_lines(result)), "", table(result), ""]
    lines.append(
        f"Smallest fixed n meeting {100 * result['settings']['rtol']:g} % on every study: "
        f"**{t['n_common'] or '> ' + str(result['settings']['n_max'])}** "
        f"({t['n_common_total']} evaluations over {t['studies']} studies)."
    )
    lines += [
        "",
        "Wall time (context only, see the load average) and the sum of the absolute errors of the "
        "final panels relative to |f(x) − f(x′)| (the completeness error is their signed sum):",
        "",
        time_table(result),
        "",
        *([timing_table(result), ""] if result["settings"]["timing_rounds"] else []),
        "Targets:",
        "",
    ]
    for g in t["targets"]:
        lines.append(f"- [{'PASS' if g['passed'] else 'FAIL'}] {g['description']}: {g['value']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--preset", choices=sorted(PRESETS), default="cpu", help="study counts and sizes (cpu)")
    add("--device", default="cpu", help="cpu (default) or cuda[:N]")
    add("--mni", type=int, help="brain lesion studies (each with every --mni-baselines)")
    add(
        "--mni-baselines", nargs="+", default=["vae-guided", "blur"], choices=("vae-guided", "blur")
    )
    add("--phantom", type=int, help="phantom lesion studies (blur baseline)")
    add("--densenet", type=int, help="DenseNet121 (random batch-norm statistics) studies")
    add("--densenet-size", type=int, help="DenseNet input edge in voxels")
    add("--densenet-model", default="densenet121", choices=("densenet121", "tiny"))
    add("--rtol", type=float, default=0.01, help="completeness tolerance (0.01 = 1 %%)")
    add("--max-steps", type=int, default=512, help="adaptive: most evaluations per study")
    add(
        "--rules",
        nargs="+",
        default=["trapezoid", "simpson"],
        choices=("trapezoid", "simpson"),
        help="adaptive rules (the first is the one the targets are checked for)",
    )
    add("--round-points", type=int, default=1, help="adaptive: least new points per round")
    add("--n-max", type=int, help="largest fixed n swept")
    add("--blur-mm", type=float, default=10.0)
    add("--cf-threshold", type=float, default=0.2, help="VAE-guided: p(disease) to stop at")
    add("--cf-steps", type=int, default=60, help="VAE-guided: most latent steps")
    add("--seed", type=int, default=0, help="DenseNet weights")
    add(
        "--seed-base",
        type=int,
        default=STEPS_SEED_BASE,
        help=f"first study seed (default {STEPS_SEED_BASE}, the test block; "
        f"{VALIDATION_SEED_BASE} is the validation block for choosing defaults)",
    )
    add(
        "--timing-rounds",
        type=int,
        default=0,
        help="also time GL-50 and each adaptive rule this many times, in turns (0: no)",
    )
    add(
        "--adaptive-only",
        action="store_true",
        help="skip the Gauss-Legendre sweeps (no oracle, no targets): compare adaptive rules",
    )
    add("--threads", type=int, help="torch threads")
    add("--json", help="write every number here")
    add("--markdown", help="write the table (for docs/performance.md) here")
    add("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    for k, v in PRESETS[args.preset].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit(f"bench_steps.py: --device {args.device} but CUDA is not available")
    if args.mni + args.phantom + args.densenet < 1:
        raise SystemExit("bench_steps.py: no studies (use --mni, --phantom or --densenet)")
    result = run(args)
    from medattr._fs import atomic_write_text

    lines = machine_lines(result)
    if args.adaptive_only:
        text = "\n".join(f"- {ln}" for ln in lines) + "\n\n" + rules_table(result) + "\n"
        if args.timing_rounds:
            text += "\n" + timing_table(result) + "\n"
        print(text)
    else:
        print("\n".join(lines), end="\n\n")
        print(table(result, markdown=False), end="\n\n")
        for g in result["totals"]["targets"]:
            print(f"[{'PASS' if g['passed'] else 'FAIL'}] {g['description']}: {g['value']}")
        text = to_markdown(result)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return result


if __name__ == "__main__":
    main()
