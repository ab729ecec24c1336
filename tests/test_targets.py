from __future__ import annotations

import pytest
import torch

from medattr import IntegratedGradients
from medattr.errors import TargetError
from medattr.targets import ClassTarget, SegmentationTarget, bind_target


def test_class_target_forms() -> None:
    out = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    sample = torch.tensor([0, 1, 1])
    rows = out[sample]
    _, b = bind_target(1, out)
    assert b(rows, sample).tolist() == pytest.approx([2.0, 0.0, 0.0])
    _, b = bind_target("predicted", out)
    assert b(rows, sample).tolist() == pytest.approx([2.0, 3.0, 3.0])
    _, b = bind_target([2, 0], out)
    assert b(rows, sample).tolist() == pytest.approx([-1.0, 3.0, 3.0])
    t = ClassTarget(0, activation="softmax")
    p = t.bind(out)(rows, sample)
    torch.testing.assert_close(p, torch.softmax(rows, 1)[:, 0])
    with pytest.raises(TargetError, match="got 3 targets for a batch of 2"):
        bind_target([0, 1, 2], out)
    with pytest.raises(ValueError, match="activation must be one of"):
        ClassTarget(0, activation="relu")


def test_callable_target_must_give_one_scalar_per_sample() -> None:
    out = torch.rand(2, 4)
    _, b = bind_target(lambda o: o[:, 1] - o[:, 0], out)
    torch.testing.assert_close(b(out, torch.arange(2)), out[:, 1] - out[:, 0])
    _, bad = bind_target(lambda o: o, out)
    with pytest.raises(TargetError, match="one scalar per sample"):
        bad(out, torch.arange(2))


def test_segmentation_target_uses_the_predicted_region_by_default() -> None:
    logits = torch.zeros(1, 3, 4, 4, 4)
    logits[0, 2, :2] = 5.0  # label 2 predicted in the first half
    t = SegmentationTarget(2)
    b = t.bind(logits)
    assert t.region_voxels == [32.0]
    assert b(logits, torch.tensor([0])).item() == pytest.approx(5.0 * 32)
    given = torch.zeros(4, 4, 4, dtype=torch.bool)
    given[3, 3, 3] = True
    assert SegmentationTarget(2, mask=given).bind(logits)(logits, torch.tensor([0])).item() == 0.0
    mean = SegmentationTarget(2, reduction="mean").bind(logits)
    assert mean(logits, torch.tensor([0])).item() == pytest.approx(5.0)
    with pytest.raises(TargetError, match="empty"):
        SegmentationTarget(1).bind(logits)
    with pytest.raises(TargetError, match="not one scalar"):
        bind_target(2, logits)


def test_segmentation_target_attribution_is_complete() -> None:
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    x = torch.rand(1, 1, 6, 6, 6)
    t = SegmentationTarget(1, mask=torch.ones(6, 6, 6, dtype=torch.bool))
    exp = IntegratedGradients(conv).explain(x, 0.0, t, n_steps=4)
    assert abs(float(exp.convergence_delta[0])) < 1e-3  # conv is linear: exact
