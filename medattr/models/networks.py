"""The small networks medattr ships (architectures only; weights live in ``medattr/assets``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["LesionDetector3D"]


class LesionDetector3D(torch.nn.Module):
    """A fully convolutional lesion detector with global max pooling.

    "Is there a lesion anywhere?" is a detection question: the same local evidence should count
    wherever it appears. Strided convolution blocks (MONAI ``Convolution`` units: conv and
    ReLU) compute a lesion-evidence map, a 1x1x1 convolution turns it into two per-location
    logit maps, and the maximum over space gives the class logits. Compared with a
    flatten-then-linear head, it needs far fewer examples to learn, works for any input size, and
    its attributions concentrate where the evidence is.

    Parameters
    ----------
    in_channels, num_classes
        Input channels and output classes.
    channels, strides
        Widths and strides of the convolution blocks (each block: a strided unit then a
        stride-1 unit).
    norm
        Normalisation in each unit (MONAI name, e.g. ``"batch"``), ``None`` by default. Batch
        norm lets a detector with a global maximum learn "is this study the outlier of its
        batch" (training loss near zero while evaluation stays at chance), and per-sample norms
        (instance, group) make the network scale-invariant, which puts the whole Integrated
        Gradients attribution from a zero baseline at the singular start of the path.

    Examples
    --------
    >>> net = LesionDetector3D(channels=(4, 8), strides=(2, 2)).eval()
    >>> net(torch.rand(2, 1, 16, 16, 16)).shape
    torch.Size([2, 2])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        channels: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (2, 2, 1),
        norm: str | None = None,
    ) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        if len(channels) != len(strides) or not channels:
            raise ValueError("channels and strides must be non-empty and of equal length")
        layers: list[torch.nn.Module] = []
        prev = in_channels
        for ch, st in zip(channels, strides, strict=True):
            layers.append(
                Convolution(3, prev, ch, strides=st, kernel_size=3, norm=norm, act="relu")
            )
            layers.append(
                Convolution(3, ch, ch, strides=1, kernel_size=3, norm=norm, act="relu")
            )
            prev = ch
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Conv3d(prev, num_classes, kernel_size=1)

    def evidence(self, x: Tensor) -> Tensor:
        """Per-location class logits ``(N, classes, *spatial / prod(strides))``."""
        return self.head(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return torch.amax(self.evidence(x), dim=(2, 3, 4))
