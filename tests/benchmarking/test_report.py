"""The report page: number formatting and the person-written section that survives."""

from __future__ import annotations

from pathlib import Path

from medattr.benchmarking.report import (
    INTERPRETATION_END,
    INTERPRETATION_START,
    fmt,
    kept_interpretation,
)


def test_fmt() -> None:
    assert fmt({"mean": 0.4123, "lo": 0.35, "hi": 0.47, "n": 18}, total=20) == (
        "0.412 [0.350, 0.470] (n=18)"
    )
    assert fmt({"mean": 2.0, "lo": float("nan"), "hi": float("nan"), "n": 1}) == "2.000"
    assert fmt({"mean": float("nan"), "lo": 0.0, "hi": 0.0, "n": 0}) == "–"
    assert fmt(None) == "–"
    assert fmt({"mean": 1.2e-5, "lo": 1e-5, "hi": 1.5e-5, "n": 3}) == (
        "1.20e-05 [1.00e-05, 1.50e-05]"
    )


def test_the_interpretation_is_kept_when_the_page_is_regenerated(tmp_path: Path) -> None:
    page = tmp_path / "results.md"
    assert "Not written yet" in kept_interpretation(page)  # no page yet
    page.write_text(
        f"# old numbers\n{INTERPRETATION_START}\nThe VAE wins because X.\n{INTERPRETATION_END}\n"
    )
    assert kept_interpretation(page) == "The VAE wins because X."
    page.write_text(f"{INTERPRETATION_START}\n\n{INTERPRETATION_END}")
    assert "Not written yet" in kept_interpretation(page)


def test_metric_figure_columns_list_each_baseline_once_with_the_references_last() -> None:
    from medattr.benchmarking.config import EG_BASELINE
    from medattr.benchmarking.figures import metric_columns

    cells = [
        ("eg", EG_BASELINE, "mass"),
        ("ig", "zz-mine", "mass"),
        ("ig", "inpaint", "mass"),
        ("smoothgrad", "inpaint", "mass"),
        ("ig", "blur", "pointing"),
        ("ig", "aa-mine", "mass"),
    ]
    assert metric_columns(cells) == ["blur", "aa-mine", "inpaint", "zz-mine", EG_BASELINE]
    assert metric_columns(cells[1:]) == ["blur", "aa-mine", "inpaint", "zz-mine"]
