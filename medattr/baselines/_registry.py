"""The baseline registry (its own module so that baseline modules can import it while the
package initialises)."""

from __future__ import annotations

from medattr._baseline import Baseline
from medattr.registry import Registry

__all__ = ["BASELINES", "register"]

BASELINES: Registry[Baseline] = Registry(
    "baseline", "medattr.baselines", scan=("medattr.baselines",)
)
"""Every baseline by name: ``--baseline NAME``, ``ExplainConfig(baseline=NAME)``."""

register = BASELINES.register
