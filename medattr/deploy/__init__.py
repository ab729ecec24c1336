"""medattr in MONAI Deploy applications (optional extra: ``pip install 'medattr[deploy]'``).

:class:`MedattrOperator` is a MONAI Deploy App SDK operator that takes the series chosen by
``DICOMSeriesSelectorOperator`` and writes medattr's DICOM outputs (RGB overlay, Parametric
Map, SEG) and manifest per series; ``examples/deploy_app`` wires it into a complete app. The
SDK is imported only when ``MedattrOperator`` is first used, so ``import medattr`` and
``import medattr.deploy`` never need it; without it, creating the operator raises
:class:`MissingSDKError` saying what to install. :class:`SeriesExplainer`, the work the
operator does, needs no SDK.

Examples
--------
>>> from medattr.deploy import settings_from_env
>>> settings_from_env({"MEDATTR_METHOD": "split-ig"})
{'method': 'split-ig'}
"""

from __future__ import annotations

from typing import Any

from medattr.deploy._sdk import INSTALL_HINT, MissingSDKError, sdk_available
from medattr.deploy.runner import DEFAULT_FORMATS, ExplainedSeries, SeriesExplainer, resolve_device
from medattr.deploy.series import SeriesInput, selected_series_inputs, series_files
from medattr.deploy.settings import find_model, resolve_model, settings_from_env

__all__ = [
    "DEFAULT_FORMATS",
    "INSTALL_HINT",
    "ExplainedSeries",
    "MedattrOperator",
    "MissingSDKError",
    "SeriesExplainer",
    "SeriesInput",
    "find_model",
    "resolve_device",
    "resolve_model",
    "sdk_available",
    "selected_series_inputs",
    "series_files",
    "settings_from_env",
]


def __getattr__(name: str) -> Any:
    if name == "MedattrOperator":
        operator: type
        try:
            from medattr.deploy import _operator

            operator = _operator.MedattrOperator
        except MissingSDKError as exc:
            from medattr.deploy._sdk import unavailable_operator

            operator = unavailable_operator(exc)
        globals()[name] = operator
        return operator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
