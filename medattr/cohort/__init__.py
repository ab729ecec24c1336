"""Explain a cohort: many studies, one model, resumable, one bad study never stops the rest.

:mod:`~medattr.cohort.datalist` reads datalists into entries, :mod:`~medattr.cohort.runner`
runs them (:class:`CohortRunner`), :mod:`~medattr.cohort.records` fingerprints and verifies
finished studies, :mod:`~medattr.cohort.distributed` shares the work under ``torchrun``.
"""

from medattr.cohort.datalist import READ_OPTION_KEYS, CohortEntry, StudyIdMode, load_cohort
from medattr.cohort.distributed import (
    DistributedPathsExplainer,
    destroy_process_group,
    init_process_group_from_env,
    rank_and_world,
)
from medattr.cohort.runner import (
    EXIT_ALL_OK,
    EXIT_STUDIES_FAILED,
    SUMMARY_STEM,
    CohortRunner,
    CohortSummary,
    run_cohort,
)

__all__ = [
    "EXIT_ALL_OK",
    "EXIT_STUDIES_FAILED",
    "READ_OPTION_KEYS",
    "SUMMARY_STEM",
    "CohortEntry",
    "CohortRunner",
    "CohortSummary",
    "DistributedPathsExplainer",
    "StudyIdMode",
    "destroy_process_group",
    "init_process_group_from_env",
    "load_cohort",
    "rank_and_world",
    "run_cohort",
]
