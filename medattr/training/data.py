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


_Row = tuple[dict[str, np.ndarray], int, dict[str, str]]
_ARRAYS = ("image", "healthy", "mask")


def _render_one(args: tuple[str, int, bool, dict[str, Any], tuple[str, ...]]) -> _Row | None:
    from medattr.errors import InputError

    kind, seed, lesion, options, keep = args
    try:
        arrays, label, category = _render(kind, seed, lesion, options)
    except InputError:  # a generator that cannot place a lesion for this seed
        return None
    return {k: v for k, v in arrays.items() if k in keep}, label, category


def _render(kind: str, seed: int, lesion: bool, options: dict[str, Any]) -> _Row:
    if kind == "phantom":
        from medattr.synthetic.phantoms import make_phantom

        study = make_phantom(seed, lesion=lesion, **options)
    elif kind == "mni":
        from medattr.synthetic.mni import make_mni_study

        study = make_mni_study(seed, lesion=lesion, **options)
    else:
        raise ValueError(f"kind must be 'phantom' or 'mni', got {kind!r}")
    les = study.params.get("lesion") or {}
    category = {str(k): str(v) for k, v in (les.get("category") or {}).items()}
    arrays = {
        "image": study.image.array[0],
        "healthy": study.healthy.array[0],
        "mask": study.mask.array[0],
    }
    return arrays, int(study.label), category


def _generator_version(kind: str) -> int:
    """Version of the studies a generator renders (part of the cache key)."""
    if kind == "mni":
        from medattr.synthetic.mni import MNI_GENERATOR_VERSION

        return MNI_GENERATOR_VERSION
    return 1


def to_model_units(
    arr: np.ndarray,
    intensity: dict[str, Any],
    out: torch.Tensor | None = None,
    chunk: int = 64,
) -> torch.Tensor:
    """Rendered studies ``(N, I, J, K)`` in source units to model inputs ``(N, 1, I, J, K)``,
    through a range :class:`~medattr.models.IntensitySpec` given as a dict.

    ``out`` (float32, ``(N, 1, I, J, K)``) receives the result if given; the conversion runs in
    place, ``chunk`` studies at a time, so it needs no memory beyond the result."""
    from medattr.models import IntensitySpec

    it = IntensitySpec(**intensity)
    if out is None:
        out = torch.empty((arr.shape[0], 1, *arr.shape[1:]), dtype=torch.float32)
    if tuple(out.shape) != (arr.shape[0], 1, *arr.shape[1:]) or out.dtype != torch.float32:
        raise ValueError(f"out must be float32 of shape {(arr.shape[0], 1, *arr.shape[1:])}")
    for i in range(0, arr.shape[0], chunk):
        x = out[i : i + chunk, 0]
        x.copy_(torch.from_numpy(np.ascontiguousarray(arr[i : i + chunk])))
        x.sub_(it.a_min).div_(it.a_max - it.a_min)
        if it.clip:
            x.clamp_(0, 1)
        x.mul_(it.b_max - it.b_min).add_(it.b_min)
    return out


def render_split(
    kind: str,
    seeds: Sequence[int],
    labels: Sequence[bool],
    *,
    workers: int = 2,
    options: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    arrays: Sequence[str] = _ARRAYS,
) -> dict[str, np.ndarray]:
    """Render ``(seed, lesion)`` studies; returns stacked ``image``, ``healthy``, ``mask``,
    ``label``, the ``seed`` of each row and its lesion category.

    Arrays are float32 ``(N, I, J, K)`` in source units (HU for phantoms); ``arrays`` names the
    ones to keep (fewer save memory). A seed for which the generator cannot place a lesion is
    dropped (deterministically), so N may be slightly less than ``len(seeds)``. Studies whose
    generator records a lesion category (the MNI studies: ``location``, ``count``, ``shape``,
    ``contrast``, ``polarity``) get one string array ``category_<name>`` per field, ``""`` for
    a study without a lesion.

    With ``cache_dir`` the arrays are kept in an ``.npz`` named by a hash of everything that
    determines them (kind, seeds, labels, options, arrays kept, medattr and generator
    version), and reused.
    """
    unknown = sorted(set(arrays) - set(_ARRAYS))
    if unknown:
        raise ValueError(f"arrays must be among {_ARRAYS}, got {unknown}")
    cache = None
    if cache_dir is not None:
        from medattr._version import __version__

        parts: list[Any] = [kind, [int(s) for s in seeds], [bool(v) for v in labels]]
        parts += [options or {}, __version__, _generator_version(kind)]
        if tuple(arrays) != _ARRAYS:
            parts.append(list(arrays))
        key = json.dumps(parts, sort_keys=True, default=str)
        cache = Path(cache_dir) / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            with np.load(cache) as data:
                return {k: data[k] for k in data.files}
    jobs = [
        (kind, int(s), bool(lab), dict(options or {}), tuple(arrays))
        for s, lab in zip(seeds, labels, strict=True)
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
        "label": np.asarray([r[1] for r in done], dtype=np.int64),
    }
    for name in _ARRAYS:
        if name in arrays:
            out[name] = np.stack([r[0].pop(name) for r in done]).astype(np.float32)
    for field in sorted({f for r in done for f in r[2]}):
        out[f"category_{field}"] = np.asarray([r[2].get(field, "") for r in done], dtype=str)
    del rows, done
    if cache is not None:
        from medattr._fs import atomic_path

        with atomic_path(cache, suffix=".npz") as tmp:
            np.savez(tmp, **out)  # type: ignore[arg-type]
    return out
