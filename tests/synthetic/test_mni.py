"""Tests of the MNI152-based brain studies."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from scipy import ndimage

pytest.importorskip("nilearn")

from medattr.errors import InputError
from medattr.synthetic import make_mni_study, mni_reference
from medattr.synthetic.mni import _reference


def test_reference_loads_offline_and_has_plausible_geometry(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    _reference.cache_clear()
    template, brain = mni_reference()
    assert template.spatial_shape == (64, 64, 64)
    assert template.spacing == (3.0, 3.0, 3.0)
    np.testing.assert_array_equal(template.affine, brain.affine)
    t, b = template.array[0], brain.array[0] > 0
    assert t.min() >= 0.0 and t.max() == 1.0
    litres = b.sum() * 27.0 / 1e6
    assert 1.2 < litres < 2.2
    near = ndimage.binary_dilation(b, iterations=2)
    assert np.all(t[~near] < 0.1)  # skull-stripped: dark away from the brain
    assert not (
        b[0].any()
        or b[-1].any()
        or b[:, 0].any()
        or b[:, -1].any()
        or b[:, :, 0].any()
        or b[:, :, -1].any()
    )
    # the MNI origin (anterior commissure) lies in the brain
    origin_vox = np.linalg.solve(template.affine, [0.0, 0.0, 0.0, 1.0])[:3].round().astype(int)
    assert b[tuple(origin_vox)]


def test_reference_is_left_right_symmetric_about_x_zero():
    template, _ = mni_reference()
    # the grid is centred on x = 0, so flipping axis i mirrors x -> -x
    assert abs(template.affine[0, 3] + template.affine[0, 0] * 63 / 2) < 1e-9
    t = template.array[0]
    corr = np.corrcoef(t.ravel(), t[::-1].ravel())[0, 1]
    assert corr > 0.95


def test_unaugmented_noise_free_healthy_study_is_the_template():
    template, brain = mni_reference()
    s = make_mni_study(0, lesion=False, augment=False, noise=False)
    np.testing.assert_array_equal(s.image.array, template.array)
    np.testing.assert_array_equal(s.region.array, brain.array)


def test_same_seed_identical_and_different_seeds_differ():
    a = make_mni_study(21, lesion=True)
    b = make_mni_study(21, lesion=True)
    for name in ("image", "healthy", "mask", "region"):
        np.testing.assert_array_equal(getattr(a, name).array, getattr(b, name).array)
    assert a.params == b.params
    c = make_mni_study(22, lesion=True)
    assert np.abs(a.healthy.array - c.healthy.array).mean() > 0.01


def test_output_does_not_depend_on_the_number_of_threads():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = make_mni_study(5, lesion=True)
        torch.set_num_threads(max(2, before))
        more = make_mni_study(5, lesion=True)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one.image.array, more.image.array)


def test_augmentation_deforms_anatomy_mildly():
    _, brain = mni_reference()
    b0 = brain.array[0] > 0
    for seed in (1, 2):
        s = make_mni_study(seed, lesion=False, noise=False)
        b = s.region.array[0] > 0
        dice = 2 * (b & b0).sum() / (b.sum() + b0.sum())
        assert 0.8 < dice < 0.995
        assert s.image.array.min() >= 0.0 and s.image.array.max() <= 1.0


def test_healthy_render_is_exactly_the_twin():
    sick = make_mni_study(8, lesion=True)
    well = make_mni_study(8, lesion=False)
    np.testing.assert_array_equal(well.image.array, sick.healthy.array)
    np.testing.assert_array_equal(well.image.array, well.healthy.array)
    assert well.mask.array.sum() == 0 and well.label == 0 and well.params["lesion"] is None


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_image_differs_from_twin_only_inside_a_mask_within_the_brain(seed):
    s = make_mni_study(seed, lesion=True)
    m = s.mask.array > 0
    diff = s.image.array - s.healthy.array
    assert m.sum() >= 8 and s.label == 1
    assert not np.any(diff[~m])
    assert np.mean(diff[m] != 0) > 0.95
    assert np.all(s.region.array[m] == 1)
    assert s.params["lesion"]["voxels"] == int(m.sum())


def test_lesions_vary_in_polarity_shape_and_size():
    seen, shapes, sizes = set(), set(), []
    for seed in range(8):
        s = make_mni_study(seed, lesion=True, noise=False)
        les = s.params["lesion"]
        mean_diff = float(s.difference[s.mask.array > 0].mean())
        assert np.sign(mean_diff) == (1 if les["polarity"] == "hyper" else -1)
        seen.add(les["polarity"])
        shapes.add(les["shape"])
        sizes.append(les["volume_mm3"])
    assert seen == {"hyper", "hypo"}
    assert shapes == {"ellipsoid", "lobulated"}
    assert max(sizes) > 3 * min(sizes)


@pytest.fixture(scope="module")
def lesion_studies():
    """40 widened lesion studies without noise (the lesion does not depend on the noise)."""
    return [make_mni_study(seed, lesion=True, noise=False, lesions="widened") for seed in range(40)]


def test_widened_lesions_keep_the_healthy_twin_and_classic_studies_stay_version_1():
    healthy = make_mni_study(7, lesion=False)
    widened = make_mni_study(7, lesion=True, lesions="widened")
    classic = make_mni_study(7, lesion=True)
    np.testing.assert_array_equal(widened.healthy.array, healthy.image.array)
    np.testing.assert_array_equal(classic.healthy.array, healthy.image.array)
    assert "category" in widened.params["lesion"] and "category" not in classic.params["lesion"]
    assert classic.params["lesion"]["shape"] in ("ellipsoid", "lobulated")
    assert not np.array_equal(widened.mask.array, classic.mask.array)


def test_unknown_lesion_kind_is_refused():
    with pytest.raises(InputError, match="lesions must be one of"):
        make_mni_study(0, lesion=True, lesions="brats")


def test_every_category_value_occurs_and_is_recorded(lesion_studies):
    from medattr.synthetic._mni_lesions import (
        CONTRAST_CLASSES,
        COUNTS,
        LOCATIONS,
        POLARITIES,
        SHAPE_CLASSES,
    )

    wanted = {
        "location": set(LOCATIONS),
        "count": set(COUNTS),
        "shape": set(SHAPE_CLASSES),
        "contrast": set(CONTRAST_CLASSES),
        "polarity": set(POLARITIES),
    }
    seen: dict[str, set[str]] = {k: set() for k in wanted}
    for s in lesion_studies:
        les = s.params["lesion"]
        cat = les["category"]
        assert set(cat) == set(wanted)
        for k, v in cat.items():
            seen[k].add(v)
        assert (cat["count"] == "single") == (les["n_lesions"] == 1) == (len(les["lesions"]) == 1)
        assert 1 <= les["n_lesions"] <= 4
    assert seen == wanted


def test_contrast_is_realised_visible_and_classed(lesion_studies):
    from medattr.synthetic._mni_lesions import CONTRAST_CLASSES, contrast_class

    for s in lesion_studies:
        les = s.params["lesion"]
        deltas = []
        for one in les["lesions"]:
            delta = abs(one["lesion_level"] - one["tissue_mean"])
            assert delta == pytest.approx(one["contrast"], abs=2e-6)
            assert delta >= one["visibility_floor"] - 2e-6 >= 0.06 - 2e-6  # visible at 3 mm
            assert delta <= CONTRAST_CLASSES["high"][1] + 1e-6
            deltas.append(delta)
        assert les["category"]["contrast"] == contrast_class(max(deltas))
        # the lesion moves the image by about its contrast where it is at full weight
        diff = np.abs(s.difference[0])
        assert diff.max() > 0.5 * min(deltas)


def test_lesions_lie_where_their_location_class_says(lesion_studies):
    from medattr.synthetic.mni import _infratentorial

    for s in lesion_studies:
        les = s.params["lesion"]
        where = les["category"]["location"]
        centres = np.array([one["center_mm"] for one in les["lesions"]]).T
        # the template's compartments, in the subject's (mildly deformed) frame
        infra = _infratentorial(centres).astype(bool)
        mask = s.mask.array[0] > 0
        brain = s.region.array[0] > 0
        assert not np.any(mask & ~brain)
        depths = [one["depth_mm"] for one in les["lesions"]]
        if where == "infratentorial":
            assert infra.mean() >= 0.5, (s.params["seed"], centres)
        else:
            assert not infra.any(), (s.params["seed"], centres)
        if where == "deep":
            extent = [max(one["radii_mm"]) * (1 + one["lobe_amplitude"]) for one in les["lesions"]]
            assert all(d >= e for d, e in zip(depths, extent, strict=True))
        if where == "cortical":
            assert all(d <= 20.0 + 1e-6 for d in depths)


def test_multiple_lesions_do_not_overlap(lesion_studies):
    for s in lesion_studies:
        les = s.params["lesion"]
        c = np.array([one["center_mm"] for one in les["lesions"]])
        ext = np.array(
            [max(one["radii_mm"]) * (1 + one["lobe_amplitude"]) for one in les["lesions"]]
        )
        for a in range(len(c)):
            for b in range(a + 1, len(c)):
                assert np.linalg.norm(c[a] - c[b]) >= ext[a] + ext[b]


def test_lesion_does_not_depend_on_whether_noise_is_added():
    quiet = make_mni_study(4, lesion=True, noise=False, lesions="widened")
    noisy = make_mni_study(4, lesion=True, lesions="widened")
    np.testing.assert_array_equal(quiet.mask.array, noisy.mask.array)
    np.testing.assert_allclose(quiet.difference, noisy.difference, atol=1e-6)
    assert quiet.params["lesion"] == noisy.params["lesion"]


def test_other_grids_are_supported():
    s = make_mni_study(0, lesion=True, shape=(40, 48, 40), spacing=4.0)
    assert s.image.spatial_shape == (40, 48, 40) and s.image.spacing == (4.0, 4.0, 4.0)
    assert s.mask.array.sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": -3}, "seed"),
        ({"seed": 0, "shape": (64, 64)}, "shape"),
        ({"seed": 0, "spacing": 0.0}, "spacing"),
        ({"seed": 0, "lesion": 1}, "lesion"),
    ],
)
def test_bad_arguments_raise_input_errors(kwargs, match):
    kwargs.setdefault("lesion", True)
    with pytest.raises(InputError, match=match):
        make_mni_study(**kwargs)
