"""The inpainter's training holes: lesion-like, varied, seeded, inside the region."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medattr.errors import InputError
from medattr.training.masks import MASK_KINDS, LesionLikeMaskGenerator


def _components(m: np.ndarray) -> int:
    return int(ndimage.label(m, structure=np.ones((3, 3, 3)))[1])


def test_masks_are_seeded_non_empty_and_bounded() -> None:
    gen = LesionLikeMaskGenerator(components=(1, 3), max_fraction=0.2)
    a = [gen(np.random.default_rng(s), (32, 32, 32), (3.0, 3.0, 3.0)) for s in range(30)]
    b = [gen(np.random.default_rng(s), (32, 32, 32), (3.0, 3.0, 3.0)) for s in range(30)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert all(m.any() for m in a)
    # components can touch and merge, but masks of one and of several components both occur
    counts = {min(_components(m), 3) for m in a}
    assert 1 in counts and len(counts) >= 2
    sizes = np.array([m.sum() for m in a])
    assert sizes.max() > 10 * sizes.min()  # varied sizes


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_each_kind_draws_a_compact_shape_of_about_the_radius(kind: str) -> None:
    gen = LesionLikeMaskGenerator(radius_mm=(9.0, 9.0), components=(1, 1), kinds=[kind])
    vols = []
    for s in range(8):
        m = gen(np.random.default_rng(s), (40, 40, 40), (3.0, 3.0, 3.0))
        vols.append(m.sum() * 27.0)
    ball = 4 / 3 * np.pi * 9.0**3  # 3054 mm3
    assert ball / 8 < np.median(vols) < ball * 8


def test_centres_lie_in_the_region_and_cut_components_stay_inside() -> None:
    region = np.zeros((32, 32, 32), bool)
    region[4:14, 4:14, 4:14] = True
    gen = LesionLikeMaskGenerator(radius_mm=(3.0, 6.0), cut_probability=1.0)
    for s in range(10):
        m = gen(np.random.default_rng(s), region.shape, (3.0, 3.0, 3.0), region)
        assert m.any() and not (m & ~region).any()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(InputError, match="radius_mm"):
        LesionLikeMaskGenerator(radius_mm=(5.0, 2.0))
    with pytest.raises(InputError, match="kinds"):
        LesionLikeMaskGenerator(kinds=["star"])
    with pytest.raises(InputError, match="region must have shape"):
        LesionLikeMaskGenerator()(np.random.default_rng(0), (8, 8, 8), region=np.ones((4, 4, 4)))
