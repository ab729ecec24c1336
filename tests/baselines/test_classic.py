from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medattr.baselines import (
    BaselineContext,
    ConstantBaseline,
    GaussianBlurBaseline,
    GaussianNoiseBaseline,
    TensorBaseline,
    UniformNoiseBaseline,
    ZeroBaseline,
    make_baseline,
    resolve_baselines,
)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(2, 1, 12, 10, 8, generator=torch.Generator().manual_seed(0)) * 100 - 20


def test_zero_and_constant(x: torch.Tensor) -> None:
    assert torch.count_nonzero(ZeroBaseline()(x)) == 0
    mins = ConstantBaseline("min")(x)
    for i in range(2):
        assert torch.all(mins[i] == x[i].min())
    assert torch.all(ConstantBaseline(-3.5)(x) == -3.5)
    with pytest.raises(ValueError, match="value must be"):
        ConstantBaseline("median")


def test_blur_sigma_zero_is_identity(x: torch.Tensor) -> None:
    ctx = BaselineContext(spacing=(1.0, 2.0, 3.0))
    assert torch.equal(GaussianBlurBaseline(sigma_mm=0.0)(x, ctx), x)


def test_blur_in_mm_uses_the_spacing(x: torch.Tensor) -> None:
    # sigma 6 mm on a (1.5, 3, 6) mm grid is (4, 2, 1) voxels: compare with scipy (edges replicated)
    ctx = BaselineContext(spacing=(1.5, 3.0, 6.0))
    ours = GaussianBlurBaseline(sigma_mm=6.0)(x, ctx).numpy()
    ref = np.stack(
        [
            gaussian_filter(
                x[i, 0].numpy().astype(np.float64), sigma=(4, 2, 1), mode="nearest", truncate=4.0
            )
            for i in range(2)
        ]
    )[:, None]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)
    by_voxel = GaussianBlurBaseline(sigma_mm=None, sigma_voxels=(4, 2, 1))(x)
    torch.testing.assert_close(by_voxel, torch.from_numpy(ours))


def test_blur_preserves_constants_at_the_border() -> None:
    flat = torch.full((1, 1, 9, 9, 9), 7.0)
    out = GaussianBlurBaseline(sigma_voxels=3.0)(flat)
    torch.testing.assert_close(out, flat)  # replicate padding: no darkening at the edge


def test_blur_needs_spacing_or_voxels(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="spacing"):
        GaussianBlurBaseline(sigma_mm=5.0)(x)
    with pytest.raises(ValueError, match="sigma"):
        GaussianBlurBaseline(sigma_mm=None, sigma_voxels=None)


def test_noise_is_seeded_and_in_range(x: torch.Tensor) -> None:
    u1, u2 = UniformNoiseBaseline(seed=3)(x), UniformNoiseBaseline(seed=3)(x)
    assert torch.equal(u1, u2)
    assert not torch.equal(u1, UniformNoiseBaseline(seed=4)(x))
    for i in range(2):
        assert u1[i].min() >= x[i].min() and u1[i].max() <= x[i].max()
    g = GaussianNoiseBaseline(sigma_fraction=0.5, seed=1)(x)
    assert torch.equal(g, GaussianNoiseBaseline(sigma_fraction=0.5, seed=1)(x))
    for i in range(2):
        assert g[i].min() >= x[i].min() and g[i].max() <= x[i].max()  # clipped
    spread = (GaussianNoiseBaseline(sigma=2.0, clip=False, seed=0)(x) - x).std().item()
    assert spread == pytest.approx(2.0, rel=0.1)
    fixed = UniformNoiseBaseline(low=-1, high=1, seed=0)(x)
    assert fixed.min() >= -1 and fixed.max() <= 1


def test_registry_and_resolution(x: torch.Tensor) -> None:
    assert isinstance(make_baseline("blur", sigma_mm=3), GaussianBlurBaseline)
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("vacuum")
    assert torch.all(resolve_baselines(None, x).baselines == 0)
    assert torch.all(resolve_baselines(2.5, x).baselines == 2.5)
    one = torch.arange(12 * 10 * 8, dtype=torch.float32).view(1, 12, 10, 8)
    res = resolve_baselines(one, x)
    assert res.baselines.shape == x.shape and torch.equal(res.baselines[1, 0], one[0])
    with pytest.raises(ValueError, match="cannot be broadcast"):
        TensorBaseline(torch.zeros(3, 3))(x)
    with pytest.raises(TypeError):
        resolve_baselines("zero", x)  # type: ignore[arg-type]
