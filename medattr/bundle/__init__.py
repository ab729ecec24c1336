"""Helpers the MONAI bundles in ``bundles/`` build from their configs.

``bundles/medattr_explain`` explains a cohort with the shipped classifier and its healthy-only
VAE (``configs/inference.json``, multi-GPU overlay ``configs/multi_gpu_inference.json``) and
retrains both (``configs/train_classifier.json``, ``configs/train_vae.json``). Its components:
:class:`LoadVolumed` (``preprocessing``), :class:`AttributionInferer` (``inferer``),
:class:`StudyWriter` (``postprocessing``), :class:`CohortEvaluator` (``evaluator``) and
:class:`TrainingRun` (``trainer``). See ``docs/bundle.md``.
"""

from medattr.bundle.training import (
    DEFAULT_TOLERANCES,
    ReproductionError,
    TrainingRun,
    compare_metrics,
    stored_metrics,
)
from medattr.bundle.workflow import (
    AttributionInferer,
    CohortEvaluator,
    LoadVolumed,
    StudyWriter,
    cohort_items,
    locate_bundle_root,
)
from medattr.cohort import DistributedPathsExplainer

__all__ = [
    "DEFAULT_TOLERANCES",
    "AttributionInferer",
    "CohortEvaluator",
    "DistributedPathsExplainer",
    "LoadVolumed",
    "ReproductionError",
    "StudyWriter",
    "TrainingRun",
    "cohort_items",
    "compare_metrics",
    "locate_bundle_root",
    "stored_metrics",
]
