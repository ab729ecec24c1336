"""Held-out studies on the classifier's grid, and seeds kept apart from training."""

from __future__ import annotations

import pytest
import torch

from medattr.benchmarking.studies import (
    FALLBACK_SEED_BASE,
    REFERENCE_SEED_BASE,
    load_study,
    plan_studies,
)
from medattr.errors import InputError
from medattr.models import IntensitySpec, ModelSpec
from tests.benchmarking.conftest import GRID, SPACING, require_nilearn


def _spec(**training: int) -> ModelSpec:
    return ModelSpec(
        class_names=["healthy", "lesion"],
        default_target=1,
        pixdim=SPACING,
        spatial_size=GRID,
        intensity=IntensitySpec(a_min=0.0, a_max=1.0),
        extra={"training": {"kind": "mni", **training}} if training else {},
    )


def test_the_plan_uses_the_classifier_test_split_then_a_dedicated_block() -> None:
    clf = _spec(seed_base=100, n_train=50, n_val=10, n_test=10)
    plan = plan_studies(clf, None, n_studies=5, n_healthy=2, n_references=3)
    # 18 lesion candidates (twice the studies plus spares for unplaceable lesions), 2 healthy
    fb = FALLBACK_SEED_BASE
    assert plan.lesion_seeds == [*range(160, 170), *range(fb, fb + 8)]
    assert plan.healthy_seeds == [fb + 8, fb + 9]
    assert plan.reference_seeds == [REFERENCE_SEED_BASE + k for k in range(3)]
    assert "test split" in plan.source and str(FALLBACK_SEED_BASE) in plan.source
    big = plan_studies(
        _spec(seed_base=0, n_train=10, n_val=2, n_test=400),
        None,
        n_studies=20,
        n_healthy=4,
        n_references=2,
    )
    assert big.lesion_seeds[0] == 12 and big.healthy_seeds == [408, 409, 410, 411]
    assert not set(big.lesion_seeds) & set(big.healthy_seeds)


def test_seeds_a_model_was_trained_on_are_refused() -> None:
    clf = _spec(seed_base=0, n_train=50, n_val=10, n_test=20)
    with pytest.raises(InputError, match=r"seed 5 lies in the classifier training/validation"):
        plan_studies(clf, None, n_studies=1, n_healthy=0, n_references=1, study_seeds=[5])
    vae = _spec(seed_base=3_000_000, n_train=10, n_val=0, n_lesion_eval=0)
    with pytest.raises(InputError, match="VAE training/validation"):
        plan_studies(_spec(), vae, n_studies=2, n_healthy=0, n_references=1)


def test_a_classifier_without_a_grid_is_refused() -> None:
    spec = ModelSpec(class_names=["a", "b"])
    with pytest.raises(InputError, match="states no spatial_size and pixdim"):
        load_study(spec, "mni", 1, lesion=True)


def test_a_study_on_the_model_grid_with_its_exact_twin() -> None:
    require_nilearn()
    s = load_study(_spec(), "mni", 13, lesion=True)
    assert s.x.shape == (1, 1, *GRID) and s.mask.shape == (1, *GRID) and s.label == 1
    assert s.spacing == SPACING and s.id == "mni_s13"
    assert bool(s.mask.any()) and bool((s.mask & ~s.region).sum() == 0)
    diff = (s.x - s.twin)[0]
    assert float(diff[~s.mask].abs().max()) == 0.0  # the lesion is the only difference
    assert float(diff[s.mask].abs().mean()) > 0.01
    assert torch.equal(load_study(_spec(), "mni", 13, lesion=False).x, s.twin)
