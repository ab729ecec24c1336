"""Target scores in chunks, with the target bound at the unperturbed inputs."""

from __future__ import annotations

import pytest
import torch

from medattr.errors import InputError, ModelError, TargetError
from medattr.metrics import TargetScorer, target_scores
from medattr.targets import ClassTarget, SegmentationTarget


def classifier(v: torch.Tensor) -> torch.Tensor:
    """Class 0 scores the mean, class 1 minus the mean, class 2 the first voxel."""
    m = v.flatten(1).mean(1)
    return torch.stack([m, -m, v.flatten(1)[:, 0]], dim=1)


def test_int_softmax_and_callable_targets() -> None:
    x = torch.rand(5, 1, 2, 3, 4)
    out = classifier(x)
    assert torch.allclose(target_scores(classifier, x, 2, batch_size=2), out[:, 2].double())
    soft = target_scores(classifier, x, ClassTarget(0, activation="softmax"), batch_size=3)
    assert torch.allclose(soft, torch.softmax(out.double(), 1)[:, 0], atol=1e-6)
    fn = target_scores(classifier, x, lambda o: o[:, 0] + o[:, 2])
    assert torch.allclose(fn, (out[:, 0] + out[:, 2]).double())
    assert target_scores(classifier, x, 1).dtype == torch.float64


def test_predicted_class_is_fixed_at_the_inputs() -> None:
    x = torch.stack([torch.full((1, 2, 2, 2), 0.5), torch.full((1, 2, 2, 2), -0.5)])
    scorer = TargetScorer(classifier, x, "predicted")
    # sample 0 predicts class 0 (mean 0.5), sample 1 predicts class 1 (−mean = 0.5)
    assert scorer.f_input.tolist() == [0.5, 0.5]
    flipped = -x  # the arg-max would change, the bound class must not
    got = scorer(flipped, torch.tensor([0, 1]))
    assert got.tolist() == [-0.5, -0.5]


def test_segmentation_region_target() -> None:
    def seg(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([v, -v], dim=1)  # two channels: logits of label 0 and label 1

    x = torch.rand(2, 1, 3, 3, 3)
    mask = torch.zeros(3, 3, 3, dtype=torch.bool)
    mask[1, 1] = True
    got = target_scores(seg, x, SegmentationTarget(1, mask=mask))
    assert torch.allclose(got, -x[:, 0, 1, 1].sum(-1).double())


def test_errors() -> None:
    x = torch.rand(2, 1, 2, 2, 2)
    with pytest.raises(ModelError, match="batch size 2"):
        target_scores(lambda v: v[0], x)
    with pytest.raises(ModelError, match="must return a tensor"):
        target_scores(lambda v: v.tolist(), x)  # type: ignore[arg-type, return-value]
    with pytest.raises(TargetError, match="out of range"):
        target_scores(classifier, x, 5)
    with pytest.raises(InputError, match="batch_size"):
        target_scores(classifier, x, 0, batch_size=-1)
    with pytest.raises(TypeError, match="model must be callable"):
        TargetScorer(3, x)  # type: ignore[arg-type]
