"""The package's shape: layers point one way, modules stay small, packages say what they hold."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import medattr

ROOT = Path(medattr.__file__).resolve().parent


def _imports(package: str) -> set[str]:
    """Every ``medattr.*`` module imported anywhere (also inside functions) by ``package``."""
    found: set[str] = set()
    base = ROOT.joinpath(*package.split(".")[1:])
    files = list(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("medattr")}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("medattr.attribution", "medattr.baselines"),
        ("medattr.baselines", "medattr.attribution"),
        ("medattr.io", "medattr.render"),
        ("medattr.io", "medattr.explain"),
        ("medattr.attribution", "medattr.explain"),
        ("medattr.baselines", "medattr.explain"),
        ("medattr.models", "medattr.explain"),
    ],
)
def test_layers_point_one_way(package: str, forbidden: str) -> None:
    bad = sorted(m for m in _imports(package) if m == forbidden or m.startswith(forbidden + "."))
    assert not bad, f"{package} imports {bad}"


def test_no_module_is_over_about_500_lines() -> None:
    long = {
        str(f.relative_to(ROOT)): n
        for f in ROOT.rglob("*.py")
        if (n := len(f.read_text().splitlines())) > 520
    }
    assert not long, long


def test_every_package_says_what_it_holds() -> None:
    for info in pkgutil.walk_packages(medattr.__path__, "medattr."):
        if info.ispkg:
            doc = importlib.import_module(info.name).__doc__
            assert doc and len(doc.strip()) > 20, f"{info.name} has no docstring"
