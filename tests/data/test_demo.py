"""The shipped demo study is what the generator renders (provenance of the embedded data)."""

from __future__ import annotations

import numpy as np

from medattr.data.demo import demo_affine, demo_study_path, make_demo_study
from medattr.io import read_nifti


def test_shipped_demo_matches_the_generator() -> None:
    study = make_demo_study()
    image = read_nifti(demo_study_path())
    mask = read_nifti(demo_study_path(part="mask"))
    np.testing.assert_allclose(image.affine, demo_affine(), atol=1e-5)
    assert image.spatial_shape == (80, 80, 40)
    # stored as 16-bit HU: equal to the rendering up to rounding
    assert np.abs(image.array - study.image.array).max() <= 0.5 + 1e-3
    assert np.array_equal(mask.array > 0.5, study.mask.array > 0.5)
    assert study.label == 1 and mask.array.sum() > 50
    # LPS voxel order: i runs toward the patient's left, j toward posterior
    assert image.affine[0, 0] < 0 and image.affine[1, 1] < 0
