"""The sliding-window benchmark runs and reports what it measured (a small case)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sliding_window.py"


@pytest.mark.slow
def test_small_case_reports_time_and_memory_ratios(tmp_path: Path) -> None:
    out = tmp_path / "sw.json"
    md = tmp_path / "sw.md"
    cmd = [sys.executable, str(SCRIPT), "--shape", "40", "40", "30", "--spacing", "1.5", "1.5"]
    cmd += ["1.5", "--roi", "16", "--net", "small", "--steps", "2", "--raw-batches", "1"]
    cmd += ["--threads", "1", "--json", str(out), "--markdown", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    raw, ours = report["raw"], report["medattr"]
    assert raw["windows_per_point"] == 27  # 40 voxels, 16-voxel windows every 12: 3 x 3 x 3
    assert ours["steps"] == 2 and sum(ours["chunk_sizes"]) == 2
    assert report["time_ratio"] == pytest.approx(
        ours["seconds_per_point"] / raw["raw_seconds_per_point"]
    )
    assert report["memory_ratio"] > 0 and "ratio" in md.read_text()
