"""Option parsing shared by the bundle components (values come from JSON or a command line)."""

from __future__ import annotations

from typing import Any

from medattr.errors import InputError

__all__ = ["flag"]


def flag(value: Any, name: str) -> bool:
    """A boolean from a config or the command line (``"true"`` / ``"false"`` strings too).

    ``python -m monai.bundle run --split_paths false`` passes the *string* ``"false"``, which
    ``bool()`` would read as true.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{name} must be true or false, got {value!r}")
