"""``n_steps="auto"`` on the path methods: the adaptive rule behind IG, Split IG and SmoothGrad
over IG, their settings, the CLI and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medattr.attribution import IntegratedGradients, SmoothGrad, SplitIntegratedGradients
from medattr.cli import main
from medattr.errors import InputError
from medattr.explain import ExplainConfig


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)  # a saturating path: the fixed rules need many points
    return net.eval()


def _x(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 1, 4, 4, 4, generator=torch.Generator().manual_seed(3))


def test_linear_model_is_exact_with_the_smallest_rule() -> None:
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1)).eval()
    exp = IntegratedGradients(lin).explain(_x(), 0.0, n_steps="auto")
    rec = exp.extras["adaptive"]
    assert rec["steps_used"] == [2, 2] and exp.n_evaluations == 4
    assert rec["converged"] == [True, True] and rec["rounds"] == 1
    assert exp.convergence_delta.abs().max() < 1e-5


@pytest.mark.parametrize("rtol", [0.01, 0.001])
def test_ig_meets_the_tolerance_and_reports_the_error_it_reached(rtol: float) -> None:
    x = _x()
    exp = IntegratedGradients(_net()).explain(x, 0.0, n_steps="auto", completeness_rtol=rtol)
    span = exp.f_input - exp.f_baseline
    total = exp.attributions.flatten(1).double().sum(1)
    # the reported delta is the returned attribution's: sum(phi) - (f(x) - f(x'))
    assert torch.allclose(exp.convergence_delta, total - span, atol=1e-9)
    assert torch.allclose(
        torch.tensor(exp.extras["adaptive"]["completeness_error"], dtype=torch.float64),
        exp.convergence_delta,
        atol=1e-6,
    )
    assert (exp.convergence_delta.abs() <= rtol * span.abs()).all()
    assert exp.settings["n_steps"] == "auto" and exp.settings["completeness_rtol"] == rtol
    # the adaptive answer agrees with a fine fixed rule up to the tolerance asked for
    fine = IntegratedGradients(_net()).explain(x, 0.0, n_steps=256)
    err = (exp.attributions - fine.attributions).abs().sum() / fine.attributions.abs().sum()
    assert err < 20 * rtol


def test_max_steps_stops_and_says_so() -> None:
    exp = IntegratedGradients(_net()).explain(
        _x(), 0.0, n_steps="auto", completeness_rtol=1e-6, max_steps=5
    )
    rec = exp.extras["adaptive"]
    assert all(n <= 5 for n in rec["steps_used"])
    assert not all(rec["converged"])
    assert set(rec["stopped"]) <= {"max_steps", "precision", "converged"}
    assert "max_steps" in rec["stopped"] or "precision" in rec["stopped"]


def test_chunking_does_not_change_the_result() -> None:
    x = _x()
    a = IntegratedGradients(_net()).explain(x, 0.0, n_steps="auto", internal_batch_size=1)
    b = IntegratedGradients(_net()).explain(x, 0.0, n_steps="auto", internal_batch_size=64)
    assert a.extras["adaptive"]["steps_used"] == b.extras["adaptive"]["steps_used"]
    assert torch.allclose(a.attributions, b.attributions, atol=1e-6)


def test_captum_shaped_attribute_accepts_auto() -> None:
    attr, delta = IntegratedGradients(_net()).attribute(
        _x(), 0.0, n_steps="auto", return_convergence_delta=True
    )
    assert attr.shape == (2, 1, 4, 4, 4) and delta.shape == (2,)


def test_split_ig_gets_alpha_star_from_the_refined_path() -> None:
    x = _x()
    full = SplitIntegratedGradients(_net()).explain(
        x, 0.0, n_steps="auto", part="full", ratio=0.5, completeness_rtol=0.001
    )
    ig = IntegratedGradients(_net()).explain(x, 0.0, n_steps="auto", completeness_rtol=0.001)
    assert torch.allclose(full.attributions, ig.attributions, atol=1e-6)  # left + right = IG
    split = full.extras["split"]
    for i in range(2):
        alphas, outputs = split.path_alphas[i], split.path_outputs[i]
        k = int(torch.nonzero(alphas == split.alpha_star[i])[0])
        span = full.f_input[i] - full.f_baseline[i]
        # alpha* is the first node where f has covered the ratio of the span
        assert (outputs[k] - full.f_baseline[i]) / span >= 0.5
        assert ((outputs[:k] - full.f_baseline[i]) / span < 0.5).all()
    left = SplitIntegratedGradients(_net()).explain(
        x, 0.0, n_steps="auto", ratio=0.5, completeness_rtol=0.001
    )
    total = left.attributions.flatten(1).double().sum(1)
    assert torch.allclose(
        left.convergence_delta, total - (split.f_alpha_star - left.f_baseline), atol=1e-9
    )


def test_smoothgrad_over_ig_refines_each_noisy_copy() -> None:
    sg = SmoothGrad(_net(), base="integrated_gradients")
    exp = sg.explain(_x(), nt_samples=3, noise_level=0.1, baselines=0.0, n_steps="auto")
    rec = exp.extras["adaptive"]
    assert len(rec["steps_used"]) == 6 and all(rec["converged"])
    assert all(r <= 0.01 + 1e-9 for r in rec["relative_error"])
    assert torch.allclose(
        torch.tensor(rec["completeness_error"], dtype=torch.float64),
        exp.extras["draw_deltas"],
        atol=1e-6,
    )


@pytest.mark.parametrize("value", ["often", 0, -3, 2.5, 5000])
def test_config_refuses_bad_step_counts(value: object) -> None:
    with pytest.raises(InputError, match="n_steps"):
        ExplainConfig(n_steps=value)


def test_config_accepts_auto_and_its_settings() -> None:
    cfg = ExplainConfig(n_steps="AUTO", completeness_rtol=0.005, max_steps=64)
    assert (cfg.n_steps, cfg.completeness_rtol, cfg.max_steps) == ("auto", 0.005, 64)
    with pytest.raises(InputError, match="completeness_rtol"):
        ExplainConfig(completeness_rtol=0.0)
    with pytest.raises(InputError, match="max_steps"):
        ExplainConfig(max_steps=100_000)


@pytest.mark.parametrize("method", ["ig", "split-ig", "smoothgrad"])
def test_cli_steps_auto_writes_what_the_rule_did(
    method: str, tiny_model: Path, tmp_path: Path
) -> None:
    import nibabel as nib

    data = np.random.default_rng(0).normal(40, 60, (14, 18, 9)).astype(np.float32)
    data[5:9, 6:10, 3:6] += 150
    study = tmp_path / "study.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), str(study))
    out = tmp_path / "out"
    extra = ["--nt-samples", "2"] if method == "smoothgrad" else []
    if method == "smoothgrad":
        extra += ["--smoothgrad-base", "integrated_gradients"]
    argv = ["explain", str(study), "--model", str(tiny_model), "--out", str(out)]
    argv += ["--method", method, "--steps", "auto", "--completeness-rtol", "0.02"]
    assert main([*argv, "--max-steps", "64", "--device", "cpu", "--no-progress", *extra]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["method"]["n_steps"] == "auto" and m["method"]["completeness_rtol"] == 0.02
    rec = m["extras"]["adaptive"]
    assert rec["max_steps"] == 64 and all(2 <= n <= 64 for n in rec["steps_used"])
    for ok, err, why in zip(rec["converged"], rec["relative_error"], rec["stopped"], strict=True):
        assert (ok and err <= 0.02 + 1e-9 and why == "converged") or (not ok and why != "converged")
    if method == "ig":
        span = m["f_input"] - m["f_baseline"]
        assert m["convergence_delta"] == pytest.approx(rec["completeness_error"][0], abs=1e-6)
        assert rec["relative_error"][0] == pytest.approx(abs(m["convergence_delta"] / span))


def test_cli_refuses_a_word_for_steps(tiny_model: Path, tmp_path: Path) -> None:
    argv = ["explain", str(tmp_path / "x.nii"), "--model", str(tiny_model), "--steps", "lots"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_on_a_smooth_path_a_few_gauss_legendre_points_beat_the_adaptive_rule() -> None:
    """The limitation docs/methods.md states: on the tanh network 3 Gauss-Legendre points meet
    0.1 %, while the adaptive trapezoid panels spend more per input."""
    x = _x()
    gl = IntegratedGradients(_net()).explain(x, 0.0, n_steps=3)
    assert float(gl.relative_delta.max()) <= 0.001
    auto = IntegratedGradients(_net()).explain(x, 0.0, n_steps="auto", completeness_rtol=0.001)
    assert all(n > 3 for n in auto.extras["adaptive"]["steps_used"])
