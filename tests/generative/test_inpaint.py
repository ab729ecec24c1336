"""The inpainter keeps every voxel outside the mask exactly, as a module and once exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medattr.errors import InputError, ModelError
from medattr.generative import HealthyInpainter, load_inpainter
from medattr.models import ModelSpec, export_torchscript


def _net(seed: int = 0) -> HealthyInpainter:
    torch.manual_seed(seed)
    return HealthyInpainter(channels=(4, 8, 16), strides=(2, 2)).eval()


def _mask(shape: tuple[int, ...]) -> torch.Tensor:
    m = torch.zeros(shape)
    m[..., 3:9, 2:7, 4:8] = 1
    m[0, ..., 12:15, 12:15, 12:15] = 1
    return m


def test_forward_keeps_every_voxel_outside_the_mask_bit_for_bit() -> None:
    x = torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    m = _mask(x.shape)
    out = _net()(x, m)
    outside = m == 0
    assert torch.equal(out[outside], x[outside])
    assert not torch.equal(out[~outside], x[~outside])  # the hole was filled with something
    # the prediction inside the hole does not depend on what was in the hole
    x2 = torch.where(m > 0, torch.rand_like(x), x)
    torch.testing.assert_close(_net()(x2, m), torch.where(m > 0, out, x2))


def test_loaded_inpainter_pads_any_grid_and_keeps_outside_voxels(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "inp.ts"
    export_torchscript(net, ModelSpec(class_names=["healthy"], extra={"strides": [2, 2]}), path)
    inp = load_inpainter(path)
    assert inp.multiple == 4 and inp.calibration is None
    x = torch.rand(1, 1, 15, 13, 18, generator=torch.Generator().manual_seed(1))
    m = torch.zeros_like(x)
    m[..., 4:9, 3:8, 5:11] = 1
    y = inp.infill(x, m)
    assert y.shape == x.shape
    assert torch.equal(y[m == 0], x[m == 0])
    # TorchScript gives the module's numbers
    xp = torch.nn.functional.pad(x, (0, 2, 0, 3, 0, 1), mode="replicate")
    mp = torch.nn.functional.pad(m, (0, 2, 0, 3, 0, 1))
    ref = net.predict(xp, mp)[..., :15, :13, :18]
    torch.testing.assert_close(inp.predict(x, m), ref)
    mean, scale = inp.predict_with_scale(x, m)
    torch.testing.assert_close(mean, ref)
    assert scale.shape == x.shape and float(scale.min()) >= 0.005


def test_bad_inputs_and_files_are_refused(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "inp.ts"
    export_torchscript(net, ModelSpec(class_names=["healthy"]), path)
    inp = load_inpainter(path)
    with pytest.raises(InputError, match=r"mask must have the shape of x"):
        inp.infill(torch.rand(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 4))
    with pytest.raises(InputError, match=r"\(B, 1, D, H, W\)"):
        inp.infill(torch.rand(8, 8, 8), torch.zeros(8, 8, 8))
    with pytest.raises(ModelError, match="not found"):
        load_inpainter(tmp_path / "absent.ts")
    with pytest.raises(InputError, match="strides"):
        HealthyInpainter(channels=(4, 8), strides=(2, 2))


def test_prefill_fills_holes_from_their_surroundings_only() -> None:
    net = _net()
    x = torch.full((1, 1, 16, 16, 16), 0.7)
    m = torch.zeros_like(x)
    m[..., 2:14, 3:13, 4:12] = 1  # a large hole: filled from coarse levels
    torch.testing.assert_close(net.prefill(x, m), x)
    # a smooth ramp is continued into a small hole, roughly
    ramp = torch.linspace(0, 1, 16).view(1, 1, 16, 1, 1).expand(1, 1, 16, 16, 16).contiguous()
    small = torch.zeros_like(ramp)
    small[..., 6:10, 6:10, 6:10] = 1
    filled = net.prefill(ramp, small)
    assert float((filled - ramp).abs()[small > 0].max()) < 0.1
    assert torch.equal(filled[small == 0], ramp[small == 0])
