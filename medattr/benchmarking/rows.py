"""The benchmark's measurements as JSON lines, appended one row at a time.

A row is written (and flushed to disk) as soon as it is measured, so an interrupted run loses
at most the row in progress; a truncated last line is ignored on reading. Each row has a
``kind`` (``"attribution"``, ``"baseline"``, ``"sensitivity"``) and is identified by
``(kind, study, method, baseline)``; a resumed run skips every row already present.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medattr.errors import InputError

__all__ = ["RowKey", "RowStore", "read_rows", "row_key"]

log = logging.getLogger("medattr.benchmarking")

RowKey = tuple[str, str, str, str]


def row_key(row: dict[str, Any]) -> RowKey:
    """``(kind, study, method, baseline)`` of a row (empty strings where not applicable)."""
    return (
        str(row.get("kind", "")),
        str(row.get("study", "")),
        str(row.get("method", "")),
        str(row.get("baseline", "")),
    )


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become ``None`` (read back as NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All complete rows of a rows file (a damaged last line is skipped with a warning).

    Raises
    ------
    InputError
        If a line other than the last is not valid JSON (the file is not a rows file).
    """
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                log.warning("%s: ignoring an incomplete last line (interrupted write)", p)
                continue
            raise InputError(f"line {i + 1} is not valid JSON", p) from None
        if not isinstance(row, dict) or "kind" not in row:
            raise InputError(f"line {i + 1} is not a benchmark row", p)
        rows.append(row)
    return rows


class RowStore:
    """Rows of one run: what exists, and appending new ones durably.

    Examples
    --------
    >>> import tempfile
    >>> store = RowStore(Path(tempfile.mkdtemp()) / "rows.jsonl")
    >>> store.add({"kind": "baseline", "study": "s1", "baseline": "zero", "f": 1.0})
    >>> store.has(("baseline", "s1", "", "zero")), len(RowStore(store.path).rows)
    (True, 1)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows = read_rows(self.path)
        self._keys = {row_key(r) for r in self.rows}
        if self.path.exists():
            self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        """Rewrite the file without a damaged tail so that appends start on a fresh line."""
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            with open(self.path, "wb") as fh:
                fh.write(keep)
                fh.flush()
                os.fsync(fh.fileno())

    def has(self, key: RowKey) -> bool:
        return key in self._keys

    def missing(self, keys: Iterable[RowKey]) -> list[RowKey]:
        return [k for k in keys if k not in self._keys]

    def add(self, row: dict[str, Any]) -> None:
        """Append ``row`` (flushed and synced before returning)."""
        key = row_key(row)
        if key in self._keys:
            return
        line = json.dumps(_clean(row), sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.append(row)
        self._keys.add(key)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)
