"""``docs/reliability.md`` is the suite's own output, for the cases the suite has now."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import REPO
from tests.reliability.table import _cell, render

DOC = REPO / "docs" / "reliability.md"


def test_the_table_lists_every_case_and_no_failure(request: pytest.FixtureRequest) -> None:
    cases = [
        item.get_closest_marker("reliability")
        for item in request.session.items
        if item.get_closest_marker("reliability") is not None
    ]
    if len(cases) < 40:
        pytest.skip("run the whole reliability suite to compare the table with its cases")
    text = DOC.read_text(encoding="utf-8")
    missing = [m.args[1] for m in cases if f"| {_cell(m.args[1])} |" not in text]
    assert not missing, (
        f"docs/reliability.md misses {missing}; regenerate it: "
        "MEDATTR_RELIABILITY_TABLE=docs/reliability.md python -m pytest tests/reliability"
    )
    assert "**FAIL**" not in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and ln[2:3].isdigit()]
    assert len(rows) == len(cases)


def test_render_orders_by_group_and_marks_failures(tmp_path: Path) -> None:
    results = [
        {
            "group": "cohort",
            "module": "m",
            "title": "b",
            "expect": "x",
            "observed": "y",
            "passed": 1,
        },
        {
            "group": "NIfTI",
            "module": "m",
            "title": "a|b",
            "expect": "x",
            "observed": "y",
            "passed": 0,
        },
    ]
    text = render(results)
    assert "(1 of 2 passed" in text
    nifti, cohort = text.index("| NIfTI |"), text.index("| cohort |")
    assert nifti < cohort and "a\\|b" in text and "**FAIL**" in text
