"""Every name in a public module's ``__all__`` imports; importing does no device work."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import medattr


def _modules() -> list[str]:
    names = ["medattr"]
    for info in pkgutil.walk_packages(medattr.__path__, "medattr."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_names_import(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if name.endswith("__main__") or name == "medattr.cli":
        return
    assert exported is not None, f"{name} has no __all__"
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ lists {attr!r} but it is missing"


def test_import_does_no_device_work() -> None:
    code = "import medattr, torch, sys; sys.exit(int(torch.cuda.is_initialized()))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
