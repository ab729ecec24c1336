"""The small networks medattr ships (architectures only; weights live in ``medattr/assets``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["LesionDetector3D"]


class LesionDetector3D(torch.nn.Module):
    """A fully convolutional lesion classifier: an evidence map, pooled over space.

    Strided convolution blocks (MONAI ``Convolution`` units: conv, batch norm, leaky ReLU) and a
    1x1x1 convolution compute a map of lesion evidence per location (:meth:`evidence`); the
    study's lesion log-odds ``m`` is its mean over space, returned as the two class logits
    ``(-m/2, +m/2)`` so that softmax gives ``sigmoid(m)`` and both classes are explainable
    targets. It works for any input size, and the evidence map shows where the model looks.

    Two designs that look more natural for "is there a lesion anywhere?" failed to train on the
    generated studies on CPU budgets (measured; see ``docs/models.md``): a global *maximum*
    (its gradient reaches one cell per study, so the network memorises the training set while
    validation AUC stays at chance, also on a toy task a mean-pooled network solves in 50 steps),
    and the same without normalisation (training stalled). ``pool="lse"`` sits between the two:
    the log of the mean of ``exp(evidence)``, which starts as the mean while the evidence is
    flat and moves towards the maximum as it sharpens, so one small lesion can carry the study
    while every location still receives gradient.

    Parameters
    ----------
    in_channels
        Input channels.
    channels, strides
        Widths and strides of the convolution blocks (each block: a strided unit then a
        stride-1 unit).
    act
        Activation (MONAI name and arguments); leaky ReLU by default, so that no unit can die
        and leave the network constant.
    norm
        Normalisation in each unit (MONAI name, e.g. ``"batch"``, or ``None``). Per-sample
        norms (instance, group) would make the network invariant to the input's scale, which
        puts the whole Integrated Gradients attribution from a zero baseline at the singular
        start of the path; avoid them here.
    pool
        ``"mean"`` (the study's log-odds is the evidence map's mean) or ``"lse"`` (log-mean-exp).

    Examples
    --------
    >>> net = LesionDetector3D(channels=(4, 8), strides=(2, 2)).eval()
    >>> net(torch.rand(2, 1, 16, 16, 16)).shape
    torch.Size([2, 2])
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64),
        strides: Sequence[int] = (2, 2, 1),
        norm: str | None = "batch",
        act: str | tuple[str, dict[str, Any]] = ("leakyrelu", {"negative_slope": 0.1}),
        pool: str = "mean",
    ) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        if pool not in ("mean", "lse"):
            raise ValueError(f"pool must be 'mean' or 'lse', got {pool!r}")
        self.pool = pool

        if len(channels) != len(strides) or not channels:
            raise ValueError("channels and strides must be non-empty and of equal length")
        layers: list[torch.nn.Module] = []
        prev = in_channels
        for ch, st in zip(channels, strides, strict=True):
            layers.append(Convolution(3, prev, ch, strides=st, kernel_size=3, norm=norm, act=act))
            layers.append(Convolution(3, ch, ch, strides=1, kernel_size=3, norm=norm, act=act))
            prev = ch
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Conv3d(prev, 1, kernel_size=1)
        # He initialisation: without normalisation, PyTorch's default init shrinks the signal
        # about threefold per ReLU layer, and training stalls
        for m in self.features.modules():
            if isinstance(m, torch.nn.Conv3d):
                torch.nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)

    def evidence(self, x: Tensor) -> Tensor:
        """Lesion evidence per location, ``(N, 1, *spatial / prod(strides))``; pooled over space
        (``pool``) it is the study's lesion log-odds."""
        return self.head(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool_logits(self.evidence(x))

    def pool_logits(self, evidence: Tensor) -> Tensor:
        """The class logits ``(N, 2)`` of an evidence map (``forward`` is
        ``pool_logits(evidence(x))``; training with a loss on the map itself uses both)."""
        e = evidence.flatten(1)
        if self.pool == "lse":
            m = torch.logsumexp(e, dim=1, keepdim=True) - math.log(e.shape[1])
        else:
            m = e.mean(dim=1, keepdim=True)
        return torch.cat([-0.5 * m, 0.5 * m], dim=1)
