"""Per-attribution metrics: localisation within the region, deletion / insertion curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medattr.benchmarking import BenchmarkConfig
from medattr.benchmarking.baselines import TargetScore
from medattr.benchmarking.evaluate import (
    faithfulness,
    localisation,
    normalised_auc,
    perturbation_counts,
    sensitivity,
    sensitivity_inputs,
)
from medattr.benchmarking.studies import BenchStudy
from medattr.metrics import deletion_curve, insertion_curve

SHAPE = (6, 5, 4)


class TwoClassLinear(torch.nn.Module):
    """Logits (0, <w, v>): the disease margin is exactly <w, v>."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w, requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        s = (v * self.w).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(s), s], 1)


def _study(region: torch.Tensor | None = None) -> BenchStudy:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, *SHAPE, generator=g)
    mask = torch.zeros(1, *SHAPE, dtype=torch.bool)
    mask[0, 1:3, 1:3, 1:3] = True
    twin = torch.where(mask[None], x - 0.5, x)
    return BenchStudy(
        id="t",
        seed=0,
        label=1,
        x=x,
        twin=twin,
        mask=mask,
        region=torch.ones_like(mask) if region is None else region,
        spacing=(2.0, 2.0, 2.0),
        affine=np.eye(4),
    )


def _cfg(**kw: object) -> BenchmarkConfig:
    return BenchmarkConfig.from_preset("quick", classifier="c", vae="v", **kw)  # type: ignore[arg-type]


def test_a_map_equal_to_the_mask_localises_perfectly() -> None:
    s = _study()
    out = localisation(s.mask[None].float(), s, _cfg())
    assert out == {"mass": 1.0, "rank": 1.0, "roc_auc": 1.0, "pointing": 1.0}


def test_attribution_outside_the_region_is_ignored() -> None:
    region = torch.zeros(1, *SHAPE, dtype=torch.bool)
    region[0, :4] = True  # holds the lesion
    s = _study(region)
    attr = s.mask[None].float().clone()
    attr[0, 0, 5, 4, 3] = 100.0  # outside the region: would win the pointing game
    out = localisation(attr, s, _cfg())
    assert out["mass"] == 1.0 and out["pointing"] == 1.0 and out["roc_auc"] == 1.0
    attr[0, 0, 0, 0, 0] = 1.0  # inside the region, outside the lesion
    mixed = localisation(attr, s, _cfg())
    assert mixed["mass"] == pytest.approx(8 / 9)  # 8 lesion voxels of weight 1, one outside


def test_curves_match_the_metric_library_when_the_region_is_everything() -> None:
    n = int(np.prod(SHAPE))
    w = torch.linspace(-1.0, 2.0, n).view(1, 1, *SHAPE)
    model = TwoClassLinear(w).eval()
    score = TargetScore("margin", 1)
    s = _study()
    attr = torch.randn(1, 1, *SHAPE, generator=torch.Generator().manual_seed(1))
    repl = torch.full_like(s.x, 0.25)
    cfg = _cfg(perturbation_fraction=1.0, perturbation_steps=4)
    f_x = float(score(model(s.x))[0])
    ours = faithfulness(model, score, attr, s, f_x, {"own": repl}, cfg)
    dele = deletion_curve(model, s.x, attr, repl, target=score, steps=4).scores[0].tolist()
    ins = insertion_curve(model, s.x, attr, repl, target=score, steps=4).scores[0].tolist()
    f_r = float(score(model(repl))[0])
    assert ours["f_region_replaced_own"] == pytest.approx(f_r, abs=1e-5)
    assert ours["deletion_own"] == pytest.approx(normalised_auc(dele, f_x, f_r), abs=1e-5)
    assert ours["insertion_own"] == pytest.approx(normalised_auc(ins, f_x, f_r), abs=1e-5)


def test_deleting_the_true_evidence_first_beats_deleting_it_last() -> None:
    # the margin depends only on the lesion voxels: a map that ranks them first drops the
    # score at the first step; the reversed map leaves it until the end of the range
    w = torch.zeros(1, 1, *SHAPE)
    s = _study()
    w[0, 0][s.mask[0]] = 1.0
    model = TwoClassLinear(w).eval()
    score = TargetScore("margin", 1)
    cfg = _cfg(perturbation_fraction=0.5, perturbation_steps=5)
    f_x = float(score(model(s.x))[0])
    good = s.mask[None].float()
    bad = 1.0 - good
    twin = {"own": s.twin}
    g = faithfulness(model, score, good, s, f_x, twin, cfg)
    b = faithfulness(model, score, bad, s, f_x, twin, cfg)
    assert g["deletion_own"] < 0.3 < 0.9 < b["deletion_own"]
    assert g["insertion_own"] > 0.7 > 0.1 > b["insertion_own"]


def test_normalised_auc_and_its_guard() -> None:
    assert normalised_auc([2.0, 0.0, 0.0, 0.0, 0.0], 2.0, 0.0) == pytest.approx(0.125)
    assert normalised_auc([0.0, 2.0], 2.0, 0.0) == pytest.approx(0.5)
    assert math.isnan(normalised_auc([1.0, 1.0], 1.0, 0.99))  # replacement changes nothing


def test_perturbation_counts() -> None:
    cfg = _cfg(perturbation_fraction=0.1, perturbation_steps=5)
    assert perturbation_counts(1000, cfg) == [0, 20, 40, 60, 80, 100]


def test_prefetched_perturbations_are_the_ones_max_sensitivity_explains() -> None:
    s = _study()
    cfg = _cfg(sensitivity_samples=3, sensitivity_radius=0.05, seed=4)
    seen: list[torch.Tensor] = []

    def explain(xp: torch.Tensor) -> torch.Tensor:
        seen.append(xp.clone())
        return xp * 2.0

    value = sensitivity(explain, s, s.x * 2.0, cfg)
    expected = sensitivity_inputs(s.x, cfg)
    assert len(seen) == 3 and all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))
    assert 0 < value <= 0.05 * math.sqrt(s.x.numel()) / float(s.x.norm()) + 1e-6
