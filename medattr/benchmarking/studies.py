"""The benchmark's held-out studies and healthy references, on the classifier's grid.

Studies are generated (:mod:`medattr.synthetic`) directly on the grid the classifier's spec states
(``spatial_size`` voxels of ``pixdim`` mm, RAS) and mapped through its intensity window, so no
resampling stands between the ground truth (lesion mask, healthy twin) and the model input.

Seeds: by default the lesion and healthy studies are the classifier's own held-out test split
(read from the training record in its spec), continued by a dedicated block
(:data:`FALLBACK_SEED_BASE`) when more are asked for; the Expected Gradients references are
healthy subjects from another block (:data:`REFERENCE_SEED_BASE`). Every seed is checked
against the seeds the classifier and the VAE were trained and validated on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medattr.errors import InputError
from medattr.models import ModelSpec

__all__ = [
    "FALLBACK_SEED_BASE",
    "REFERENCE_SEED_BASE",
    "BenchStudy",
    "StudyPlan",
    "iter_lesion_studies",
    "load_study",
    "plan_studies",
    "reference_bank",
    "study_kind",
]

log = logging.getLogger("medattr.benchmarking")

FALLBACK_SEED_BASE = 3_000_000
"""First seed of the block used after (or instead of) the classifier's test split."""
REFERENCE_SEED_BASE = 3_500_000
"""First seed of the healthy subjects that form the Expected Gradients reference bank."""


@dataclass
class BenchStudy:
    """One study on the model grid (tensors ``(1, 1, *spatial)``; masks ``(1, *spatial)``)."""

    id: str
    seed: int
    label: int
    x: Tensor
    twin: Tensor
    mask: Tensor
    region: Tensor
    spacing: tuple[float, ...]
    affine: np.ndarray
    lesion: dict[str, Any] | None = None


@dataclass
class StudyPlan:
    """Seeds of the lesion studies, the healthy studies and the reference subjects."""

    kind: str
    lesion_seeds: list[int]
    healthy_seeds: list[int]
    reference_seeds: list[int]
    source: str
    excluded: list[tuple[int, int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "lesion_seeds": self.lesion_seeds,
            "healthy_seeds": self.healthy_seeds,
            "reference_seeds": self.reference_seeds,
            "source": self.source,
            "excluded_ranges": [list(r) for r in self.excluded],
        }


def study_kind(spec: ModelSpec) -> str:
    """The generator the classifier was trained on (``"mni"`` unless its spec says otherwise)."""
    training = spec.extra.get("training") if isinstance(spec.extra, dict) else None
    kind = training.get("kind") if isinstance(training, dict) else None
    return str(kind) if kind in ("mni", "phantom") else "mni"


def _grid(spec: ModelSpec) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    if spec.spatial_size is None or spec.pixdim is None:
        raise InputError(
            "the benchmark generates studies on the classifier's grid, but its spec states no "
            "spatial_size and pixdim; export the classifier with a ModelSpec that has both"
        )
    return tuple(spec.spatial_size), tuple(spec.pixdim)  # type: ignore[return-value]


def _used_ranges(spec: ModelSpec | None, what: str) -> list[tuple[int, int, str]]:
    """Seed ranges ``[lo, hi)`` a model was trained / validated on, from its training record."""
    if spec is None or not isinstance(spec.extra, dict):
        return []
    t = spec.extra.get("training")
    if not isinstance(t, dict) or "seed_base" not in t:
        return []
    a = int(t["seed_base"])
    used = int(t.get("n_train", 0)) + int(t.get("n_val", 0))
    if "n_lesion_eval" in t:  # the VAE's lesion-recovery check set
        used += int(t["n_lesion_eval"])
    return [(a, a + used, what)] if used > 0 else []


def _test_range(spec: ModelSpec) -> tuple[int, int] | None:
    t = spec.extra.get("training") if isinstance(spec.extra, dict) else None
    if not isinstance(t, dict) or not {"seed_base", "n_train", "n_val", "n_test"} <= set(t):
        return None
    start = int(t["seed_base"]) + int(t["n_train"]) + int(t["n_val"])
    return start, start + int(t["n_test"])


def plan_studies(
    classifier_spec: ModelSpec,
    vae_spec: ModelSpec | None,
    *,
    n_studies: int,
    n_healthy: int,
    n_references: int,
    study_seeds: Sequence[int] | None = None,
) -> StudyPlan:
    """Choose the seeds (candidates only: a seed whose lesion cannot be placed is skipped when
    the study is made, see :func:`iter_lesion_studies`).

    Raises
    ------
    InputError
        If a chosen seed lies in a range the classifier or the VAE was trained or validated on.
    """
    kind = study_kind(classifier_spec)
    excluded = _used_ranges(classifier_spec, "classifier training/validation") + _used_ranges(
        vae_spec, "VAE training/validation"
    )
    test = _test_range(classifier_spec)
    if study_seeds is not None:
        candidates: list[int] = [int(s) for s in study_seeds]
        source = "explicit seeds"
    elif test is not None:
        candidates = list(range(*test))
        source = f"classifier test split (seeds {test[0]}..{test[1] - 1})"
    else:
        candidates = []
        source = f"dedicated block from seed {FALLBACK_SEED_BASE}"
    # lesion studies get more candidates than asked: a few seeds cannot place a lesion
    want = 2 * n_studies + 8 + n_healthy
    if len(candidates) < want:
        candidates += [FALLBACK_SEED_BASE + i for i in range(want - len(candidates))]
        if test is not None and study_seeds is None:
            source += f", continued from seed {FALLBACK_SEED_BASE}"
    healthy = candidates[len(candidates) - n_healthy :] if n_healthy else []
    lesion = candidates[: len(candidates) - n_healthy]
    refs = [REFERENCE_SEED_BASE + k for k in range(n_references)]
    for seed in [*lesion, *healthy, *refs]:
        for lo, hi, what in excluded:
            if lo <= seed < hi:
                raise InputError(
                    f"benchmark seed {seed} lies in the {what} seeds [{lo}, {hi}); the test set "
                    f"must be held out (choose other study_seeds)"
                )
    return StudyPlan(kind, lesion, healthy, refs, source, excluded)


def _to_model(arrays: Sequence[np.ndarray], spec: ModelSpec) -> list[Tensor]:
    """Map source intensities to model units; the first array's statistics define a z-score."""
    it = spec.intensity
    out = []
    if it is not None and it.mode == "zscore":
        first = torch.as_tensor(arrays[0], dtype=torch.float32)
        mean, std = first.mean(), first.std()
        std = std if std > 0 else torch.tensor(1.0)
        return [(torch.as_tensor(a, dtype=torch.float32) - mean) / std for a in arrays]
    for a in arrays:
        x = torch.as_tensor(a, dtype=torch.float32)
        if it is not None:
            t = (x - it.a_min) / (it.a_max - it.a_min)
            if it.clip:
                t = t.clamp(0.0, 1.0)
            x = it.b_min + t * (it.b_max - it.b_min)
        out.append(x)
    return out


def load_study(spec: ModelSpec, kind: str, seed: int, lesion: bool) -> BenchStudy:
    """Generate one study on the classifier's grid, in model units.

    Raises
    ------
    InputError
        If the generator cannot place a lesion for this seed.
    """
    from medattr.synthetic import make_study

    shape, spacing = _grid(spec)
    s = make_study(kind, seed, lesion=lesion, shape=shape, spacing=spacing)
    x, twin = _to_model([s.image.array, s.healthy.array], spec)
    mask = torch.as_tensor(s.mask.array > 0.5)
    region = (
        torch.as_tensor(s.region.array > 0.5) if s.region is not None else torch.ones_like(mask)
    )
    return BenchStudy(
        id=f"{kind}_s{seed}",
        seed=int(seed),
        label=int(s.label),
        x=x[None].contiguous(),
        twin=twin[None].contiguous(),
        mask=mask,
        region=region | mask,
        spacing=tuple(float(v) for v in spacing),
        affine=np.asarray(s.image.affine, dtype=np.float64),
        lesion=s.params.get("lesion"),
    )


def iter_lesion_studies(
    spec: ModelSpec,
    plan: StudyPlan,
    n: int,
    complete: Callable[[str, int], bool] | None = None,
) -> Iterator[tuple[int, BenchStudy | str]]:
    """``(index, study)`` for the first ``n`` lesion studies of the plan, in order.

    A study for which ``complete(id, index)`` is true is yielded as its id only, without being
    generated. Seeds whose lesion cannot be placed on the grid are skipped (deterministically).

    Raises
    ------
    InputError
        If fewer than ``n`` lesion studies can be made from the planned seeds.
    """
    count = 0
    for seed in plan.lesion_seeds:
        if count >= n:
            return
        sid = f"{plan.kind}_s{seed}"
        if complete is not None and complete(sid, count):
            count += 1
            yield count - 1, sid
            continue
        try:
            study = load_study(spec, plan.kind, seed, lesion=True)
        except InputError as exc:
            log.info("seed %d skipped: %s", seed, exc)
            continue
        if not bool(study.mask.any()):
            log.info("seed %d skipped: empty lesion mask on this grid", seed)
            continue
        count += 1
        yield count - 1, study
    if count < n:
        raise InputError(f"only {count} of {n} lesion studies could be generated")


def reference_bank(spec: ModelSpec, plan: StudyPlan) -> Tensor:
    """Healthy reference subjects ``(R, 1, *spatial)`` in model units (Expected Gradients)."""
    refs = [load_study(spec, plan.kind, s, lesion=False).x[0] for s in plan.reference_seeds]
    return torch.stack(refs)
