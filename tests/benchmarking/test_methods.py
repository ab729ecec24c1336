"""The benchmarked methods: IG read from the shared Split IG run, completeness conventions."""

from __future__ import annotations

import pytest
import torch

from medattr import IntegratedGradients
from medattr.benchmarking import BenchmarkConfig
from medattr.benchmarking.baselines import TargetScore
from medattr.benchmarking.methods import run_expected_gradients, run_ig, run_path_methods
from tests.conftest import SmallConvNet


@pytest.fixture
def setup() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, BenchmarkConfig]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 8, 8, 8, generator=g)
    b = torch.rand(1, 1, 8, 8, 8, generator=g) * 0.2
    cfg = BenchmarkConfig.from_preset(
        "quick", classifier="c", vae="v", n_steps=12, sg_steps=6, nt_samples=3, eg_samples=16
    )
    return SmallConvNet("sigmoid").eval(), x, b, cfg


def test_ig_from_the_split_run_equals_integrated_gradients(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, b, cfg = setup
    score = TargetScore("margin", 1)
    res = run_path_methods(model, x, b, score, cfg, {"ig", "split-ig"})
    ref = IntegratedGradients(model).explain(x, b, score, n_steps=cfg.n_steps)
    assert torch.allclose(res["ig"].attributions, ref.attributions, rtol=1e-4, atol=1e-7)
    assert torch.allclose(run_ig(model, x, b, score, cfg), ref.attributions, rtol=1e-4, atol=1e-7)
    assert res["ig"].f_input == pytest.approx(float(ref.f_input[0]))
    assert res["ig"].f_baseline == pytest.approx(float(ref.f_baseline[0]))
    span = float(ref.f_input[0] - ref.f_baseline[0])
    # the delta is a float32 sum minus a difference: equal up to summation order
    expected = abs(float(ref.convergence_delta[0])) / abs(span)
    assert res["ig"].completeness == pytest.approx(expected, rel=0.02)
    # the left part is a share of IG: where the path saturates early it differs from IG
    left = res["split-ig"]
    assert left.extras["alpha_star"] <= 1.0
    total = float(left.attributions.sum())
    assert total == pytest.approx(
        left.extras["f_alpha_star"] - left.f_baseline, abs=0.05 * abs(span)
    )


def test_smoothgrad_completeness_refers_to_the_mean_over_noisy_copies(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, b, cfg = setup
    score = TargetScore("margin", 1)
    sg = run_path_methods(model, x, b, score, cfg, {"smoothgrad"})["smoothgrad"]
    f_noisy = sg.extras["f_noisy_mean"]
    expected = abs(float(sg.attributions.sum()) - (f_noisy - sg.f_baseline)) / abs(
        f_noisy - sg.f_baseline
    )
    assert sg.completeness == pytest.approx(expected, rel=0.02)
    assert set(run_path_methods(model, x, b, score, cfg, {"smoothgrad"})) == {"smoothgrad"}


def test_expected_gradients_over_a_reference_bank(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, _, cfg = setup
    refs = torch.rand(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(5))
    res = run_expected_gradients(model, x, refs, TargetScore("margin", 1), cfg)
    assert res.method == "eg" and res.extras["n_references"] == 4
    assert res.n_evaluations == cfg.eg_samples
    span = res.f_input - res.f_baseline
    assert res.completeness == pytest.approx(
        abs(float(res.attributions.sum()) - span) / abs(span), rel=0.02
    )


def test_target_scores() -> None:
    out = torch.tensor([[0.5, 2.0, -1.0]])
    margin = TargetScore("margin", 1)(out)
    assert float(margin) == pytest.approx(
        2.0 - float(torch.logsumexp(torch.tensor([0.5, -1.0]), 0))
    )
    assert float(TargetScore("logit", 1)(out)) == 2.0
    assert float(TargetScore("probability", 1)(out)) == pytest.approx(
        float(torch.softmax(out, 1)[0, 1])
    )
    with pytest.raises(ValueError, match="margin, logit or probability"):
        TargetScore("odds")
