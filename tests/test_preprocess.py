from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr.errors import InputError
from medattr.models import IntensitySpec, ModelSpec
from medattr.preprocess import AttributionMapping, Preprocessor
from medattr.volume import Volume

OBLIQUE = np.array(
    [
        [0.0, -2.9, 0.6, 40.0],
        [3.0, 0.0, 0.0, -25.0],
        [0.0, 0.5, 4.8, 10.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


@pytest.fixture
def setup() -> tuple[Preprocessor, Volume]:
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(0, 100, (1, 20, 22, 9)).astype(np.float32), OBLIQUE)
    spec = ModelSpec(
        pixdim=(4.0, 4.0, 4.0),
        spatial_size=(16, 16, 16),
        intensity=IntensitySpec(a_min=-200, a_max=300),
    )
    return Preprocessor(spec), vol


def test_model_grid_and_intensity(setup: tuple[Preprocessor, Volume]) -> None:
    pre, vol = setup
    p = pre(vol)
    assert p.image.shape == (1, 1, 16, 16, 16)
    assert p.spacing == pytest.approx((4.0, 4.0, 4.0))
    assert float(p.image.min()) >= 0.0 and float(p.image.max()) <= 1.0
    assert 0 < float(p.valid.float().mean()) < 1  # the source covers part of the model grid
    assert pre.spec.intensity is not None and pre.spec.intensity.to_model(-1000) == 0.0


def test_attribution_goes_back_with_its_total_and_position(
    setup: tuple[Preprocessor, Volume],
) -> None:
    pre, vol = setup
    p = pre(vol)
    g = torch.Generator().manual_seed(0)
    attr = torch.randn(1, 16, 16, 16, generator=g) * p.valid[0]
    back = pre.attribution_to_source(attr, p)
    assert back.shape == (1, 20, 22, 9)
    assert float(back.sum()) == pytest.approx(float(attr.sum()), rel=1e-5)
    # a single hot model voxel lands at the same world position (centre of mass, within a voxel)
    inside = torch.nonzero(p.valid[0, 0])
    i, j, k = inside[len(inside) // 2].tolist()
    hot = torch.zeros(1, 16, 16, 16)
    hot[0, i, j, k] = 1.0
    src = pre.attribution_to_source(hot, p)[0]
    idx = np.argwhere(src > 0)
    com = (idx * src[src > 0][:, None]).sum(0) / src.sum()
    world_model = (p.affine @ np.r_[i, j, k, 1.0])[:3]
    world_src = (vol.affine @ np.r_[com, 1.0])[:3]
    assert np.linalg.norm(world_model - world_src) < 2.0


def test_image_inverse_returns_the_source_grid(setup: tuple[Preprocessor, Volume]) -> None:
    pre, _ = setup
    smooth = Volume(np.full((1, 20, 22, 9), 50.0, np.float32), OBLIQUE)
    p = pre(smooth)
    back = pre.invert(p.image[0], p)
    assert back.shape == (1, 20, 22, 9)
    # source voxels the (cropped) model grid covers come back unchanged
    covered = pre.invert(p.valid[0].float(), p)[0] > 0.999
    assert covered.mean() > 0.8
    np.testing.assert_allclose(back[0][covered], 0.5, atol=1e-4)


def test_channel_mismatch_is_an_input_error(setup: tuple[Preprocessor, Volume]) -> None:
    pre, _ = setup
    two = Volume(np.zeros((2, 4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="expects 1 channel"):
        pre(two)


def test_smooth_mapping_keeps_the_total_and_the_position(
    setup: tuple[Preprocessor, Volume],
) -> None:
    pre, vol = setup
    p = pre(vol)
    g = torch.Generator().manual_seed(1)
    attr = torch.randn(1, 16, 16, 16, generator=g) * p.valid[0]
    back = pre.attribution_to_source(attr, p, mapping="smooth")
    assert back.shape == (1, 20, 22, 9) and back.dtype == np.float32
    assert float(back.sum()) == pytest.approx(float(attr.sum()), rel=1e-5)
    inside = torch.nonzero(p.valid[0, 0])
    i, j, k = inside[len(inside) // 2].tolist()
    hot = torch.zeros(1, 16, 16, 16)
    hot[0, i, j, k] = 1.0
    src = pre.attribution_to_source(hot, p, mapping=AttributionMapping.SMOOTH)[0]
    assert src.min() >= 0.0 and float(src.sum()) == pytest.approx(1.0, rel=1e-5)
    idx = np.argwhere(src > 0)
    com = (idx * src[src > 0][:, None]).sum(0) / src.sum()
    world_model = (p.affine @ np.r_[i, j, k, 1.0])[:3]
    world_src = (vol.affine @ np.r_[com, 1.0])[:3]
    assert np.linalg.norm(world_model - world_src) < 2.0
    # spread over the source voxels within one model voxel (4 mm) of the centre, no further
    far = np.linalg.norm((idx @ vol.affine[:3, :3].T + vol.affine[:3, 3]) - world_model, axis=1)
    assert far.max() < 4.0 * np.sqrt(3) + 0.5 * np.linalg.norm(vol.affine[:3, :3], axis=0).max()


def test_smooth_mapping_of_a_uniform_density_is_uniform() -> None:
    """Interior source voxels of a 1 mm grid under a 3 mm model get 1/27 of a model voxel each."""
    pre = Preprocessor(ModelSpec(pixdim=(3.0, 3.0, 3.0), spatial_size=(12, 12, 12)))
    vol = Volume(np.zeros((1, 30, 30, 30), np.float32), np.eye(4))
    p = pre(vol)
    back = pre.attribution_to_source(torch.ones(1, 12, 12, 12) * p.valid[0], p, "smooth")[0]
    assert float(back.sum()) == pytest.approx(float(p.valid.sum()), rel=1e-5)
    np.testing.assert_allclose(back[6:-6, 6:-6, 6:-6], 1.0 / 27.0, rtol=1e-4)


def _lesion_case() -> tuple[Preprocessor, Volume, torch.Tensor, np.ndarray]:
    """A 0.8 mm source, a 3 mm model, and a model-grid attribution on a 9 mm lesion."""
    shape = (90, 90, 60)
    affine = np.diag([0.8, 0.8, 0.8, 1.0])
    affine[:3, 3] = [-36.0, -36.0, -24.0]
    vol = Volume(np.zeros((1, *shape), np.float32), affine)
    pre = Preprocessor(ModelSpec(pixdim=(3.0, 3.0, 3.0), spatial_size=(24, 24, 16)))
    p = pre(vol)
    centre = np.array([6.0, -4.0, 3.0])  # RAS mm
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (24, 24, 16)], indexing="ij"), -1)
    dist = np.linalg.norm(grid @ p.affine[:3, :3].T + p.affine[:3, 3] - centre, axis=-1)
    attr = torch.as_tensor(np.clip(1.0 - dist / 9.0, 0.0, None), dtype=torch.float32)[None]
    src = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    lesion = np.linalg.norm(src @ affine[:3, :3].T + affine[:3, 3] - centre, axis=-1) <= 9.0
    return pre, vol, attr, lesion


def test_smooth_overlay_of_a_lesion_is_a_region_not_a_dot_lattice() -> None:
    from scipy import ndimage

    pre, vol, attr, lesion = _lesion_case()
    p = pre(vol)
    adjoint = pre.attribution_to_source(attr, p, "adjoint")[0]
    smooth = pre.attribution_to_source(attr, p, "smooth")[0]
    for back in (adjoint, smooth):
        assert float(back.sum()) == pytest.approx(float(attr.sum()), rel=1e-5)
    # the exact adjoint touches only the sampled voxels: isolated dots inside the lesion
    _, dots = ndimage.label(adjoint > 0)
    assert dots > 20 and (adjoint[lesion] > 0).mean() < 0.2
    # the smooth mapping: one connected region that fills the lesion and hugs it
    _, regions = ndimage.label(smooth > 0.1 * smooth.max())
    assert regions == 1
    core = ndimage.binary_erosion(lesion, iterations=4)  # 3.2 mm inside the edge
    assert (smooth[core] > 0).all()
    world = np.argwhere(smooth > 0) @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    assert np.linalg.norm(world - [6.0, -4.0, 3.0], axis=1).max() < 9.0 + 3.0 * np.sqrt(3)


@pytest.mark.slow
def test_explained_fine_grid_study_shows_its_lesion_as_a_region() -> None:
    """The shipped 4 mm phantom classifier on a 1.25 mm x 1.25 mm x 3 mm study of a lesion."""
    from scipy import ndimage

    from medattr import ExplainConfig, Explainer
    from medattr.synthetic import make_phantom

    study = make_phantom(3, lesion=True, shape=(150, 150, 60), spacing=(1.25, 1.25, 3.0))
    explainer = Explainer("builtin:phantom", ExplainConfig(baseline="blur", n_steps=16))
    result = explainer.explain(study.image)
    assert float(result.explanation.f_input[0]) > 0  # the model calls the lesion
    model_attr = result.explanation.attributions[0].detach()
    near = ndimage.binary_dilation(study.mask.array[0] > 0, iterations=3)
    largest = {}
    for mapping in AttributionMapping:
        back = explainer.preprocessor.attribution_to_source(model_attr, result.pre, mapping)[0]
        assert float(back.sum()) == pytest.approx(float(model_attr.sum()), rel=1e-4)
        strong = (back >= 0.1 * back[near].max()) & near
        labels, _ = ndimage.label(strong, structure=np.ones((3, 3, 3)))
        largest[mapping.value] = np.bincount(labels.ravel())[1:].max() / strong.sum()
    assert largest["smooth"] > 0.9  # one region carries the lesion's attribution
    assert largest["adjoint"] < 0.2  # the exact adjoint scatters it over dots
    # what the explainer hands to the PNG and DICOM writers is the smooth one; NIfTI: adjoint
    smooth = explainer.preprocessor.attribution_to_source(model_attr, result.pre, "smooth")[0]
    np.testing.assert_allclose(result.display, smooth, rtol=1e-5, atol=1e-9)
    adjoint = explainer.preprocessor.attribution_to_source(model_attr, result.pre, "adjoint")[0]
    np.testing.assert_allclose(result.attribution, adjoint, rtol=1e-5, atol=1e-9)


def test_unknown_mapping_is_an_input_error(setup: tuple[Preprocessor, Volume]) -> None:
    pre, vol = setup
    p = pre(vol)
    with pytest.raises(InputError, match="mapping must be one of 'adjoint', 'smooth'; got 'cubic'"):
        pre.attribution_to_source(torch.zeros(1, 16, 16, 16), p, mapping="cubic")
    with pytest.raises(InputError, match="model grid"):
        pre.attribution_to_source(torch.zeros(1, 8, 8, 8), p, mapping="smooth")
