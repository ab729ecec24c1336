"""Deprecated location of the explainer: use :mod:`medattr.explain` (or ``from medattr import
Explainer, ExplainConfig``). Kept so that code written for medattr 0.x keeps importing."""

from medattr.explain import ExplainConfig, Explainer, StudyResult
from medattr.io import read_volume as read_input

__all__ = ["ExplainConfig", "Explainer", "StudyResult", "read_input"]
