"""Deletion and insertion curves on models whose curves are known analytically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr.errors import InputError, ModelError
from medattr.metrics import (
    PerturbationCurveMetric,
    deletion_curve,
    insertion_curve,
    target_scores,
    voxel_order,
)
from medattr.targets import ClassTarget

SHAPE = (3, 4, 5)  # 60 voxels


class Linear(torch.nn.Module):
    """f(v) = Σ w·v per sample, one scalar per volume."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w, requires_grad=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return (v * self.w).flatten(1).sum(1)


def expected_curve(
    w: np.ndarray, x: np.ndarray, r: np.ndarray, attr: np.ndarray, counts: list[int], deletion: bool
) -> list[float]:
    """f after swapping the top-n voxels (stable descending order), by direct summation."""
    order = np.argsort(-attr, kind="stable")
    out = []
    for n in counts:
        v = (x if deletion else r).copy()
        top = order[:n]
        v[top] = (r if deletion else x)[top]
        out.append(float((w * v).sum()))
    return out


@pytest.fixture
def linear_case() -> tuple[Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(1, *SHAPE, generator=gen, dtype=torch.float64)
    x = torch.rand(2, 1, *SHAPE, generator=gen, dtype=torch.float64)
    r = torch.rand(2, 1, *SHAPE, generator=gen, dtype=torch.float64) * 0.2
    return Linear(w).eval(), x, r, w


def test_deletion_on_linear_model_is_analytic(linear_case, device: torch.device) -> None:
    model, x, r, w = linear_case
    model, x, r = model.to(device), x.to(device), r.to(device)
    attr = w.to(device) * (x - r)  # exact IG of a linear model
    curve = deletion_curve(model, x, attr, r, steps=12, batch_size=5)
    counts = [round(k * 60 / 12) for k in range(13)]
    assert curve.fractions.tolist() == pytest.approx([c / 60 for c in counts])
    for b in range(2):
        # f(x) − Σ_{removed} w_i (x_i − r_i): the sum of weights times removed differences
        exp = expected_curve(
            w.flatten().numpy(),
            x[b].flatten().cpu().numpy(),
            r[b].flatten().cpu().numpy(),
            attr[b].flatten().cpu().numpy(),
            counts,
            deletion=True,
        )
        assert curve.scores[b].tolist() == pytest.approx(exp, abs=1e-10)
        # trapezoid rule over the fractions
        area = sum((exp[k] + exp[k + 1]) / 2 / 12 for k in range(12))
        assert curve.auc[b].item() == pytest.approx(area, abs=1e-10)
    # ordering by the exact attribution removes positive contributions first: the curve starts
    # by falling, as steeply as any ordering can
    assert bool((curve.scores[:, 1] < curve.scores[:, 0]).all())


def test_insertion_on_linear_model_is_analytic(linear_case) -> None:
    model, x, r, w = linear_case
    attr = w * (x - r)
    fractions = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    curve = insertion_curve(model, x, attr, r, steps=fractions)
    counts = [round(f * 60) for f in fractions]
    for b in range(2):
        exp = expected_curve(
            w.flatten().numpy(),
            x[b].flatten().numpy(),
            r[b].flatten().numpy(),
            attr[b].flatten().numpy(),
            counts,
            deletion=False,
        )
        assert curve.scores[b].tolist() == pytest.approx(exp, abs=1e-10)


def test_endpoints_are_f_input_and_f_replacement(device: torch.device) -> None:
    torch.manual_seed(0)
    model = (
        torch.nn.Sequential(
            torch.nn.Conv3d(2, 3, 3, padding=1),
            torch.nn.Softplus(),
            torch.nn.Flatten(),
            torch.nn.Linear(3 * 60, 4),
        )
        .to(device)
        .eval()
    )
    x = torch.rand(3, 2, *SHAPE, device=device)
    attr = torch.randn(3, 2, *SHAPE, device=device)
    blurred = torch.nn.functional.avg_pool3d(x, 3, stride=1, padding=1, count_include_pad=False)
    target = ClassTarget(2, activation="softmax")
    f_x = target_scores(model, x, target)
    f_r = target_scores(model, blurred, target)
    dele = deletion_curve(model, x, attr, blurred, target=target, steps=7, batch_size=4)
    ins = insertion_curve(model, x, attr, blurred, target=target, steps=7, batch_size=4)
    assert dele.scores.shape == (3, 8) and dele.auc.shape == (3,)
    assert torch.allclose(dele.scores[:, 0], f_x.cpu(), atol=1e-6)
    assert torch.allclose(dele.scores[:, -1], f_r.cpu(), atol=1e-6)
    assert torch.allclose(ins.scores[:, 0], f_r.cpu(), atol=1e-6)
    assert torch.allclose(ins.scores[:, -1], f_x.cpu(), atol=1e-6)
    assert torch.equal(dele.f_input, dele.scores[:, 0]) and torch.equal(
        ins.f_input, ins.scores[:, -1]
    )
    # softmax probabilities all along
    assert bool(((dele.scores >= 0) & (dele.scores <= 1)).all())


def test_channels_move_together_and_separately() -> None:
    w = torch.tensor([1.0, 10.0]).view(1, 2, 1, 1, 1).expand(1, 2, 1, 1, 4).contiguous()
    model = Linear(w.double()).eval()
    x = torch.ones(1, 2, 1, 1, 4, dtype=torch.float64)
    # channel sums of the attribution: voxel 2 (3.0) > voxel 0 (2.0) > voxel 1, voxel 3 (0.0)
    attr = torch.tensor([[[[[2.0, 0.0, 1.0, 0.0]]], [[[0.0, 0.0, 2.0, 0.0]]]]], dtype=torch.float64)
    curve = deletion_curve(model, x, attr, 0.0, steps=4)
    # each voxel is worth 11 (both channels); f(x) = 44
    assert curve.scores[0].tolist() == [44.0, 33.0, 22.0, 11.0, 0.0]
    # element by element: 8 elements; the 2.0s first (flat order: ch0 v0, then ch1 v2), …
    curve = deletion_curve(model, x, attr, 0.0, steps=8, channel_reduction="none")
    # order: (c0,v0)=2 → −1; (c1,v2)=2 → −10; (c0,v2)=1 → −1; then zeros in flat order:
    # (c0,v1) −1, (c0,v3) −1, (c1,v0) −10, (c1,v1) −10, (c1,v3) −10
    assert curve.scores[0].tolist() == [44.0, 43.0, 33.0, 32.0, 31.0, 30.0, 20.0, 10.0, 0.0]
    # a spatial attribution (B, *spatial) is the same as one channel
    spatial = attr.sum(1)
    assert torch.equal(
        deletion_curve(model, x, spatial, 0.0, steps=4).scores,
        torch.tensor([[44.0, 33.0, 22.0, 11.0, 0.0]], dtype=torch.float64),
    )


def test_ties_follow_flat_index_order() -> None:
    w = torch.arange(1.0, 9.0, dtype=torch.float64).view(1, 1, 2, 2, 2)
    model = Linear(w).eval()
    x = torch.ones(1, 1, 2, 2, 2, dtype=torch.float64)
    curve = deletion_curve(model, x, torch.zeros(1, 1, 2, 2, 2), 0.0, steps=8)
    # a constant attribution removes voxels 0, 1, 2, … in C order: f = 36 − (1 + … + k)
    assert curve.scores[0].tolist() == [36.0, 35.0, 33.0, 30.0, 26.0, 21.0, 15.0, 8.0, 0.0]
    assert voxel_order(torch.tensor([[1.0, 3.0, 1.0, 3.0]])).tolist() == [[2, 0, 3, 1]]


def test_targets_int_callable_and_chunking(linear_case) -> None:
    _, x, r, w = linear_case
    two = torch.stack([w.flatten(), -2 * w.flatten()])  # two "classes"

    def classifier(v: torch.Tensor) -> torch.Tensor:
        return v.flatten(1) @ two.T

    attr = w * (x - r)
    by_int = deletion_curve(classifier, x, attr, r, target=1, steps=10, batch_size=3)
    by_fn = deletion_curve(
        classifier, x, attr, r, target=lambda out: out[:, 1], steps=10, batch_size=22
    )
    one = deletion_curve(Linear(w).eval(), x, attr, r, steps=10, batch_size=1)
    assert torch.allclose(by_int.scores, by_fn.scores, atol=1e-12)
    assert torch.allclose(by_int.scores, -2 * one.scores, atol=1e-10)


def test_tiny_volume_repeated_fractions_cost_one_forward_each() -> None:
    calls: list[int] = []

    def model(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.shape[0])
        return v.flatten(1).sum(1)

    x = torch.ones(1, 1, 1, 1, 2)
    curve = deletion_curve(model, x, torch.tensor([[[[[1.0, 0.0]]]]]), 0.0, steps=8, batch_size=64)
    # 2 voxels, 9 fractions: counts 0,0,0,1,1,1,2,2,2 (half to even); n=0 is x itself
    assert curve.scores[0, 0].item() == 2.0 and curve.scores[0, -1].item() == 0.0
    assert sum(calls) == 1 + 2  # the binding forward at x, then one per distinct count


def test_normalized_auc_and_summary(linear_case) -> None:
    model, x, r, w = linear_case
    curve = insertion_curve(model, x, w * (x - r), r, steps=20)
    norm = curve.normalized_auc()
    span = curve.f_input - curve.f_replacement
    assert torch.allclose(norm, (curve.auc - curve.f_replacement) / span)
    summary = curve.summary()
    assert summary["mode"] == "insertion" and len(summary["auc"]) == 2


def test_class_form_matches_function(linear_case) -> None:
    model, x, r, w = linear_case
    attr = w * (x - r)
    metric = PerturbationCurveMetric(model, mode="insertion", steps=6, batch_size=4)
    assert torch.equal(
        metric(x, attr, r).scores, insertion_curve(model, x, attr, r, steps=6).scores
    )
    with pytest.raises(InputError, match="mode must be one of"):
        PerturbationCurveMetric(model, mode="erase")


def test_inputs_not_modified_and_training_warning(linear_case) -> None:
    model, x, r, w = linear_case
    attr = w * (x - r)
    copies = [t.clone() for t in (x, r, attr)]
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        deletion_curve(model, x, attr, r, steps=4)
    for t, c in zip((x, r, attr), copies, strict=True):
        assert torch.equal(t, c)


def test_errors(linear_case) -> None:
    model, x, r, w = linear_case
    attr = w * (x - r)
    with pytest.raises(InputError, match="cannot be broadcast"):
        deletion_curve(model, x, attr, torch.zeros(3, 1, *SHAPE))
    with pytest.raises(InputError, match="do not fit inputs"):
        deletion_curve(model, x, attr[:1], r)
    with pytest.raises(InputError, match="steps must be"):
        deletion_curve(model, x, attr, r, steps=0)
    with pytest.raises(InputError, match="increase strictly from 0 to 1"):
        deletion_curve(model, x, attr, r, steps=[0.0, 0.5, 0.9])
    with pytest.raises(InputError, match="batch_size"):
        deletion_curve(model, x, attr, r, batch_size=0)
    with pytest.raises(InputError, match="NaN"):
        deletion_curve(model, x, attr * torch.nan, r)
    with pytest.raises(InputError, match="inputs must have shape"):
        deletion_curve(model, x[0], attr[0], r[0])
    with pytest.raises(ModelError, match="batch size"):
        deletion_curve(lambda v: v.sum().view(1), x, attr, r)
    with pytest.raises(TypeError, match="replacement"):
        deletion_curve(model, x, attr, "zero")  # type: ignore[arg-type]
