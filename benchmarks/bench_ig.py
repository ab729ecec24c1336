"""Benchmark: medattr's Integrated Gradients against Captum's, at equal memory caps.

The model is MONAI's DenseNet121 (3D, one input channel, two classes, seeded random weights,
eval mode) on one cubic CT-like phantom against a zero baseline, with the same ``n_steps`` and
quadrature for both libraries. For every memory cap:

* **Captum** has no memory planner, so it gets the largest ``internal_batch_size`` whose run
  stays under the cap, found by measurement (a ladder of powers of two, then interpolation);
* **medattr** gets ``memory_budget=cap`` and plans its own chunks (optionally under bf16
  autocast, ``--amp bf16``);
* **raw**: one forward and backward of the model at the batch medattr's planner picked,
  divided by that batch: the per-point cost no engine can beat at that batch. The overhead
  factor is ``medattr wall time / (n_steps * raw per-point cost)``.

Each configuration runs in its own worker process (so each memory peak is its own), and the
configurations take turns within every round (interleaved A/B, the order reversed every other
round), so speed ratios are taken pairwise under the same machine load; the tables show
medians over rounds.

The cap is on path-point memory: on CPU the growth of the resident set over the state after
setup (medattr's CPU ``memory_budget`` counts the same thing), on CUDA the total allocated
bytes (medattr's CUDA ``memory_budget`` includes what is allocated already).

Examples
--------
CPU (about ten minutes on two idle cores)::

    python benchmarks/bench_ig.py --json cpu.json --markdown cpu.md

GPU::

    python benchmarks/bench_ig.py --device cuda --sizes 96 128 --json gpu.json --markdown gpu.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

# the checkout's medattr before any installed one, and the helpers beside this script
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _ig_pool import (
    BenchmarkError,
    Worker,
    cap_label,
    load_average,
    machine_info,
    parse_cap,
    short_error,
)
from _ig_report import (
    evaluate_targets,
    ladder_table,
    machine_lines,
    results_table,
    targets_lines,
    to_markdown,
)
from _ig_worker import WorkerSpec

Key = tuple[int | None, str]


class Bench:
    """Runs the whole comparison for the parsed command line ``args``."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.args = args
        self.tmp = tmp
        self.cuda = args.device.startswith("cuda")
        self.ctx = mp.get_context(args.start_method)
        self.workers: list[Worker] = []
        self.ladder: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.device_info: dict[str, Any] = {}

    def log(self, msg: str) -> None:
        if not self.args.quiet:
            print(msg, file=sys.stderr, flush=True)

    def start(self, kind: str, size: int, label: str, **kw: Any) -> Worker:
        a = self.args
        spec = WorkerSpec(
            kind=kind,
            model=a.model,
            size=size,
            n_steps=a.n_steps,
            method=a.method,
            seed=a.seed,
            device=a.device,
            threads=a.threads,
            target=a.target,
            raw_repeats=a.raw_repeats,
            enforce_cap=a.enforce_cap,
            randomize_norm=a.randomize_norm,
            save_dir=self.tmp,
            label=label,
            **kw,
        )
        w = Worker(self.ctx, spec, a.timeout)
        self.workers.append(w)
        if w.error is not None:  # a setup failure (device, model, input) spoils every row
            raise BenchmarkError(f"worker {label} could not start: {w.error['error']}")
        info = {k: v for k, v in w.info.items() if k.startswith(("gpu", "cuda"))}
        self.device_info.update(info, torch_threads=w.info.get("threads"))
        return w

    def metric(self, res: dict[str, Any]) -> int:
        """The number compared with the cap (see the module docstring)."""
        return int(res["peak_bytes"] if self.cuda else res["peak_increment_bytes"])

    # ------------------------------------------------------------------ Captum calibration
    def measure_captum(self, size: int, k: int | None, tried: dict[Any, Any]) -> dict[str, Any]:
        """Run Captum once at ``internal_batch_size=k`` in a new worker (kept in ``tried``)."""
        if k in tried:
            return tried[k][1]
        w = self.start(
            "captum", size, f"captum-{size}-ibs{'all' if k is None else k}", internal_batch_size=k
        )
        res = w.run()
        entry: dict[str, Any] = {"size": size, "internal_batch_size": k}
        if res.get("status") == "error":
            entry.update(error=res["error"], error_short=short_error(res))
            self.log(f"  Captum ibs={k}: {res['error']}")
        else:
            entry.update(
                peak_metric_bytes=self.metric(res),
                seconds=res["seconds"],
                peak_bytes=res["peak_bytes"],
                peak_increment_bytes=res["peak_increment_bytes"],
            )
            self.log(
                f"  Captum ibs={k}: {res['seconds']:.3f} s, "
                f"peak {entry['peak_metric_bytes'] / 2**20:.0f} MiB"
            )
        tried[k] = (w, entry)
        self.ladder.append(entry)
        return entry

    def calibrate_captum(self, size: int) -> dict[int | None, Worker | None]:
        """Per cap, the worker of the largest ``internal_batch_size`` that fits (or None)."""
        caps = self.args.caps
        tried: dict[int | None, tuple[Worker, dict[str, Any]]] = {}

        def fits(k: int | None, cap: int) -> bool:
            e = tried[k][1]
            return "error" not in e and e["peak_metric_bytes"] <= cap

        finite = [c for c in caps if c is not None]
        if finite:
            for k in sorted(self.args.captum_batches or _powers_of_two_upto(self.args.n_steps)):
                self.measure_captum(size, k, tried)
                if not fits(k, max(finite)):  # larger batches need more memory still
                    break
        chosen: dict[int | None, int | str | None] = {}
        for cap in caps:
            if cap is None:  # Captum's default: every step in one batch
                self.measure_captum(size, None, tried)
                chosen[cap] = None
                continue
            sizes = sorted(k for k in tried if k is not None)
            ok = [k for k in sizes if fits(k, cap)]
            if not ok:
                chosen[cap] = "none fits"
                continue
            best = ok[-1]
            misses = [k for k in sizes if k > best and not fits(k, cap)]
            refine = not (self.args.captum_batches or self.args.no_refine)
            for _ in range(3 if refine else 0):  # interpolate between the last fit and a miss
                if not misses or misses[0] - best <= 1:
                    break
                lo, hi = tried[best][1], tried[misses[0]][1]
                slope = (hi.get("peak_metric_bytes", 2 * cap) - lo["peak_metric_bytes"]) / (
                    misses[0] - best
                )
                guess = best + int((cap - lo["peak_metric_bytes"]) / max(slope, 1.0))
                guess = max(best + 1, min(guess, misses[0] - 1))
                self.measure_captum(size, guess, tried)
                if fits(guess, cap):
                    best = guess
                else:
                    misses = [guess]
            chosen[cap] = best
        keep = {k for k in chosen.values() if k != "none fits"}
        for k, (w, _) in tried.items():
            if k not in keep:
                w.close()
        return {cap: None if k == "none fits" else tried[k][0] for cap, k in chosen.items()}

    # ------------------------------------------------------------------ one input size
    def run_size(self, size: int) -> None:
        a = self.args
        self.log(f"size {size}^3: calibrating Captum's internal_batch_size against the caps")
        captum_for = self.calibrate_captum(size)
        med: dict[Key, Worker] = {}
        raw: dict[tuple[int, str], Worker] = {}
        raw_for: dict[Key, Worker | None] = {}
        for cap in a.caps:
            for amp in a.amp:
                precision = None if amp == "none" else amp
                w = med[(cap, amp)] = self.start(
                    "medattr",
                    size,
                    f"medattr-{size}-{cap_label(cap)}-{amp}",
                    cap_bytes=cap,
                    amp=precision,
                )
                res = w.run()  # warm-up: the first call measures the model's footprint
                if res.get("status") != "error":
                    # later calls reuse the measured footprint, so their chunks are the ones
                    # the timed rounds will see
                    res = w.run()
                raw_for[(cap, amp)] = None
                if res.get("status") == "error":
                    self.log(f"  medattr cap={cap_label(cap)} amp={amp}: {res['error']}")
                    continue
                self.log(
                    f"  medattr cap={cap_label(cap)} amp={amp}: chunks {res['chunk_sizes']}, "
                    f"{res['seconds']:.3f} s (warm-up)"
                )
                b = _main_chunk(res["chunk_sizes"])
                if (b, amp) not in raw:
                    raw[(b, amp)] = self.start(
                        "raw", size, f"raw-{size}-b{b}-{amp}", batch=b, amp=precision
                    )
                    raw[(b, amp)].run()  # warm-up
                raw_for[(cap, amp)] = raw[(b, amp)]
        order: list[Worker] = []
        for cap in a.caps:
            for amp in a.amp:
                for w in (captum_for.get(cap), med[(cap, amp)], raw_for.get((cap, amp))):
                    if w is not None and w not in order:
                        order.append(w)
        for w in order:  # from here on, interleaved samples only
            w.samples.clear()
        for r in range(a.rounds):
            self.log(f"  round {r + 1}/{a.rounds} (load {load_average()})")
            for w in order if r % 2 == 0 else order[::-1]:
                w.run()
        for cap in a.caps:
            for amp in a.amp:
                self.rows.append(
                    self.make_row(
                        size,
                        cap,
                        amp,
                        captum_for.get(cap),
                        med[(cap, amp)],
                        raw_for.get((cap, amp)),
                    )
                )
        for w in {*order, *med.values(), *raw.values()}:
            w.close()

    def make_row(
        self, size: int, cap: int | None, amp: str, cw: Worker | None, mw: Worker, rw: Worker | None
    ) -> dict[str, Any]:
        """Medians, pairwise ratios and agreement for one (size, cap, precision)."""
        n = self.args.n_steps
        row: dict[str, Any] = {
            "size": size,
            "cap_bytes": cap,
            "cap_label": cap_label(cap),
            "amp": amp,
            "n_steps": n,
            "raw": None,
        }
        if cw is None:
            row["captum"] = {
                "error": "does not fit the cap even at internal_batch_size=1",
                "error_short": "no fit",
            }
        else:
            row["captum"] = self.summary(cw)
            row["captum"]["internal_batch_size"] = cw.spec.internal_batch_size
        row["medattr"] = self.summary(mw)
        if rw is not None and rw.samples:
            per_point = [s["per_point_seconds"] for s in rw.samples]
            row["raw"] = {
                "batch": rw.spec.batch,
                "per_point_seconds": per_point,
                "per_point_seconds_median": statistics.median(per_point),
                "peak_metric_bytes": max(self.metric(s) for s in rw.samples),
            }
        ms, cs = row["medattr"].get("seconds"), row["captum"].get("seconds")
        if ms and cs and len(ms) == len(cs):
            row["speedup"] = [c / m for c, m in zip(cs, ms, strict=True)]
            row["speedup_median"] = statistics.median(row["speedup"])
        if ms and row["raw"] and len(row["raw"]["per_point_seconds"]) == len(ms):
            pp = row["raw"]["per_point_seconds"]
            row["overhead"] = [m / (n * p) for m, p in zip(ms, pp, strict=True)]
            row["overhead_median"] = statistics.median(row["overhead"])
        if not self.cuda and ms and cs and row["raw"]:  # CPU time: robust to a busy machine
            mc, cc = row["medattr"]["cpu_seconds"], row["captum"]["cpu_seconds"]
            rc = [s["cpu_per_point_seconds"] for s in rw.samples] if rw is not None else []
            row["speedup_cpu_time_median"] = statistics.median(
                c / m for c, m in zip(cc, mc, strict=True)
            )
            if len(rc) == len(mc):
                row["overhead_cpu_time_median"] = statistics.median(
                    m / (n * p) for m, p in zip(mc, rc, strict=True)
                )
        fa, fm = row["captum"].get("attribution_file"), row["medattr"].get("attribution_file")
        if fa and fm:
            import numpy as np

            ca, ma = np.load(fa).astype(np.float64), np.load(fm).astype(np.float64)
            scale = max(float(np.abs(ca).max()), 1e-30)
            row["attribution_max_rel_diff"] = float(np.abs(ca - ma).max()) / scale
        return row

    def summary(self, w: Worker) -> dict[str, Any]:
        """Medians over the rounds, and the numbers that do not vary between runs."""
        if not w.samples:
            err = w.error or {"error": "no successful run"}
            return {"error": err.get("error"), "error_short": short_error(err)}
        s = w.samples
        first = s[0]
        df = abs(first["f_input"] - first["f_baseline"])
        out: dict[str, Any] = {
            "seconds": [x["seconds"] for x in s],
            "seconds_median": statistics.median(x["seconds"] for x in s),
            "cpu_seconds": [x["cpu_seconds"] for x in s],
            "peak_bytes": max(x["peak_bytes"] for x in s),
            "peak_increment_bytes": max(x["peak_increment_bytes"] for x in s),
            "peak_metric_bytes": max(self.metric(x) for x in s),
            "base_bytes": w.info.get("base_bytes"),
            "target": w.info.get("target"),
            "delta": first["delta"],
            "f_input": first["f_input"],
            "f_baseline": first["f_baseline"],
            "relative_delta": abs(first["delta"]) / df if df > 0 else None,
        }
        cap = w.spec.cap_bytes
        if w.spec.kind == "medattr":
            out["within_cap"] = cap is None or out["peak_metric_bytes"] <= cap
            out["chunk_runs"] = _runs(first["chunk_sizes"])
            out["n_evaluations"] = first["n_evaluations"]
            out["oom_retries"] = max(x["oom_retries"] for x in s)
            out["bytes_per_point_estimate"] = first.get("bytes_per_point")
        path = os.path.join(self.tmp, f"{w.spec.label}.npy")
        if os.path.exists(path):
            out["attribution_file"] = path
        return out


def _runs(sizes: list[int]) -> list[list[int]]:
    """``[2, 8, 8, 6] -> [[2, 1], [8, 2], [6, 1]]``."""
    runs: list[list[int]] = []
    for v in sizes:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    return runs


def _main_chunk(sizes: list[int]) -> int:
    """The batch the planner chose: its most frequent chunk (ties: the larger)."""
    return max(set(sizes), key=lambda v: (sizes.count(v), v))


def _powers_of_two_upto(n: int) -> list[int]:
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return [*out, n]


# ---------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--device", default="cpu", help="cpu (default) or cuda[:N]")
    add("--sizes", type=int, nargs="+", help="cube edges (default: 64 on CPU, 96 128 on CUDA)")
    add("--n-steps", type=int, help="path points (default: 16 on CPU, 64 on CUDA)")
    add("--method", default="gausslegendre", help="quadrature for both (default gausslegendre)")
    add(
        "--caps",
        type=parse_cap,
        nargs="+",
        help="memory caps such as 512MB 2GB none (default: 512MB 1GB 2GB on CPU, "
        "2GB 4GB 8GB none on CUDA)",
    )
    add(
        "--amp",
        nargs="+",
        choices=("none", "bf16", "fp16"),
        help="medattr precisions (default: none on CPU, none bf16 on CUDA)",
    )
    add("--rounds", type=int, help="interleaved timed rounds (default 3 on CPU, 5 on CUDA)")
    add("--raw-repeats", type=int, help="raw timings per round (default 1 on CPU, 3 on CUDA)")
    add("--model", default="densenet121", choices=("densenet121", "tiny"))
    add("--seed", type=int, default=0)
    add(
        "--randomize-norm",
        action="store_true",
        help="random batch-norm statistics and biases, so the path is not linear (see docs)",
    )
    add("--target", type=int, help="class to explain (default: the one whose value moves most)")
    add("--threads", type=int, help="torch threads per worker (default: torch's choice)")
    add(
        "--captum-batches",
        type=int,
        nargs="+",
        help="Captum internal_batch_size candidates (default: powers of two, then refined)",
    )
    add("--no-refine", action="store_true", help="keep Captum's batch at a power of two")
    add(
        "--enforce-cap",
        action="store_true",
        help="CUDA: also limit each worker with torch.cuda.set_per_process_memory_fraction",
    )
    add(
        "--start-method",
        choices=("fork", "spawn", "forkserver"),
        help="how workers start (default: fork on CPU, spawn on CUDA)",
    )
    add("--timeout", type=float, default=3600.0, help="seconds to wait for one worker reply")
    add("--json", help="write every number here")
    add("--markdown", help="write the tables (for docs/performance.md) here")
    add("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the device-dependent defaults and check the values."""
    cuda = args.device.startswith("cuda")
    caps = ("2GB", "4GB", "8GB", "none") if cuda else ("512MB", "1GB", "2GB")
    defaults = {
        "sizes": [96, 128] if cuda else [64],
        "n_steps": 64 if cuda else 16,
        "caps": [parse_cap(c) for c in caps],
        "amp": ["none", "bf16"] if cuda else ["none"],
        "rounds": 5 if cuda else 3,
        "raw_repeats": 3 if cuda else 1,
        "start_method": "spawn" if cuda else "fork",
    }
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for name in ("n_steps", "rounds", "raw_repeats"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            raise SystemExit(f"bench_ig.py: {flag} must be >= 1, got {getattr(args, name)}")
    if args.model == "densenet121" and min(args.sizes) < 32:
        raise SystemExit(f"bench_ig.py: DenseNet121 needs at least 32^3 voxels; got {args.sizes}")
    if args.start_method not in mp.get_all_start_methods():
        raise SystemExit(f"bench_ig.py: start method {args.start_method!r} is not available here")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the tables, write ``--json``/``--markdown``; returns the result."""
    args = resolve_args(build_parser().parse_args(argv))
    machine = machine_info()
    tmp = tempfile.mkdtemp(prefix="bench_ig-")
    bench = Bench(args, tmp)
    t0 = time.perf_counter()
    try:
        for size in args.sizes:
            bench.run_size(size)
    except BenchmarkError as exc:
        raise SystemExit(f"bench_ig.py: {exc}") from None
    finally:
        for w in bench.workers:
            w.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for row in bench.rows:  # the temporary files are gone
        for part in ("captum", "medattr"):
            row[part].pop("attribution_file", None)
    machine.update(bench.device_info, load_end=load_average())
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "markdown", "quiet")}
    result = {
        "machine": machine,
        "settings": settings,
        "rows": bench.rows,
        "captum_ladder": bench.ladder,
        "targets": evaluate_targets(bench.rows, bench.cuda),
        "wall_seconds": time.perf_counter() - t0,
    }
    print("\n".join(machine_lines(machine, settings)), end="\n\n")
    print(results_table(result["rows"]), end="\n\n")
    print("Captum ladder (one calibration run each):")
    print(ladder_table(result["captum_ladder"]))
    if result["targets"]:
        print("\n" + "\n".join(targets_lines(result["targets"])))
    from medattr._fs import atomic_write_text

    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, to_markdown(result))
    return result


if __name__ == "__main__":
    main()
