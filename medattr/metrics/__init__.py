"""Quality metrics for 3D attribution maps, batched, on the CPU or the GPU.

Every metric takes a batch and returns one float64 value per sample, shape ``(B,)``, on the
device of its inputs. Attributions are ``(B, C, *spatial)`` or ``(B, *spatial)`` and masks
``(B, *spatial)``, ``(B, 1, *spatial)`` or ``(B, C, *spatial)``; ``spatial_dims`` (3 by default)
tells the layouts apart.

- faithfulness of the numerics: :func:`completeness_error`;
- localisation against a ground-truth mask: :func:`relevance_mass_accuracy`,
  :func:`relevance_rank_accuracy`, :func:`pointing_game`, :func:`roc_auc`;
- faithfulness to the model: :func:`deletion_curve`, :func:`insertion_curve`;
- robustness: :func:`max_sensitivity`;
- aggregation over samples: :func:`bootstrap_ci`.

Each function has a settings-first class twin (``RelevanceMassAccuracy(...)(attr, mask)``) for
bundle configs.

Examples
--------
>>> import torch
>>> from medattr.metrics import roc_auc, bootstrap_ci
>>> mask = torch.zeros(4, 8, 8, 8, dtype=torch.bool)
>>> mask[:, 2:5, 2:5, 2:5] = True
>>> attr = mask.float() + 0.5 * torch.rand(4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
>>> roc_auc(attr, mask)
tensor([1., 1., 1., 1.], dtype=torch.float64)
>>> bootstrap_ci(roc_auc(attr, mask)).mean
1.0
"""

from medattr.metrics._validation import ChannelReduction, EmptyMask, Relevance
from medattr.metrics.completeness import CompletenessError, completeness_error
from medattr.metrics.localisation import (
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from medattr.metrics.perturbation import (
    PerturbationCurve,
    PerturbationCurveMetric,
    PerturbationMode,
    deletion_curve,
    insertion_curve,
    perturbation_curve,
    voxel_order,
)
from medattr.metrics.robustness import MaxSensitivity, SensitivityNorm, max_sensitivity
from medattr.metrics.roc import AttributionROCAUC, roc_auc, roc_auc_scores
from medattr.metrics.scoring import TargetScorer, target_scores
from medattr.metrics.stats import ConfidenceInterval, NanPolicy, bootstrap_ci

__all__ = [
    "AttributionROCAUC",
    "ChannelReduction",
    "CompletenessError",
    "ConfidenceInterval",
    "EmptyMask",
    "MaxSensitivity",
    "NanPolicy",
    "PerturbationCurve",
    "PerturbationCurveMetric",
    "PerturbationMode",
    "PointingGame",
    "Relevance",
    "RelevanceMassAccuracy",
    "RelevanceRankAccuracy",
    "SensitivityNorm",
    "TargetScorer",
    "bootstrap_ci",
    "completeness_error",
    "deletion_curve",
    "insertion_curve",
    "max_sensitivity",
    "perturbation_curve",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "roc_auc",
    "roc_auc_scores",
    "target_scores",
    "voxel_order",
]
