"""The attribution-method registry (its own module so that method modules can import it while
the package initialises)."""

from __future__ import annotations

from medattr.attribution._base import PathAttribution
from medattr.registry import Registry

__all__ = ["METHODS", "register"]

METHODS: Registry[PathAttribution] = Registry(
    "attribution method", "medattr.methods", scan=("medattr.attribution",)
)
"""Every attribution method by name: ``--method NAME``, ``ExplainConfig(method=NAME)``."""

register = METHODS.register
