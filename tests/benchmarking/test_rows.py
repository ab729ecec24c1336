"""Rows on disk: appended durably, read back, an interrupted last line tolerated."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from medattr.benchmarking.rows import RowStore, read_rows, row_key
from medattr.errors import InputError


def test_rows_round_trip_with_nan_as_missing(tmp_path: Path) -> None:
    store = RowStore(tmp_path / "rows.jsonl")
    store.add(
        {
            "kind": "attribution",
            "study": "s",
            "method": "ig",
            "baseline": "zero",
            "metrics": {"mass": math.nan, "rank": 0.5},
        }
    )
    store.add({"kind": "attribution", "study": "s", "method": "ig", "baseline": "zero"})  # dup
    rows = read_rows(tmp_path / "rows.jsonl")
    assert len(rows) == 1
    assert rows[0]["metrics"] == {"mass": None, "rank": 0.5}
    assert row_key(rows[0]) == ("attribution", "s", "ig", "zero")


def test_a_half_written_last_line_is_dropped_and_appends_continue(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"kind": "baseline", "study": "a", "baseline": "zero"}\n{"kind": "base')
    store = RowStore(path)
    assert [r["study"] for r in store.rows] == ["a"]
    store.add({"kind": "baseline", "study": "b", "baseline": "zero"})
    assert [r["study"] for r in read_rows(path)] == ["a", "b"]
    assert store.missing([("baseline", "a", "", "zero"), ("baseline", "c", "", "zero")]) == [
        ("baseline", "c", "", "zero")
    ]


def test_damage_before_the_last_line_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('not json\n{"kind": "baseline", "study": "a"}\n')
    with pytest.raises(InputError, match=r"rows.jsonl: line 1 is not valid JSON"):
        read_rows(path)
    path.write_text('[1, 2]\n{"kind": "baseline"}\n')
    with pytest.raises(InputError, match="line 1 is not a benchmark row"):
        RowStore(path)
