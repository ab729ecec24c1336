"""Sliding-window attribution equals autograd through MONAI's sliding_window_inference."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet

from medattr import IntegratedGradients
from medattr.errors import ModelError
from medattr.models.inferers import SlidingWindowModel, check_inferer
from medattr.targets import SegmentationTarget


def _unet(out_channels: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return UNet(3, 1, out_channels, channels=(4, 8), strides=(2,), num_res_units=0).eval()


@pytest.mark.parametrize(
    ("shape", "roi", "overlap", "mode"),
    [
        ((20, 18, 12), (8, 8, 8), 0.25, "constant"),
        ((20, 18, 12), (8, 8, 8), 0.5, "gaussian"),
        ((6, 10, 12), (8, 8, 8), 0.25, "constant"),  # smaller than the window: padded
    ],
)
def test_window_wise_values_and_gradients_equal_autograd(
    shape: tuple[int, int, int], roi: tuple[int, int, int], overlap: float, mode: str
) -> None:
    net = _unet()
    model = SlidingWindowModel(net, roi, sw_batch_size=3, overlap=overlap, mode=mode)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, *shape, generator=g)
    weights = (torch.rand(2, *shape, generator=g) > 0.7).float()
    values, grads = model.value_and_grad(x, 1, weights)

    ref_x = x.clone().requires_grad_(True)
    out = sliding_window_inference(
        ref_x, roi, 3, net, overlap=overlap, mode=mode, sigma_scale=0.125
    )
    ref_values = (out[:, 1] * weights).flatten(1).sum(1)
    (ref_grads,) = torch.autograd.grad(ref_values.sum(), ref_x)
    torch.testing.assert_close(values.float(), ref_values.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads, ref_grads, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(model(x), out.detach(), rtol=1e-6, atol=1e-6)


def test_ig_through_windows_equals_ig_through_sliding_window_inference() -> None:
    net = _unet()
    roi = (8, 8, 8)
    model = SlidingWindowModel(net, roi, sw_batch_size=2, overlap=0.25)

    class Reference(torch.nn.Module):  # plain autograd through MONAI's function
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return sliding_window_inference(x, roi, 2, net, overlap=0.25)

    x = torch.rand(1, 1, 16, 14, 10, generator=torch.Generator().manual_seed(2))
    target = SegmentationTarget(1)
    ours = IntegratedGradients(model, internal_batch_size=3).explain(x, 0.0, target, n_steps=6)
    ref = IntegratedGradients(Reference()).explain(x, 0.0, SegmentationTarget(1), n_steps=6)
    torch.testing.assert_close(ours.attributions, ref.attributions, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.f_input, ref.f_input)
    assert abs(float(ours.convergence_delta[0] - ref.convergence_delta[0])) < 1e-4


def test_inferer_settings_are_checked() -> None:
    assert check_inferer({"roi_size": 32})["roi_size"] == [32, 32, 32]
    with pytest.raises(ModelError, match="roi_size must be positive"):
        check_inferer({"roi_size": [0, 32, 32]})
    with pytest.raises(ModelError, match="overlap must be in"):
        check_inferer({"roi_size": [32, 32, 32], "overlap": 1.0})
    with pytest.raises(ModelError, match="unknown inferer setting"):
        check_inferer({"roi_size": [32, 32, 32], "stride": 2})
