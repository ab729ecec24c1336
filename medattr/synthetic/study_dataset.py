"""A torch ``Dataset`` that generates studies on the fly (no files)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medattr.errors import InputError
from medattr.synthetic._fields import validate_seed
from medattr.synthetic.datasets import SPLITS, StudyKind, make_study, plan_dataset

__all__ = ["StudyDataset"]

_KEYS = ("image", "healthy", "mask", "region", "label", "seed", "affine", "params")


class StudyDataset(Dataset):
    """Studies generated on demand, as dictionaries of tensors.

    Parameters
    ----------
    kind
        ``"phantom"`` or ``"mni"``.
    seeds
        Study seeds.
    labels
        1 (lesion) or 0 for each seed.
    shape, spacing
        Grid of every study (the generator's default when ``None``).
    keys
        What each item holds, among ``"image"``, ``"healthy"``, ``"mask"``, ``"region"``
        (tensors of shape ``(1, I, J, K)``, float32), ``"label"`` (int64 scalar), ``"seed"``
        (int), ``"affine"`` (``(4, 4)`` float64, RAS) and ``"params"`` (the JSON-able dict; not
        collatable by the default ``collate_fn``).
    transform
        Applied to each item dict (e.g. a MONAI ``Compose`` of dictionary transforms; for
        phantoms, ``ScaleIntensityRanged(keys, -200, 300, 0, 1, clip=True)`` windows the HU).
    cache
        Keep generated items in memory (per process: each ``DataLoader`` worker has its own).
        The transform is applied to a copy of the cached item, so random transforms stay
        random and in-place transforms cannot alter the cache.

    Examples
    --------
    >>> ds = StudyDataset("phantom", seeds=[0, 1], labels=[1, 0], shape=(16, 16, 16), spacing=12.0)
    >>> item = ds[0]
    >>> item["image"].shape, int(item["label"]), int(item["mask"].sum() > 0)
    (torch.Size([1, 16, 16, 16]), 1, 1)
    """

    def __init__(
        self,
        kind: str | StudyKind,
        seeds: Sequence[int],
        labels: Sequence[int],
        *,
        shape: Sequence[int] | None = None,
        spacing: float | Sequence[float] | None = None,
        keys: Sequence[str] = ("image", "healthy", "mask", "label", "seed"),
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = False,
    ) -> None:
        self.kind = StudyKind.parse(kind)
        self.seeds = [validate_seed(s, "seeds[i]") for s in seeds]
        labs = list(labels)
        if len(labs) != len(self.seeds):
            raise InputError(f"labels has {len(labs)} entries but seeds has {len(self.seeds)}")
        bad = [lab for lab in labs if isinstance(lab, bool) or int(lab) not in (0, 1)]
        if bad:
            raise InputError(f"labels must be 0 or 1, got {bad[0]!r}")
        self.labels = [int(lab) for lab in labs]
        unknown = [k for k in keys if k not in _KEYS]
        if unknown or not keys:
            raise InputError(f"keys must be a non-empty subset of {_KEYS}, got {tuple(keys)!r}")
        self.keys = tuple(keys)
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.spacing = spacing
        self.transform = transform
        self.cache = bool(cache)
        self._cache: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_plan(
        cls,
        kind: str | StudyKind,
        split: str,
        *,
        n_train: int,
        n_val: int,
        n_test: int,
        seed: int = 0,
        lesion_fraction: float = 0.5,
        **kwargs: Any,
    ) -> StudyDataset:
        """The studies of one split of :func:`~medattr.synthetic.generate_dataset`, in memory.

        Same arguments as the writer; ``split`` is ``"training"``, ``"validation"`` or
        ``"test"``; other keyword arguments go to the constructor.
        """
        if split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {split!r}")
        plan = plan_dataset(
            n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, lesion_fraction=lesion_fraction
        )[split]
        return cls(kind, [s for s, _ in plan], [lab for _, lab in plan], **kwargs)

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} studies")
        index %= len(self)
        item = self._cache.get(index)
        if item is None:
            item = self._generate(index)
            if self.cache:
                self._cache[index] = item
        # copies, so that a transform working in place cannot alter the cache
        out = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in item.items()}
        return self.transform(out) if self.transform is not None else out

    def _generate(self, index: int) -> dict[str, Any]:
        seed, label = self.seeds[index], self.labels[index]
        study = make_study(
            self.kind, seed, lesion=bool(label), shape=self.shape, spacing=self.spacing
        )
        vols = {
            "image": study.image,
            "healthy": study.healthy,
            "mask": study.mask,
            "region": study.region,
        }
        item: dict[str, Any] = {}
        for key in self.keys:
            if key in vols:
                vol = vols[key]
                arr = vol.array if vol is not None else np.zeros_like(study.image.array)
                item[key] = torch.from_numpy(np.ascontiguousarray(arr))
            elif key == "label":
                item[key] = torch.tensor(label, dtype=torch.int64)
            elif key == "seed":
                item[key] = seed
            elif key == "affine":
                item[key] = torch.from_numpy(study.image.affine.copy())
            elif key == "params":
                item[key] = study.params
        return item
