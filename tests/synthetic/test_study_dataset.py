"""Tests of the in-memory StudyDataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import medattr.synthetic as data_pkg
from medattr.errors import InputError
from medattr.synthetic import StudyDataset, make_study, plan_dataset

GRID = {"shape": (16, 16, 16), "spacing": 12.0}


def test_items_match_the_generator():
    ds = StudyDataset(
        "phantom",
        [5, 6],
        [1, 0],
        keys=("image", "healthy", "mask", "region", "label", "seed", "affine"),
        **GRID,
    )
    assert len(ds) == 2
    for i, (seed, label) in enumerate([(5, 1), (6, 0)]):
        item = ds[i]
        study = make_study("phantom", seed, lesion=bool(label), **GRID)
        np.testing.assert_array_equal(item["image"].numpy(), study.image.array)
        np.testing.assert_array_equal(item["mask"].numpy(), study.mask.array)
        assert item["image"].dtype == torch.float32 and item["image"].shape == (1, 16, 16, 16)
        assert item["label"].dtype == torch.int64 and int(item["label"]) == label
        assert item["seed"] == seed
        np.testing.assert_array_equal(item["affine"].numpy(), study.image.affine)
    np.testing.assert_array_equal(ds[-1]["image"].numpy(), ds[1]["image"].numpy())
    with pytest.raises(IndexError):
        ds[2]


def test_dataloader_collates_batches():
    ds = StudyDataset("phantom", [0, 1, 2, 3], [1, 0, 1, 0], **GRID)
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 16, 16, 16)
    assert batch["label"].tolist() == [1, 0, 1, 0]
    assert batch["mask"].flatten(1).sum(1).gt(0).tolist() == [True, False, True, False]


def test_from_plan_matches_the_writer_plan():
    ds = StudyDataset.from_plan(
        "phantom", "validation", n_train=4, n_val=3, n_test=1, seed=2, **GRID
    )
    plan = plan_dataset(n_train=4, n_val=3, n_test=1, seed=2)["validation"]
    assert list(zip(ds.seeds, ds.labels, strict=True)) == plan
    with pytest.raises(InputError, match="split"):
        StudyDataset.from_plan("phantom", "train", n_train=1, n_val=0, n_test=0)


def test_cache_and_transform():
    calls = []

    def transform(item):
        calls.append(1)
        item["image"].mul_(0).add_(7)  # in place
        return item

    ds = StudyDataset("phantom", [3], [1], transform=transform, cache=True, **GRID)
    a, b = ds[0], ds[0]
    assert len(calls) == 2 and float(a["image"].max()) == 7.0
    # the cached item itself was not modified by the transform
    assert float(ds._cache[0]["image"].max()) != 7.0
    assert float(b["image"].min()) == 7.0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("phantom", [0, 1], [1]), {}, "labels"),
        (("phantom", [0], [2]), {}, "labels"),
        (("phantom", [-1], [0]), {}, "seeds"),
        (("phantom", [0], [0]), {"keys": ("image", "pixels")}, "keys"),
        (("xray", [0], [0]), {}, "kind"),
    ],
)
def test_bad_arguments_raise(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        StudyDataset(*args, **kwargs)


def test_every_public_name_imports():
    for name in data_pkg.__all__:
        assert getattr(data_pkg, name) is not None
