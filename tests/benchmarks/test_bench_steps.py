"""Smoke test of benchmarks/bench_steps.py: it runs, and its numbers hang together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_steps.py"


@pytest.mark.slow
def test_bench_steps_quick_run_reports_consistent_numbers(tmp_path: Path) -> None:
    out_json, out_md = tmp_path / "steps.json", tmp_path / "steps.md"
    options = "--preset quick --densenet-model tiny --rules trapezoid simpson --threads 1 --quiet"
    cmd = [sys.executable, str(SCRIPT), *options.split(), "--json", str(out_json)]
    cmd += ["--markdown", str(out_md)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    result = json.loads(out_json.read_text())
    settings, rows, totals = result["settings"], result["rows"], result["totals"]
    rtol, n_max = settings["rtol"], settings["n_max"]
    assert result["machine"]["cpu_count"] >= 1 and len(rows) == 2
    assert {r["model"] for r in rows} == {"builtin:phantom", "tiny-rn"}
    for r in rows:
        assert r["seed"] >= 4_200_000
        errors = {int(n): e for n, e in r["gl_relative_errors"].items()}
        n_min = r["oracle_n"]
        # the oracle is the first n of the sweep that meets the tolerance
        assert n_min is not None and abs(errors[n_min]) <= rtol
        assert all(abs(errors[n]) > rtol for n in range(1, n_min))
        assert errors[50] == r["captum_default_relative_error"]
        for rule, a in r["adaptive"].items():
            assert rule in ("trapezoid", "simpson")
            # the reported error is the one reached by the returned attribution
            assert abs(a["error"] - a["error_recomputed"]) <= 1e-6 * max(1.0, abs(r["span"]))
            assert a["relative_error"] * r["span"] == pytest.approx(a["error"])
            assert not a["converged"] or abs(a["relative_error"]) <= rtol
            assert 2 <= a["evaluations"] == len(a["alphas"]) <= settings["max_steps"]
    n_common = totals["n_common"]
    assert n_common is not None and n_common <= n_max
    assert all(abs(r["gl_relative_errors"][str(n_common)]) <= rtol for r in rows)
    assert n_common >= max(r["oracle_n"] for r in rows)
    assert totals["oracle_total"] == sum(r["oracle_n"] for r in rows)
    adaptive = sum(r["adaptive"]["trapezoid"]["evaluations"] for r in rows)
    assert totals["adaptive_totals"]["trapezoid"] == adaptive
    assert totals["ratio_to_oracle"] == pytest.approx(adaptive / totals["oracle_total"])
    assert totals["ratio_to_common"] == pytest.approx(adaptive / (n_common * len(rows)))
    md = out_md.read_text()
    assert "| study |" in md and "Targets:" in md and "load average" in md


@pytest.mark.slow
def test_bench_steps_compares_rules_on_the_validation_block(tmp_path: Path) -> None:
    out_json = tmp_path / "rules.json"
    options = "--preset quick --densenet-model tiny --adaptive-only --seed-base 4150000 --quiet"
    cmd = [sys.executable, str(SCRIPT), *options.split(), "--json", str(out_json)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validation block" in proc.stdout
    result = json.loads(out_json.read_text())
    rows, totals = result["rows"], result["totals"]
    assert all(4_150_000 <= r["seed"] < 4_200_000 for r in rows)
    for rule in ("trapezoid", "simpson"):
        assert totals["adaptive_totals"][rule] == sum(
            r["adaptive"][rule]["evaluations"] for r in rows
        )
        assert totals["adaptive_rounds"][rule] == sum(r["adaptive"][rule]["rounds"] for r in rows)
    assert "oracle_n" not in rows[0]  # no sweeps in this mode
