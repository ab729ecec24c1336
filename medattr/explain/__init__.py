"""One study end to end: the run's settings (:class:`ExplainConfig`), the :class:`Explainer`
(load → preprocess → baseline → attribute → map back) and its outputs and manifest."""

from medattr.explain.config import CORE_SETTINGS, ExplainConfig, all_settings
from medattr.explain.explainer import MIN_USEFUL_AUC, Explainer, StudyResult
from medattr.explain.manifest import MANIFEST_VERSION, build_manifest
from medattr.explain.outputs import write_outputs

__all__ = [
    "CORE_SETTINGS",
    "MANIFEST_VERSION",
    "MIN_USEFUL_AUC",
    "ExplainConfig",
    "Explainer",
    "StudyResult",
    "all_settings",
    "build_manifest",
    "write_outputs",
]
