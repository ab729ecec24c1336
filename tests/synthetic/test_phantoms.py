"""Tests of the procedural torso phantom."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medattr.errors import InputError
from medattr.synthetic import Phantom, centred_affine, make_phantom
from medattr.synthetic.study import world_points

SMALL = {"shape": (32, 32, 32), "spacing": 6.0}


def test_same_seed_gives_identical_arrays_and_params():
    a = make_phantom(11, lesion=True, **SMALL)
    b = make_phantom(11, lesion=True, **SMALL)
    for name in ("image", "healthy", "mask", "region"):
        np.testing.assert_array_equal(getattr(a, name).array, getattr(b, name).array)
    assert a.params == b.params
    json.dumps(a.params)  # JSON-able


def test_different_seeds_differ():
    a = make_phantom(1, lesion=False, **SMALL)
    b = make_phantom(2, lesion=False, **SMALL)
    assert np.abs(a.image.array - b.image.array).mean() > 5.0


def test_healthy_render_is_exactly_the_twin():
    sick = make_phantom(4, lesion=True)
    well = make_phantom(4, lesion=False)
    np.testing.assert_array_equal(well.image.array, sick.healthy.array)
    np.testing.assert_array_equal(well.image.array, well.healthy.array)
    assert well.mask.array.sum() == 0 and well.label == 0 and well.params["lesion"] is None
    assert sick.label == 1 and sick.params["label"] == 1


@pytest.mark.parametrize("seed", [0, 3, 8])
def test_image_differs_from_twin_only_inside_a_nonempty_mask(seed):
    s = make_phantom(seed, lesion=True)
    diff = s.image.array - s.healthy.array
    m = s.mask.array > 0
    assert set(np.unique(s.mask.array)) <= {0.0, 1.0}
    assert m.sum() >= 8
    assert not np.any(diff[~m])
    assert np.mean(diff[m] != 0) > 0.95
    assert s.params["lesion"]["voxels"] == int(m.sum())


def test_lesion_lies_inside_its_organ_and_the_body():
    for seed in (0, 4, 5):  # liver, spleen and kidney lesions
        s = make_phantom(seed, lesion=True, shape=(40, 40, 40), spacing=5.0)
        m = s.mask.array[0] > 0
        assert np.all(s.region.array[0][m] == 1)
        pts = world_points(s.mask.spatial_shape, s.mask.affine)[:, m.ravel()]
        organ = s.params["lesion"]["organ"]
        vis = Phantom.from_seed(seed).organ_visibility(pts)[organ]
        assert np.all(vis >= 0.999)


def test_hyper_and_hypo_intense_lesions_both_occur_with_matching_sign():
    polarity = {seed: Phantom.from_seed(seed).lesion.polarity for seed in range(20)}
    assert set(polarity.values()) == {"hyper", "hypo"}
    first = {p: min(s for s in polarity if polarity[s] == p) for p in ("hyper", "hypo")}
    for pol, seed in first.items():
        s = make_phantom(seed, lesion=True, **SMALL)
        mean_diff = float(s.difference[s.mask.array > 0].mean())
        assert np.sign(mean_diff) == (1 if pol == "hyper" else -1)
        assert abs(mean_diff) > 5.0


def test_intensities_are_hu_like():
    s = make_phantom(5, lesion=False)
    img = s.image.array[0]
    corner = img[:4, :4, :]
    assert abs(float(corner.mean()) + 1000.0) < 5.0  # air
    assert float(img.max()) > 500.0  # bone
    body = img[s.region.array[0] > 0]
    assert -150.0 < float(np.median(body)) < 80.0  # mostly soft tissue and fat


def test_rendering_on_a_finer_grid_agrees_where_voxel_centres_coincide():
    coarse = make_phantom(6, lesion=True, shape=(24, 24, 24), spacing=8.0, noise=False)
    fine = make_phantom(6, lesion=True, shape=(47, 47, 47), spacing=4.0, noise=False)
    # coarse centres: -92 + 8i; fine centres: -92 + 4j, so j = 2i
    np.testing.assert_allclose(fine.image.array[:, ::2, ::2, ::2], coarse.image.array, atol=1e-3)
    np.testing.assert_array_equal(fine.mask.array[:, ::2, ::2, ::2], coarse.mask.array)


def test_rendering_on_a_permuted_flipped_grid_matches():
    shape = (20, 24, 28)
    base_aff = centred_affine(shape, (5.0, 4.0, 3.0))
    base = make_phantom(9, lesion=True, shape=shape, affine=base_aff, noise=False)
    # a grid whose axes run (S, -R, A): same voxel centres, reordered
    ref = base.image.array[0]
    perm = np.transpose(ref, (2, 0, 1))[:, ::-1, :]
    aff = np.zeros((4, 4))
    aff[3, 3] = 1.0
    aff[2, 0] = 3.0  # i -> S
    aff[0, 1] = -5.0  # j -> -R
    aff[1, 2] = 4.0  # k -> A
    aff[:3, 3] = base_aff[:3, :3] @ np.array([shape[0] - 1, 0, 0]) + base_aff[:3, 3]
    other = make_phantom(9, lesion=True, shape=perm.shape, affine=aff, noise=False)
    np.testing.assert_allclose(other.image.array[0], perm, atol=1e-3)
    np.testing.assert_array_equal(other.image.affine, aff)
    perm_mask = np.transpose(base.mask.array[0], (2, 0, 1))[:, ::-1, :]
    np.testing.assert_array_equal(other.mask.array[0], perm_mask)


def test_lesion_volume_is_independent_of_grid_orientation():
    ph = Phantom.from_seed(2)
    center = np.asarray(ph.lesion.shape.ellipsoid.center)
    n = int(np.ceil(2 * ph.lesion.shape.extent_mm / 1.5)) + 4
    axial = ph.render(
        (n, n, n), 1.5, centred_affine((n, n, n), 1.5, center), lesion=True, noise=False
    )
    c, s = np.cos(0.5), np.sin(0.5)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.array(
        [[1, 0, 0], [0, c, -s], [0, s, c]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot * np.array([1.5, 1.2, 1.8])  # oblique and anisotropic
    aff[:3, 3] = center - aff[:3, :3] @ (np.array([n, n, n]) - 1) / 2
    oblique = ph.render((n, n, n), affine=aff, lesion=True, noise=False)
    v_axial = axial.params["lesion"]["volume_mm3"]
    v_oblique = oblique.params["lesion"]["volume_mm3"]
    assert v_axial > 4 / 3 * np.pi * 5.0**3
    assert abs(v_oblique - v_axial) / v_axial < 0.05


def test_render_keeps_the_requested_geometry():
    aff = centred_affine((16, 20, 12), (3.0, 2.0, 5.0), (10.0, -5.0, 0.0))
    s = make_phantom(0, lesion=False, shape=(16, 20, 12), affine=aff)
    for vol in (s.image, s.healthy, s.mask, s.region):
        assert vol.array.shape == (1, 16, 20, 12) and vol.array.dtype == np.float32
        np.testing.assert_array_equal(vol.affine, aff)
    assert s.image.spacing == (3.0, 2.0, 5.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": 0, "shape": (10, 10)}, "shape"),
        ({"seed": 0, "shape": (10, 0, 10)}, "shape"),
        ({"seed": 0, "spacing": (1.0, -1.0, 1.0)}, "spacing"),
        ({"seed": 0, "affine": np.zeros((4, 4))}, "affine"),
        ({"seed": 0, "affine": np.eye(3)}, "affine"),
    ],
)
def test_bad_arguments_raise_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        make_phantom(lesion=True, **kwargs)


def test_lesion_flag_must_be_boolean():
    with pytest.raises(InputError, match="lesion"):
        make_phantom(0, lesion="yes")  # type: ignore[arg-type]
