"""Render generated studies for training, in parallel, onto the model grid."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["render_split"]


def _render_one(
    args: tuple[str, int, bool, dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    from medattr.errors import InputError

    kind, seed, lesion, options = args
    try:
        return _render(kind, seed, lesion, options)
    except InputError:  # a generator that cannot place a lesion for this seed
        return None


def _render(
    kind: str, seed: int, lesion: bool, options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if kind == "phantom":
        from medattr.synthetic.phantoms import make_phantom

        study = make_phantom(seed, lesion=lesion, **options)
    elif kind == "mni":
        from medattr.synthetic.mni import make_mni_study

        study = make_mni_study(seed, lesion=lesion, **options)
    else:
        raise ValueError(f"kind must be 'phantom' or 'mni', got {kind!r}")
    return (study.image.array[0], study.healthy.array[0], study.mask.array[0], int(study.label))


def to_model_units(arr: np.ndarray, intensity: dict[str, Any]) -> torch.Tensor:
    """Rendered studies ``(N, I, J, K)`` in source units to model inputs ``(N, 1, I, J, K)``,
    through a range :class:`~medattr.models.IntensitySpec` given as a dict."""
    from medattr.models import IntensitySpec

    it = IntensitySpec(**intensity)
    x = (torch.from_numpy(arr) - it.a_min) / (it.a_max - it.a_min)
    if it.clip:
        x = x.clamp(0, 1)
    return (it.b_min + x * (it.b_max - it.b_min))[:, None].float()


def render_split(
    kind: str,
    seeds: Sequence[int],
    labels: Sequence[bool],
    *,
    workers: int = 2,
    options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """Render ``(seed, lesion)`` studies; returns stacked ``image``, ``healthy``, ``mask``,
    ``label`` and the ``seed`` of each row.

    Arrays are float32 ``(N, I, J, K)`` in source units (HU for phantoms). A seed for which the
    generator cannot place a lesion is dropped (deterministically), so N may be slightly less
    than ``len(seeds)``.

    With ``cache_dir`` the arrays are kept in an ``.npz`` named by a hash of everything that
    determines them (kind, seeds, labels, options, medattr version), and reused.
    """
    cache = None
    if cache_dir is not None:
        from medattr._version import __version__

        key = json.dumps(
            [kind, [int(s) for s in seeds], [bool(v) for v in labels], options or {}, __version__],
            sort_keys=True,
            default=str,
        )
        cache = Path(cache_dir) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            with np.load(cache) as data:
                return {k: data[k] for k in data.files}
    jobs = [
        (kind, int(s), bool(lab), dict(options or {})) for s, lab in zip(seeds, labels, strict=True)
    ]
    if workers > 1 and len(jobs) > 1:
        # spawned, not forked: a child forked from a process whose torch / OpenMP thread pools
        # have run (training a model first, then rendering the next model's data) can hang
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            rows = list(pool.map(_render_one, jobs, chunksize=8))
    else:
        rows = [_render_one(j) for j in jobs]
    kept = [i for i, r in enumerate(rows) if r is not None]
    done = [r for r in rows if r is not None]
    out: dict[str, np.ndarray] = {
        "seed": np.asarray([jobs[i][1] for i in kept], dtype=np.int64),
        "image": np.stack([r[0] for r in done]).astype(np.float32),
        "healthy": np.stack([r[1] for r in done]).astype(np.float32),
        "mask": np.stack([r[2] for r in done]).astype(np.float32),
        "label": np.asarray([r[3] for r in done], dtype=np.int64),
    }
    if cache is not None:
        from medattr._fs import atomic_path

        with atomic_path(cache, suffix=".npz") as tmp:
            np.savez(tmp, **out)  # type: ignore[arg-type]
    return out
