"""The shipped demo studies are what the generator renders (provenance of the embedded data)."""

from __future__ import annotations

import numpy as np

from medattr.io import read_nifti
from medattr.synthetic.demo import DEMO_SEEDS, demo_affine, demo_study_path, make_demo_study


def test_shipped_phantom_demo_matches_the_generator() -> None:
    study = make_demo_study("phantom")
    image = read_nifti(demo_study_path("phantom"))
    mask = read_nifti(demo_study_path("phantom", part="mask"))
    np.testing.assert_allclose(image.affine, demo_affine(), atol=1e-5)
    assert image.spatial_shape == (80, 80, 40)
    # stored as 16-bit HU: equal to the rendering up to rounding
    assert np.abs(image.array - study.image.array).max() <= 0.5 + 1e-3
    assert np.array_equal(mask.array > 0.5, study.mask.array > 0.5)
    assert study.label == 1 and mask.array.sum() > 50
    # LPS voxel order: i runs toward the patient's left, j toward posterior
    assert image.affine[0, 0] < 0 and image.affine[1, 1] < 0


def test_shipped_brain_demo_matches_the_generator_in_lps_order() -> None:
    from medattr.synthetic.mni import make_mni_study

    study = make_demo_study("mni")
    image = read_nifti(demo_study_path("mni"))
    mask = read_nifti(demo_study_path("mni", part="mask"))
    assert image.spatial_shape == (64, 64, 64)
    np.testing.assert_array_equal(image.array, study.image.array)  # float32, exact
    assert np.array_equal(mask.array > 0.5, study.mask.array > 0.5)
    assert image.affine[0, 0] < 0 and image.affine[1, 1] < 0  # LPS voxel order
    # the same voxels in world space as the generator's RAS-ordered rendering
    ras = make_mni_study(DEMO_SEEDS["mni"], lesion=True, shape=(64, 64, 64))
    np.testing.assert_array_equal(image.array[:, ::-1, ::-1, :], ras.image.array)
    corner = image.affine @ np.array([63, 63, 0, 1.0])
    np.testing.assert_allclose(corner, ras.image.affine @ np.array([0, 0, 0, 1.0]), atol=1e-5)
    assert study.label == 1 and mask.array.sum() > 20
