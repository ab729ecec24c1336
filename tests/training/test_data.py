"""Rendering generated studies for training: arrays kept, categories, cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medattr.training.data import render_split

TINY_PHANTOM = {"shape": (16, 16, 16), "spacing": 12.0}


def test_render_split_keeps_the_arrays_asked_for_and_caches(tmp_path: Path) -> None:
    full = render_split("phantom", [3, 4], [False, True], workers=1, options=TINY_PHANTOM)
    assert {"image", "healthy", "mask", "label", "seed"} <= set(full)
    some = render_split(
        "phantom",
        [3, 4],
        [False, True],
        workers=1,
        options=TINY_PHANTOM,
        cache_dir=tmp_path,
        arrays=("image",),
    )
    assert "healthy" not in some and "mask" not in some
    np.testing.assert_array_equal(some["image"], full["image"])
    assert len(list(tmp_path.glob("*.npz"))) == 1
    again = render_split(
        "phantom",
        [3, 4],
        [False, True],
        workers=1,
        options=TINY_PHANTOM,
        cache_dir=tmp_path,
        arrays=("image",),
    )
    np.testing.assert_array_equal(again["image"], some["image"])
    # a different selection of arrays is a different cache entry
    render_split(
        "phantom", [3, 4], [False, True], workers=1, options=TINY_PHANTOM, cache_dir=tmp_path
    )
    assert len(list(tmp_path.glob("*.npz"))) == 2
    with pytest.raises(ValueError, match="arrays"):
        render_split("phantom", [3], [False], arrays=("image", "segmentation"))


def test_mni_render_records_each_lesion_category(tmp_path: Path) -> None:
    pytest.importorskip("nilearn")
    wide = {"lesions": "widened"}
    out = render_split(
        "mni",
        [0, 1, 2],
        [True, False, True],
        workers=1,
        cache_dir=tmp_path,
        arrays=("image",),
        options=wide,
    )
    fields = {k.removeprefix("category_") for k in out if k.startswith("category_")}
    assert fields == {"location", "count", "shape", "contrast", "polarity"}
    assert out["category_location"][1] == ""  # no lesion, no category
    assert out["category_location"][0] in ("deep", "cortical", "infratentorial")
    cached = render_split(
        "mni",
        [0, 1, 2],
        [True, False, True],
        workers=1,
        cache_dir=tmp_path,
        arrays=("image",),
        options=wide,
    )
    np.testing.assert_array_equal(cached["category_shape"], out["category_shape"])
    # the classic studies record no category, and are cached apart from the widened ones
    classic = render_split(
        "mni", [0, 1, 2], [True, False, True], workers=1, cache_dir=tmp_path, arrays=("image",)
    )
    assert not any(k.startswith("category_") for k in classic)
    assert not np.array_equal(classic["image"][0], out["image"][0])
