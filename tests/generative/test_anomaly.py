"""The anomaly mask on analytic stand-ins: calibrated on healthy volumes, empty on new healthy
ones, covering a lesion, refined, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr.errors import InputError
from medattr.generative import AnomalyMasker, AnomalySettings, calibrate_anomaly, residual_map
from medattr.generative.anomaly import block_pattern, component_stats

SP = (3.0, 3.0, 3.0)
SHAPE = (24, 24, 24)


class FlatHealthy:
    """A stand-in inpainter that knows healthy tissue is 0.5 everywhere."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.calls.append(float(mask.mean()))
        return torch.full_like(x, 0.5)


def _healthy(seed: int, n: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.5 + 0.02 * torch.randn(n, 1, *SHAPE, generator=g)


def _lesion(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = _healthy(seed)
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in SHAPE], indexing="ij"))
    ball = ((idx - torch.tensor([12, 10, 13]).view(3, 1, 1, 1)) ** 2).sum(0) <= 9
    return x + 0.3 * ball[None, None], ball


SETTINGS = AnomalySettings(block_mm=(24.0,), shifts=1, min_volume_mm3=300.0)


def test_block_patterns_partition_the_grid() -> None:
    pats = [
        block_pattern((10, 9, 7), (3, 4, 2), (1, 2, 0), (a, b, c))
        for a in (0, 1)
        for b in (0, 1)
        for c in (0, 1)
    ]
    total = np.sum(pats, axis=0)
    assert np.all(total == 1)


def test_residual_map_blanks_every_voxel_once_per_shift() -> None:
    g = FlatHealthy()
    x, _ = _lesion(0)
    r = residual_map(g, x, SP, AnomalySettings(block_mm=(24.0,), shifts=2, batch=4))
    assert r.shape == x.shape and len(g.calls) == 4  # 16 predictions in batches of 4
    assert float(r.max()) > 0.1


def test_calibration_bounds_healthy_false_positives_and_masks_stay_empty() -> None:
    g = FlatHealthy()
    cal = calibrate_anomaly(g, _healthy(1, 20), SETTINGS, SP)
    assert cal["n_healthy"] == 20 and cal["threshold"] > 0
    assert cal["flagged_fraction"] <= SETTINGS.healthy_fpr
    loose = calibrate_anomaly(
        g, _healthy(1, 20), AnomalySettings(**{**SETTINGS.to_dict(), "healthy_fpr": 0.25}), SP
    )
    assert 0.0 < loose["flagged_fraction"] <= 0.25 and loose["threshold"] < cal["threshold"]
    # held-out healthy volumes: nothing is invented
    masks = AnomalyMasker(g, cal)(_healthy(2, 10), SP)
    assert sum(m.empty for m in masks) >= 9
    # the calibration is a function of its inputs
    assert calibrate_anomaly(g, _healthy(1, 20), SETTINGS, SP) == cal


def test_the_mask_covers_the_lesion_with_a_margin_and_refines() -> None:
    g = FlatHealthy()
    cal = calibrate_anomaly(g, _healthy(1, 20), SETTINGS, SP)
    x, ball = _lesion(3)
    (found,) = AnomalyMasker(g, cal)(x, SP)
    m = torch.from_numpy(found.mask)
    assert bool(m[ball].all())  # the whole lesion
    assert int(m.sum()) < 6 * int(ball.sum())  # plus a margin, not the brain
    assert [s["step"] for s in found.steps][:3] == ["threshold", "dilate", "refine 1"]
    comps = component_stats(found.mask, SP)
    assert len(comps) == 1 and comps[0]["volume_mm3"] == pytest.approx(m.sum().item() * 27)


def test_masker_needs_a_calibration() -> None:
    with pytest.raises(InputError, match="calibration"):
        AnomalyMasker(FlatHealthy())
    with pytest.raises(InputError, match="healthy_fpr"):
        AnomalySettings(healthy_fpr=0.0)
    with pytest.raises(InputError, match="spacing"):
        residual_map(FlatHealthy(), _healthy(0), (3.0, 3.0))
