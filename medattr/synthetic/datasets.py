"""Benchmark datasets on disk: seeded splits written as NIfTI files plus a MONAI datalist.

Layout of ``out_dir`` (paths in the datalist are relative to it)::

    datalist.json
    training/<kind>_s<seed>_{image,healthy,mask,region}.nii.gz
    validation/…
    test/…

``datalist.json`` is MONAI's format (``monai.data.load_decathlon_datalist(path,
is_segmentation=False, data_list_key="training")`` reads it): ``{"training": [{"image": …,
"healthy": …, "mask": …, "region": …, "label": 0|1, "seed": …, "lesion": {…}|null}, …],
"validation": […], "test": […]}`` plus a description of how it was generated.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from medattr._fs import staged_directory
from medattr.errors import InputError
from medattr.synthetic._fields import validate_seed
from medattr.synthetic.study import Study

__all__ = [
    "SPLITS",
    "StudyKind",
    "generate_dataset",
    "make_study",
    "plan_dataset",
]

logger = logging.getLogger(__name__)

#: Datalist keys of the splits, in order.
SPLITS = ("training", "validation", "test")
#: Study seeds of dataset ``seed`` are ``seed * SEED_BLOCK + i``: datasets with different seeds
#: never share a study, and the splits of one dataset take consecutive, disjoint ranges.
SEED_BLOCK = 1_000_000
_FILES = ("image", "healthy", "mask", "region")


class StudyKind(str, Enum):
    """Which generator makes the studies."""

    PHANTOM = "phantom"
    MNI = "mni"

    @classmethod
    def parse(cls, kind: str | StudyKind) -> StudyKind:
        try:
            return cls(kind)
        except ValueError:
            choices = ", ".join(repr(k.value) for k in cls)
            raise InputError(f"kind must be one of {choices}, got {kind!r}") from None


def make_study(
    kind: str | StudyKind,
    seed: int,
    *,
    lesion: bool,
    shape: Sequence[int] | None = None,
    spacing: float | Sequence[float] | None = None,
) -> Study:
    """One study of either kind; ``shape`` / ``spacing`` default to the generator's own.

    Examples
    --------
    >>> make_study("phantom", 0, lesion=False, shape=(16, 16, 16), spacing=12.0).label
    0
    """
    k = StudyKind.parse(kind)
    grid: dict[str, Any] = {}
    if shape is not None:
        grid["shape"] = tuple(shape)
    if spacing is not None:
        grid["spacing"] = spacing
    if k is StudyKind.PHANTOM:
        from medattr.synthetic.phantoms import make_phantom

        return make_phantom(seed, lesion=lesion, **grid)
    from medattr.synthetic.mni import make_mni_study

    return make_mni_study(seed, lesion=lesion, **grid)


def plan_dataset(
    *, n_train: int, n_val: int, n_test: int, seed: int = 0, lesion_fraction: float = 0.5
) -> dict[str, list[tuple[int, int]]]:
    """The ``(study seed, label)`` pairs of each split, as :func:`generate_dataset` writes them.

    Each split has ``round(lesion_fraction * n)`` lesion studies, at seeded random positions.

    Examples
    --------
    >>> plan = plan_dataset(n_train=4, n_val=2, n_test=2, seed=1)
    >>> [s for s, _ in plan["validation"]], sum(lab for _, lab in plan["training"])
    ([1000004, 1000005], 2)
    """
    seed = validate_seed(seed)
    counts = {}
    for name, n in zip(SPLITS, (n_train, n_val, n_test), strict=True):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise InputError(f"the number of {name} studies must be an integer >= 0, got {n!r}")
        counts[name] = int(n)
    total = sum(counts.values())
    if total == 0:
        raise InputError("n_train + n_val + n_test must be at least 1")
    if total > SEED_BLOCK:
        raise InputError(f"at most {SEED_BLOCK} studies per dataset, got {total}")
    if not isinstance(lesion_fraction, int | float) or not 0.0 <= float(lesion_fraction) <= 1.0:
        raise InputError(f"lesion_fraction must be in [0, 1], got {lesion_fraction!r}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    plan: dict[str, list[tuple[int, int]]] = {}
    start = seed * SEED_BLOCK
    for name in SPLITS:
        n = counts[name]
        labels = np.zeros(n, dtype=int)
        labels[: round(float(lesion_fraction) * n)] = 1
        rng.shuffle(labels)
        plan[name] = [(start + i, int(lab)) for i, lab in enumerate(labels)]
        start += n
    return plan


def generate_dataset(
    out_dir: str | os.PathLike[str],
    *,
    kind: str | StudyKind = "mni",
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int = 0,
    lesion_fraction: float = 0.5,
    shape: Sequence[int] | None = None,
    spacing: float | Sequence[float] | None = None,
    overwrite: bool = False,
    num_workers: int = 0,
) -> Path:
    """Generate a benchmark dataset and return the path of its ``datalist.json``.

    Parameters
    ----------
    out_dir
        Directory to write into (created if needed). It must not already hold a dataset
        (``datalist.json`` or split folders) unless ``overwrite``.
    kind
        ``"mni"`` (brain, intensities in [0, 1]) or ``"phantom"`` (torso, HU).
    n_train, n_val, n_test
        Number of studies per split.
    seed
        Dataset seed; the same arguments give byte-identical files.
    lesion_fraction
        Fraction of studies with a lesion in each split (rounded per split).
    shape, spacing
        Grid of every study (defaults: 64³ at 3 mm for MNI, 48³ at 4 mm for phantoms).
    overwrite
        Replace an existing dataset in ``out_dir``.
    num_workers
        Processes that generate studies in parallel (0: in this process).

    Returns
    -------
    Path
        ``out_dir / "datalist.json"``. Files appear only when all were written.

    Examples
    --------
    >>> generate_dataset("bench", kind="phantom", n_train=8, n_val=2, n_test=2)  # doctest: +SKIP
    PosixPath('bench/datalist.json')
    """
    k = StudyKind.parse(kind)
    plan = plan_dataset(
        n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, lesion_fraction=lesion_fraction
    )
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise InputError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", out)
    existing = [n for n in ("datalist.json", *SPLITS) if (out / n).exists()]
    if existing and not overwrite:
        raise InputError(
            f"already holds a dataset ({', '.join(existing)}); pass overwrite=True to replace it",
            out,
        )
    # fail before writing anything if the generator cannot run (e.g. nilearn missing)
    probe = make_study(k, _first_seed(plan), lesion=False, shape=shape, spacing=spacing)

    with staged_directory(out, last=("datalist.json",)) as stage:
        dirs = {name: stage(name) for name in SPLITS}
        jobs = [
            (k.value, s, lab, str(dirs[name]), name, shape, spacing)
            for name in SPLITS
            for s, lab in plan[name]
        ]
        if num_workers > 0 and len(jobs) > 1:
            # fork (as torch's DataLoader does on Linux): no re-import, no __main__ guard needed
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx) as pool:
                entries = list(pool.map(_write_study, *zip(*jobs, strict=True)))
        else:
            entries = [_write_study(*job) for job in jobs]
        datalist: dict[str, Any] = {
            "name": f"medattr synthetic {k.value} benchmark",
            "description": _DESCRIPTIONS[k],
            "kind": k.value,
            "seed": int(seed),
            "lesion_fraction": float(lesion_fraction),
            "units": probe.params["units"],
            "grid": probe.params["grid"],
            "generator": _generator_info(),
            "numTraining": len(plan["training"]),
            "numValidation": len(plan["validation"]),
            "numTest": len(plan["test"]),
        }
        it = iter(entries)
        for name in SPLITS:
            datalist[name] = [next(it) for _ in plan[name]]
            dirs[name].mkdir(exist_ok=True)
        stage("datalist.json").write_text(json.dumps(datalist, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %d %s studies to %s", len(jobs), k.value, out)
    return out / "datalist.json"


def _first_seed(plan: dict[str, list[tuple[int, int]]]) -> int:
    return next(s for name in SPLITS for s, _ in plan[name])


_DESCRIPTIONS = {
    StudyKind.PHANTOM: (
        "Procedural torso phantoms (HU). 'image' may hold a lesion in the liver, spleen or a "
        "kidney; 'healthy' is the same subject and noise without it; 'mask' marks every voxel "
        "the lesion changed; 'region' is the body."
    ),
    StudyKind.MNI: (
        "Augmented MNI152 brains (intensities in [0, 1]). 'image' may hold a lesion; 'healthy' "
        "is the same subject and noise without it; 'mask' marks every voxel the lesion "
        "changed; 'region' is the brain mask."
    ),
}


def _generator_info() -> dict[str, Any]:
    from medattr._version import __version__

    info: dict[str, Any] = {"package": "medattr", "version": __version__}
    return info


def _write_study(
    kind: str,
    seed: int,
    label: int,
    split_dir: str,
    split: str,
    shape: Sequence[int] | None,
    spacing: float | Sequence[float] | None,
) -> dict[str, Any]:
    """Generate one study and write its NIfTI files; return its datalist entry."""
    from medattr.io.nifti import write_nifti

    study = make_study(kind, seed, lesion=bool(label), shape=shape, spacing=spacing)
    stem = f"{kind}_s{seed}"
    entry: dict[str, Any] = {}
    vols = {
        "image": study.image,
        "healthy": study.healthy,
        "mask": study.mask,
        "region": study.region,
    }
    for key in _FILES:
        vol = vols[key]
        if vol is None:
            continue
        rel = f"{split}/{stem}_{key}.nii.gz"
        write_nifti(
            Path(split_dir) / f"{stem}_{key}.nii.gz",
            vol.array,
            vol.affine,
            description=f"medattr {kind} seed {seed} {key}",
        )
        entry[key] = rel
    entry["label"] = int(label)
    entry["seed"] = int(seed)
    entry["lesion"] = study.params["lesion"]
    return entry
