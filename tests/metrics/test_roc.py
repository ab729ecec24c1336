"""ROC AUC of attributions against a mask: exact values, ties, brute-force pair counts."""

from __future__ import annotations

import math

import pytest
import torch

from medattr.errors import InputError
from medattr.metrics import AttributionROCAUC, roc_auc, roc_auc_scores


def brute_force_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """P(positive > negative) + ½ P(tie), by counting every pair."""
    pos = scores[labels].tolist()
    neg = scores[~labels].tolist()
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos) * len(neg))


def test_mask_and_negated_mask(device: torch.device) -> None:
    mask = torch.zeros(2, 4, 4, 4, dtype=torch.bool, device=device)
    mask[0, 1:3, 1:3, 1:3] = True
    mask[1, 0, :, :2] = True
    got = roc_auc(mask.float(), mask)
    assert got.device.type == device.type and got.dtype == torch.float64
    assert got.tolist() == [1.0, 1.0]
    assert roc_auc(-mask.float(), mask).tolist() == [0.0, 0.0]
    assert roc_auc(torch.zeros(2, 1, 4, 4, 4, device=device), mask).tolist() == [0.5, 0.5]
    # |−mask| ranks the mask first again
    assert roc_auc(-mask.float(), mask, relevance="absolute").tolist() == [1.0, 1.0]


def test_hand_case_2x2x2(device: torch.device) -> None:
    values = torch.tensor([3.0, -1.0, 2.0, 0.0, 1.0, -2.0, 2.0, 0.5], device=device)
    mask = torch.zeros(8, dtype=torch.bool, device=device)
    mask[[0, 2, 5]] = True
    # positives 3, 2, −2 against negatives −1, 0, 1, 2, 0.5:
    # 3 beats all 5; 2 beats 4 and ties 1 (4.5); −2 beats none → 9.5 of 15 pairs
    got = roc_auc(values.view(1, 2, 2, 2), mask.view(1, 2, 2, 2))
    assert got.item() == pytest.approx(9.5 / 15, abs=1e-15)
    # positive part: 3, 2, 0 vs 0, 0, 1, 2, 0.5 → 5 + 4.5 + (two ties at 0 → 1) = 10.5
    got = roc_auc(values.view(1, 2, 2, 2), mask.view(1, 2, 2, 2), relevance="positive")
    assert got.item() == pytest.approx(10.5 / 15, abs=1e-15)


def test_against_brute_force_with_ties(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (16, 30), generator=gen).double()  # many ties
    labels = torch.rand(16, 30, generator=gen) > 0.6
    labels[:, 0] = True
    labels[:, 1] = False
    got = roc_auc_scores(scores.to(device), labels.to(device)).cpu()
    expected = torch.tensor(
        [brute_force_auc(s, lab) for s, lab in zip(scores, labels, strict=True)],
        dtype=torch.float64,
    )
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    # and through the volume API: (B, 2, 3, 5) with spatial_dims=3
    got_vol = roc_auc(scores.view(16, 2, 3, 5).to(device), labels.view(16, 2, 3, 5).to(device))
    assert torch.allclose(got_vol.cpu(), expected, rtol=0, atol=1e-12)


def test_against_sklearn_on_continuous_scores() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    gen = torch.Generator().manual_seed(1)
    labels = torch.rand(3, 10, 12, 9, generator=gen) > 0.8
    attr = labels.float() * 0.3 + torch.rand(3, 10, 12, 9, generator=gen)
    attr = torch.round(attr * 20) / 20  # coarse values: ties across classes
    got = roc_auc(attr, labels)
    for b in range(3):
        ref = metrics.roc_auc_score(labels[b].flatten().numpy(), attr[b].flatten().numpy())
        assert got[b].item() == pytest.approx(ref, abs=1e-12)


def test_invariant_to_monotone_transforms_and_voxel_order() -> None:
    gen = torch.Generator().manual_seed(2)
    attr = torch.randn(2, 1, 6, 6, 6, generator=gen)
    mask = torch.rand(2, 6, 6, 6, generator=gen) > 0.7
    base = roc_auc(attr, mask)
    assert torch.allclose(roc_auc(torch.exp(3 * attr), mask), base, atol=1e-12)
    perm = torch.randperm(216, generator=gen)
    shuffled = attr.flatten(1)[:, perm].view_as(attr)
    assert torch.allclose(
        roc_auc(shuffled, mask.flatten(1)[:, perm].view_as(mask)), base, atol=1e-12
    )


def test_empty_or_full_mask() -> None:
    mask = torch.zeros(3, 2, 2, 2, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    mask[2] = True  # every voxel: no negatives
    attr = torch.rand(3, 2, 2, 2)
    with pytest.raises(InputError, match=r"empty or covers every voxel for sample\(s\) \[1, 2\]"):
        roc_auc(attr, mask)
    out = roc_auc(attr, mask, empty_mask="nan")
    assert not math.isnan(out[0].item()) and math.isnan(out[1].item()) and math.isnan(out[2].item())
    assert math.isnan(roc_auc_scores(torch.rand(1, 4), torch.zeros(1, 4, dtype=torch.bool)).item())


def test_errors_and_class_form() -> None:
    with pytest.raises(InputError, match="scores and labels"):
        roc_auc_scores(torch.rand(2, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="NaN"):
        roc_auc_scores(torch.tensor([[0.0, math.nan]]), torch.tensor([[True, False]]))
    attr = torch.randn(2, 1, 3, 3, 3)
    mask = torch.rand(2, 3, 3, 3) > 0.5
    mask[:, 0, 0, 0] = True
    mask[:, 1, 1, 1] = False
    assert torch.equal(
        AttributionROCAUC(relevance="absolute")(attr, mask),
        roc_auc(attr, mask, relevance="absolute"),
    )


def test_low_precision_and_integer_attributions() -> None:
    mask = torch.zeros(1, 3, 3, 3, dtype=torch.bool)
    mask[0, 0] = True
    attr = mask.unsqueeze(1).to(torch.float16) * 2 - 1
    assert roc_auc(attr, mask).item() == 1.0
    assert roc_auc(attr.to(torch.bfloat16), mask).item() == 1.0
    assert roc_auc(mask.long(), mask).item() == 1.0
