"""Every example of docs/extending.md runs as written (each in a fresh interpreter)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
_BLOCK = re.compile(r"```python\n# example: (\w+)\n(.*?)```", re.S)


def _examples() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _BLOCK.finditer(DOC.read_text())}


def test_the_page_has_a_baseline_a_method_and_a_writer_example() -> None:
    assert set(_examples()) == {"baseline", "method", "writer"}


@pytest.mark.parametrize("name", sorted(_examples()))
def test_example_runs(name: str, tmp_path: Path) -> None:
    script = tmp_path / f"example_{name}.py"
    script.write_text(_examples()[name])
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
