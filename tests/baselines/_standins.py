"""Analytic stand-ins shared by the masked-baseline tests: a flat healthy inpainter with its own
anomaly calibration, a classifier that reads one block, and noisy healthy volumes."""

from __future__ import annotations

import torch

from medattr.generative import AnomalySettings, calibrate_anomaly

SP = (3.0, 3.0, 3.0)
SHAPE = (24, 24, 24)


def healthy(seed: int, n: int = 1) -> torch.Tensor:
    """``n`` healthy volumes: 0.5 plus Gaussian noise of 0.02."""
    g = torch.Generator().manual_seed(seed)
    return 0.5 + 0.02 * torch.randn(n, 1, *SHAPE, generator=g)


class FlatHealthy:
    """Stand-in inpainter: healthy tissue is 0.5 everywhere; carries its own calibration."""

    def __init__(self) -> None:
        self.calibration = calibrate_anomaly(
            self, healthy(100, 20), AnomalySettings(block_mm=(24.0,), shifts=1), SP
        )

    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, 0.5)


class LesionLogit(torch.nn.Module):
    """Disease logit = 40 * (mean over the central block - 0.55); counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s = 40.0 * (x[:, :, 8:16, 6:14, 9:17].mean(dim=(1, 2, 3, 4)) - 0.55)
        return torch.stack([-s, s], dim=1)
