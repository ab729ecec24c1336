"""Smoke test of benchmarks/bench_ig.py on a tiny model: it runs, and its numbers hang together.

The benchmark is run as a script in a fresh interpreter, as users run it: its workers are
forked from the driver, which must not have done any torch work before (pytest's process has).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_ig.py"


def test_bench_ig_tiny_run_reports_consistent_numbers(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "ig.json", tmp_path / "ig.md"
    n_steps, cap = 4, 256 * 2**20
    options = (
        f"--model tiny --sizes 16 --n-steps {n_steps} --caps 256MB none --randomize-norm "
        f"--rounds 2 --threads 1 --quiet"
    )
    cmd = [sys.executable, str(SCRIPT), *options.split(), "--json", str(out_json)]
    cmd += ["--markdown", str(out_md)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "speed-up" in proc.stdout  # the printed table

    result = json.loads(out_json.read_text())
    assert result["machine"]["torch"] and result["machine"]["cpu_count"] >= 1
    assert result["settings"]["n_steps"] == n_steps and result["settings"]["device"] == "cpu"
    rows = result["rows"]
    assert [(r["size"], r["cap_bytes"], r["amp"]) for r in rows] == [
        (16, cap, "none"),
        (16, None, "none"),
    ]
    for r in rows:
        captum, med, raw = r["captum"], r["medattr"], r["raw"]
        # two timed, interleaved rounds per configuration, each a positive finite time
        for part in (captum, med):
            assert len(part["seconds"]) == 2
            assert all(0 < s < 300 for s in part["seconds"])
            assert part["peak_bytes"] >= part["peak_increment_bytes"] > 0
        # both libraries explain the same model, input and class
        assert captum["target"] == med["target"]
        assert math.isclose(captum["f_input"], med["f_input"], rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(captum["f_baseline"], med["f_baseline"], rel_tol=1e-5, abs_tol=1e-6)
        # same quadrature in float32: the same attributions, hence the same completeness gap
        assert r["attribution_max_rel_diff"] < 1e-4
        df = abs(med["f_input"] - med["f_baseline"])
        assert abs(captum["delta"] - med["delta"]) <= 1e-4 * max(df, 1e-6)
        assert med["relative_delta"] > 1e-4  # --randomize-norm: the path is not linear
        # medattr evaluated every path point exactly once, in the chunks it reports
        assert med["n_evaluations"] == n_steps
        assert sum(size * count for size, count in med["chunk_runs"]) == n_steps
        # raw cost at the planner's main batch, and the ratios derived from the same rounds
        assert raw["batch"] in {size for size, _ in med["chunk_runs"]}
        assert len(raw["per_point_seconds"]) == 2 and raw["per_point_seconds_median"] > 0
        expected_overhead = [
            m / (n_steps * p) for m, p in zip(med["seconds"], raw["per_point_seconds"], strict=True)
        ]
        assert r["overhead"] == expected_overhead
        assert r["speedup_cpu_time_median"] > 0 and r["overhead_cpu_time_median"] > 0
        assert r["speedup"] == [
            c / m for c, m in zip(captum["seconds"], med["seconds"], strict=True)
        ]
    # Captum at the finite cap uses the largest measured batch within it; 'none' is Captum's
    # default of all steps in one batch
    fitting = [
        e["internal_batch_size"]
        for e in result["captum_ladder"]
        if e["internal_batch_size"] is not None and e.get("peak_metric_bytes", cap + 1) <= cap
    ]
    assert rows[0]["captum"]["internal_batch_size"] == max(fitting)
    assert rows[0]["captum"]["peak_metric_bytes"] <= cap
    assert rows[1]["captum"]["internal_batch_size"] is None
    # off the GPU the targets are reported, but not binding
    assert result["targets"] and not any(t["binding"] for t in result["targets"])

    md = out_md.read_text()
    assert md.startswith("### CPU") and "| size | cap |" in md
    assert result["machine"]["cpu_model"] in md
