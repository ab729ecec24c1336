"""Shared fixtures: tiny analytic models with known attributions (after Captum's helper models)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medattr.models import IntensitySpec, ModelSpec, export_torchscript


class LinearModel(torch.nn.Module):
    """f(x) = <w, x> + b per output class; IG of class c is exactly w_c * (x - x')."""

    def __init__(self, shape: tuple[int, ...], classes: int = 2, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        n = 1
        for s in shape:
            n *= s
        self.weight = torch.nn.Parameter(torch.randn(classes, n, generator=g))
        self.bias = torch.nn.Parameter(torch.randn(classes, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


class SmallConvNet(torch.nn.Module):
    """A ReLU or sigmoid 3D CNN with a 2-class head."""

    def __init__(self, act: str = "relu", channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = torch.nn.Conv3d(1, channels, 3, padding=1)
        self.conv2 = torch.nn.Conv3d(channels, channels, 3, padding=1, stride=2)
        self.act = torch.nn.ReLU() if act == "relu" else torch.nn.Sigmoid()
        self.head = torch.nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.conv2(self.act(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3, 4)))


@pytest.fixture
def volume_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(2, 1, 8, 8, 8, generator=g)


@pytest.fixture
def relu_net() -> torch.nn.Module:
    return SmallConvNet("relu").eval()


@pytest.fixture
def sigmoid_net() -> torch.nn.Module:
    return SmallConvNet("sigmoid").eval()


def tiny_spec() -> ModelSpec:
    """A 2-class CT-like contract: 16^3 voxels of 4 mm, HU window [-200, 300]."""
    return ModelSpec(
        class_names=["healthy", "lesion"],
        default_target=1,
        pixdim=(4.0, 4.0, 4.0),
        spatial_size=(16, 16, 16),
        intensity=IntensitySpec(a_min=-200, a_max=300),
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MONAI Classifier exported as TorchScript with :func:`tiny_spec`."""
    from monai.networks.nets import Classifier

    torch.manual_seed(0)
    net = Classifier(in_shape=(1, 16, 16, 16), classes=2, channels=(4, 8), strides=(2, 2))
    path = tmp_path_factory.mktemp("model") / "tiny.ts"
    export_torchscript(net, tiny_spec(), path)
    return path
