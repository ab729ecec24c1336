"""The quick preset end to end with stand-in models: every row, the report, and resumption."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from medattr.benchmarking import BASELINES, METHODS, read_rows
from medattr.benchmarking.config import EG_BASELINE
from medattr.benchmarking.evaluate import METRICS
from medattr.benchmarking.rows import row_key
from medattr.benchmarking.runner import wanted_keys
from medattr.errors import InputError
from tests.benchmarking.conftest import QuickRun, require_nilearn

pytestmark = pytest.mark.slow


def _pairs() -> list[tuple[str, str]]:
    return [(m, b) for m in METHODS if m != "eg" for b in BASELINES] + [("eg", EG_BASELINE)]


def test_every_method_and_baseline_has_every_metric(quick_run: QuickRun) -> None:
    s = quick_run.summary
    assert len(s["studies"]) == quick_run.config.n_studies
    assert len(s["healthy_studies"]) == quick_run.config.n_healthy
    cells = {(c["method"], c["baseline"], c["metric"]): c for c in s["cells"]}
    for m, b in _pairs():
        for metric in ("mass", "rank", "pointing", "roc_auc", "completeness"):
            c = cells[(m, b, metric)]
            assert c["n"] == quick_run.config.n_studies, (m, b, metric)
    # max-sensitivity: IG with every baseline on the first study
    for b in BASELINES:
        assert cells[("ig", b, "max_sensitivity")]["n"] == 1


def test_intervals_bracket_their_means(quick_run: QuickRun) -> None:
    checked = 0
    for c in quick_run.summary["cells"]:
        if c["n"] >= 2 and math.isfinite(c["lo"]):
            assert c["lo"] - 1e-12 <= c["mean"] <= c["hi"] + 1e-12, c
            checked += 1
    assert checked > 50


def test_oracle_attribution_is_confined_to_the_lesion(quick_run: QuickRun) -> None:
    # x - twin is zero outside the lesion, so IG with the oracle puts no mass outside it
    rows = [
        r
        for r in read_rows(quick_run.out / "rows.jsonl")
        if r["kind"] == "attribution"
        and r["label"] == 1
        and r["baseline"] == "oracle"
        and r["method"] == "ig"
    ]
    assert len(rows) == quick_run.config.n_studies
    for r in rows:
        mass = r["metrics"]["mass"]
        assert mass is None or mass == pytest.approx(1.0)  # None: no positive attribution
        assert r["metrics"]["roc_auc"] >= 0.5  # zero outside the lesion ties every background voxel


def test_report_lists_every_row_and_figure(quick_run: QuickRun) -> None:
    for page in (quick_run.out / "results.md", quick_run.docs):
        text = page.read_text()
        for b in (*BASELINES, EG_BASELINE):
            assert f"| {b} |" in text, b
        for label in ("IG", "SmoothGrad over IG", "Split IG (left part)", "Expected Gradients"):
            assert f"| {label} |" in text
        assert "## Verdict" in text and "interpretation:start" in text
        assert "Models other than the shipped ones" in text  # stand-ins are flagged
        links = [
            ln.split("](", 1)[1].rstrip(")") for ln in text.splitlines() if ln.startswith("![")
        ]
        assert len(links) == 4  # localisation, faithfulness, baselines, one example
        for link in links:
            png = page.parent / link
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (quick_run.docs.parent / "images" / "results" / "localisation.png").exists()


def test_rows_cover_the_plan_exactly(quick_run: QuickRun) -> None:
    run = json.loads((quick_run.out / "run.json").read_text())
    rows = read_rows(quick_run.out / "rows.jsonl")
    keys = [row_key(r) for r in rows]
    assert len(keys) == len(set(keys))  # no duplicates
    expected = set()
    for i, sid in enumerate(run["study_ids"]):
        expected |= set(wanted_keys(quick_run.config, sid, 1, i))
    for sid in run["healthy_ids"]:
        expected |= set(wanted_keys(quick_run.config, sid, 0, 0))
    assert set(keys) == expected


def _copy(run: QuickRun, dest: Path) -> Path:
    shutil.copytree(run.out, dest)
    return dest


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the attribution work a (resumed) run does."""
    import medattr.benchmarking.runner as runner

    calls = {"path": 0, "eg": 0}
    path, eg = runner.run_path_methods, runner.run_expected_gradients

    def counted_path(*args: Any, **kwargs: Any) -> Any:
        calls["path"] += 1
        return path(*args, **kwargs)

    def counted_eg(*args: Any, **kwargs: Any) -> Any:
        calls["eg"] += 1
        return eg(*args, **kwargs)

    monkeypatch.setattr(runner, "run_path_methods", counted_path)
    monkeypatch.setattr(runner, "run_expected_gradients", counted_eg)
    return calls


def test_a_finished_run_resumes_without_recomputing(
    quick_run: QuickRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medattr.benchmarking import run_benchmark

    out = _copy(quick_run, tmp_path / "run")
    before = (out / "rows.jsonl").read_bytes()
    calls = _counting(monkeypatch)
    run_benchmark(quick_run.config, out)
    assert calls == {"path": 0, "eg": 0}
    assert (out / "rows.jsonl").read_bytes() == before


def test_an_interrupted_run_measures_only_the_missing_rows(
    quick_run: QuickRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medattr.benchmarking import run_benchmark

    out = _copy(quick_run, tmp_path / "run")
    lines = (out / "rows.jsonl").read_text().splitlines()
    full = {row_key(json.loads(ln)): json.loads(ln) for ln in lines}
    # the healthy study's rows come last: drop them and leave a half-written line behind
    kept = [ln for ln in lines if json.loads(ln)["label"] == 1]
    dropped = len(lines) - len(kept)
    assert dropped > 0
    (out / "rows.jsonl").write_text("\n".join(kept) + "\n" + lines[-1][: len(lines[-1]) // 2])
    calls = _counting(monkeypatch)
    run_benchmark(quick_run.config, out)
    # one path call per baseline of the healthy study, nothing for the finished lesion studies
    assert calls == {"path": len(BASELINES), "eg": 0}
    resumed = {row_key(r): r for r in read_rows(out / "rows.jsonl")}
    assert set(resumed) == set(full)
    for key, row in full.items():
        if row["kind"] == "attribution" and row["label"] == 0:
            got = resumed[key]["metrics"]
            for k, v in row["metrics"].items():
                if v is None:  # undefined (NaN) in the first run: undefined again
                    assert got[k] is None or math.isnan(got[k]), (key, k)
                else:
                    assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-6), (key, k)


def test_other_settings_are_refused_in_the_same_directory(
    quick_run: QuickRun, tmp_path: Path
) -> None:
    from medattr.benchmarking import run_benchmark

    out = _copy(quick_run, tmp_path / "run")
    before = (out / "rows.jsonl").read_bytes()
    with pytest.raises(InputError, match="other settings"):
        run_benchmark(quick_run.config.replace(n_steps=quick_run.config.n_steps + 1), out)
    assert (out / "rows.jsonl").read_bytes() == before


def test_a_narrower_scope_reuses_rows_and_reports_only_itself(
    quick_run: QuickRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_nilearn()
    from medattr.benchmarking import run_benchmark

    out = _copy(quick_run, tmp_path / "run")
    calls = _counting(monkeypatch)
    cfg = quick_run.config.replace(methods=("ig",), baselines=("zero", "oracle"), n_healthy=0)
    summary = run_benchmark(cfg, out)
    assert calls == {"path": 0, "eg": 0}
    assert summary["methods"] == ["ig"]
    assert summary["baselines_present"] == ["zero", "oracle"]
    assert summary["healthy_studies"] == []
    text = (out / "results.md").read_text()
    assert "| vae-guided |" not in text and "| IG | oracle |" in text


def test_metric_keys_are_the_reported_ones(quick_run: QuickRun) -> None:
    metrics = {c["metric"] for c in quick_run.summary["cells"]}
    assert {m.key for m in METRICS} <= metrics
