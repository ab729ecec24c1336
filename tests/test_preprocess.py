from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr.models import IntensitySpec, ModelSpec
from medattr.preprocess import Preprocessor
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
