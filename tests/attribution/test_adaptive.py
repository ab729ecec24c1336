"""Adaptive, completeness-targeted path quadrature (medattr.attribution.adaptive)."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medattr import IntegratedGradients
from medattr.attribution.adaptive import (
    AdaptiveResult,
    AdaptiveRule,
    PathSet,
    adaptive_path_integral,
)
from medattr.attribution.engine import PathEngine
from medattr.errors import InputError
from medattr.targets import bind_target
from tests.conftest import LinearModel, SmallConvNet


class SteepSigmoid(torch.nn.Module):
    """``f(x) = sigmoid(k (<w, x> - c))``: along a path it saturates in a small part of [0, 1]."""

    def __init__(self, n: int, k: float, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(n, generator=g) / math.sqrt(n))
        self.k = k
        self.c = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.k * (x.flatten(1) @ self.w - self.c))[:, None]


def _saturating_case() -> tuple[SteepSigmoid, torch.Tensor, torch.Tensor]:
    """A path whose change happens around alpha = 0.37, in about 3 % of [0, 1]."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 4, 4, 4, generator=g)
    b = torch.zeros_like(x)
    model = SteepSigmoid(64, k=1.0)
    z = float(x.flatten(1) @ model.w.detach())
    model.k = 200.0 / abs(z)
    model.c = 0.37 * z
    return model.eval(), x, b


def _run(
    model: torch.nn.Module,
    x: torch.Tensor,
    b: torch.Tensor,
    target: int | None = 1,
    engine: PathEngine | None = None,
    **kw: object,
) -> AdaptiveResult:
    engine = engine or PathEngine(model)
    _, bound = bind_target(target, engine.forward(x))
    return adaptive_path_integral(engine, x, b, bound, **kw)  # type: ignore[arg-type]


def _f(model: torch.nn.Module, v: torch.Tensor, target: int | None = 1) -> torch.Tensor:
    with torch.no_grad():
        out = model(v)
    return (out[:, target] if target is not None else out[:, 0]).double()


@pytest.mark.parametrize(("rule", "points"), [("trapezoid", 2), ("simpson", 3)])
def test_linear_model_is_exact_with_the_smallest_rule(
    rule: str, points: int, volume_batch: torch.Tensor
) -> None:
    model = LinearModel((1, 8, 8, 8))
    base = torch.rand(volume_batch.shape, generator=torch.Generator().manual_seed(2))
    res = _run(model, volume_batch, base, rule=rule)
    expected = model.weight[1].view(1, 1, 8, 8, 8) * (volume_batch - base)
    torch.testing.assert_close(res.sums[0], expected, rtol=1e-5, atol=1e-6)
    assert res.rounds == 1
    assert res.n_evaluations.tolist() == [points, points]
    assert bool(res.converged.all())
    # what is left is float32 rounding of a sum of 512 terms
    assert bool((res.error.abs() <= 1e-6 * expected.flatten(1).abs().sum(1)).all())


def test_stops_at_float32_precision_when_f_hardly_changes(volume_batch: torch.Tensor) -> None:
    # the baseline differs from the input only orthogonally to the weights: f(x) = f(x') up to
    # rounding, so no relative tolerance can be verified; refining would chase float noise
    model = LinearModel((1, 8, 8, 8))
    w = model.weight[1].detach().double()
    r = torch.randn(2, 512, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r -= (r @ w)[:, None] * w / (w @ w)
    base = (volume_batch.double() + 0.1 * r.view(2, 1, 8, 8, 8)).float()
    res = _run(model, volume_batch, base, rtol=0.01, max_steps=64)
    assert res.stopped == ["precision", "precision"]
    assert res.path_status == ["precision", "precision"]
    assert not bool(res.converged.any())
    assert res.n_evaluations.tolist() == [2, 2] and res.rounds == 1
    assert bool((res.path_error.abs() <= res.path_precision).all())
    with_atol = _run(model, volume_batch, base, rtol=0.01, atol=1e-3)
    assert bool(with_atol.converged.all()) and with_atol.stopped == ["converged"] * 2


def test_reported_error_is_the_attribution_sum_minus_the_span(
    sigmoid_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = torch.zeros_like(volume_batch)
    res = _run(sigmoid_net, volume_batch, base, rtol=1e-3)
    span = _f(sigmoid_net, volume_batch) - _f(sigmoid_net, base)
    error = res.sums[0].flatten(1).double().sum(1) - span
    torch.testing.assert_close(res.error, error, rtol=0, atol=1e-6)
    torch.testing.assert_close(res.path_error, res.error, rtol=0, atol=1e-6)
    assert bool((res.path_local_error >= res.path_error.abs() - 1e-12).all())
    assert bool((res.error.abs() <= 1e-3 * span.abs()).all())
    assert bool(res.converged.all())
    assert res.summary()["steps_used"] == res.n_evaluations.tolist()
    # the ends of every path are nodes: f(x) and f(x') come with their gradients
    for alphas, outputs, i in zip(res.path_alphas, res.path_outputs, range(2), strict=True):
        assert alphas[0] == 0.0 and alphas[-1] == 1.0
        assert outputs[-1].item() == pytest.approx(float(_f(sigmoid_net, volume_batch)[i]))


def test_given_end_values_define_the_span(
    sigmoid_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = torch.zeros_like(volume_batch)
    f_in = _f(sigmoid_net, volume_batch) + 0.5  # deliberately off: the span must use them
    res = _run(
        sigmoid_net, volume_batch, base, f_inputs=f_in, f_baselines=torch.zeros(2), max_steps=6
    )
    assert not bool(res.converged.any())  # 0.5 off: no quadrature can close that gap
    torch.testing.assert_close(res.span, f_in)
    torch.testing.assert_close(res.error, res.sums[0].flatten(1).double().sum(1) - f_in)


def test_no_evaluation_is_wasted(sigmoid_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    for rule in AdaptiveRule:
        res = _run(sigmoid_net, volume_batch, torch.zeros_like(volume_batch), rule=rule, rtol=1e-4)
        assert sum(res.chunk_sizes) == int(res.n_evaluations.sum())
        for alphas, weights in zip(res.path_alphas, res.path_weights, strict=True):
            assert bool((weights > 0).all())  # every evaluated point carries weight
            assert float(weights.sum()) == pytest.approx(1.0)
            assert alphas.unique().numel() == alphas.numel()


def test_each_round_is_one_engine_call_for_all_paths(
    sigmoid_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    engine = PathEngine(sigmoid_net)
    calls: list[list[int]] = []
    run = engine.run

    def spy(*args: object, **kw: object) -> object:
        calls.append(sorted(set(args[2].sample.tolist())))  # type: ignore[attr-defined]
        return run(*args, **kw)  # type: ignore[arg-type]

    engine.run = spy  # type: ignore[method-assign]
    res = _run(sigmoid_net, volume_batch, torch.zeros_like(volume_batch), engine=engine, rtol=1e-4)
    assert len(calls) == res.rounds > 1
    assert calls[0] == [0, 1]


@pytest.mark.parametrize("rule", ["trapezoid", "simpson"])
def test_chunking_does_not_change_the_result(
    rule: str, relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = torch.zeros_like(volume_batch)
    single = PathEngine(relu_net, internal_batch_size=1)
    one = _run(relu_net, volume_batch, base, target=0, engine=single, rule=rule, rtol=2e-3)
    auto = _run(relu_net, volume_batch, base, target=0, rule=rule, rtol=2e-3)
    assert bool(one.converged.all()) and one.rounds > 2
    assert max(one.chunk_sizes) == 1 and max(auto.chunk_sizes) > 1
    torch.testing.assert_close(one.sums, auto.sums, rtol=1e-5, atol=1e-7)
    assert one.n_evaluations.tolist() == auto.n_evaluations.tolist()
    for a, c in zip(one.path_alphas, auto.path_alphas, strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=0)


def test_meets_the_tolerance_where_fixed_gauss_legendre_does_not() -> None:
    model, x, b = _saturating_case()
    ig = IntegratedGradients(model)
    span = float(_f(model, x, None) - _f(model, b, None))

    def gl_error(n: int) -> float:
        return float(ig.explain(x, b, n_steps=n).convergence_delta[0]) / span

    assert abs(gl_error(16)) > 0.01
    smallest = next(n for n in range(1, 400) if abs(gl_error(n)) <= 0.01)
    res = _run(model, x, b, target=None, rtol=0.01)
    assert bool(res.converged.all())
    assert abs(float(res.error[0])) <= 0.01 * abs(span)
    assert int(res.n_evaluations[0]) < smallest
    # the points went where f changes: most of them within 0.1 of the transition
    alphas = res.path_alphas[0]
    assert float(((alphas - 0.37).abs() < 0.1).double().mean()) > 0.5


def test_round_points_trades_evaluations_for_rounds() -> None:
    model, x, b = _saturating_case()
    one = _run(model, x, b, target=None)
    four = _run(model, x, b, target=None, round_points=4)
    assert bool(one.converged.all()) and bool(four.converged.all())
    assert four.rounds < one.rounds
    assert int(four.n_evaluations[0]) >= int(one.n_evaluations[0])
    assert four.settings["round_points"] == 4


def test_reports_non_convergence_at_max_steps() -> None:
    model, x, b = _saturating_case()
    res = _run(model, x, b, target=None, rtol=1e-6, max_steps=9)
    assert not bool(res.converged.any()) and not bool(res.path_converged.any())
    assert int(res.n_evaluations[0]) <= 9
    assert abs(float(res.error[0])) > float(res.tolerance[0])
    assert res.summary()["converged"] == [False]
    assert res.stopped == ["max_steps"] and res.summary()["stopped"] == ["max_steps"]
    simpson = _run(model, x, b, target=None, rtol=1e-6, max_steps=10, rule="simpson")
    assert int(simpson.n_evaluations[0]) == 9  # 3 + 2 + 2 + 2: the next split would pass 10


def test_split_at_the_saturation_point(
    sigmoid_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = torch.zeros_like(volume_batch)
    full = _run(sigmoid_net, volume_batch, base, rtol=1e-3)
    split = _run(sigmoid_net, volume_batch, base, rtol=1e-3, split_ratio=0.6)
    assert split.sums.shape[0] == 2 and split.alpha_star is not None
    assert split.f_alpha_star is not None and split.left_error is not None
    torch.testing.assert_close(split.sums.sum(0), full.sums[0], rtol=1e-5, atol=1e-7)
    for p in range(2):
        a, f = split.path_alphas[p], split.path_outputs[p]
        norm = (f - f[0]) / (f[-1] - f[0])
        first = int((norm >= 0.6).nonzero()[0])
        assert float(split.alpha_star[p]) == float(a[first])
        left = float(split.sums[0, p].double().sum())
        expected = left - (float(split.f_alpha_star[p]) - float(f[0]))
        assert float(split.left_error[p]) == pytest.approx(expected, abs=1e-6)


def test_expected_gradients_layout_averages_over_references(volume_batch: torch.Tensor) -> None:
    model = LinearModel((1, 8, 8, 8))
    refs = torch.rand(3, 1, 8, 8, 8, generator=torch.Generator().manual_seed(5))
    res = _run(model, volume_batch, refs, paths=PathSet.all_references(2, 3))
    w = model.weight[1].view(1, 1, 8, 8, 8)
    torch.testing.assert_close(res.sums[0], w * (volume_batch - refs.mean(0, keepdim=True)))
    f_refs = _f(model, refs)
    torch.testing.assert_close(res.f_baseline, f_refs.mean().repeat(2))
    torch.testing.assert_close(res.span, _f(model, volume_batch) - f_refs.mean())
    assert res.n_evaluations.tolist() == [6, 6]


def test_gradient_only_variant_keeps_the_completeness_error(volume_batch: torch.Tensor) -> None:
    model = LinearModel((1, 8, 8, 8))
    res = _run(model, volume_batch, torch.zeros_like(volume_batch), multiply_by_delta=False)
    gradient = model.weight[1].view(1, 1, 8, 8, 8).expand(2, -1, -1, -1, -1)
    torch.testing.assert_close(res.sums[0], gradient)
    assert res.error.abs().max() < 1e-4


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"rtol": 0.0}, "rtol"),
        ({"rtol": 1.0}, "rtol"),
        ({"rtol": -0.01}, "rtol"),
        ({"rtol": float("nan")}, "rtol"),
        ({"rtol": "1%"}, "rtol"),
        ({"atol": -1.0}, "atol"),
        ({"max_steps": 1}, "max_steps"),
        ({"max_steps": 2, "rule": "simpson"}, "max_steps"),
        ({"max_steps": 4, "initial_panels": 4}, "max_steps"),
        ({"max_steps": 10.0}, "max_steps"),
        ({"max_steps": True}, "max_steps"),
        ({"rule": "gausslegendre"}, "rule"),
        ({"initial_panels": 0}, "initial_panels"),
        ({"refine_fraction": 0.0}, "refine_fraction"),
        ({"round_points": 0}, "round_points"),
        ({"split_ratio": 1.5}, "split_ratio"),
        ({"f_inputs": torch.zeros(3)}, "f_inputs"),
        ({"paths": PathSet([0, 2], [0, 1], [1.0, 1.0])}, "paths.sample"),
    ],
)
def test_invalid_settings_are_rejected(
    kw: dict[str, object], match: str, relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    with pytest.raises(ValueError, match=match) as err:
        _run(relu_net, volume_batch, torch.zeros_like(volume_batch), **kw)
    assert isinstance(err.value, InputError)


def test_baseline_bank_must_match_the_inputs(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    with pytest.raises(InputError, match="baselines"):
        _run(relu_net, volume_batch, torch.zeros(2, 1, 4, 4, 4))
    with pytest.raises(InputError, match="PathSet"):
        _run(relu_net, volume_batch, torch.zeros(3, 1, 8, 8, 8))


# ------------------------------------------------------------------- path splitting (gloo)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _distributed_case(distributed: bool) -> dict[str, torch.Tensor]:
    net = SmallConvNet("relu", seed=3).eval()
    x = torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    b = torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    engine = PathEngine(net, internal_batch_size=3, distributed=distributed)
    res = _run(net, x, b, engine=engine, rtol=1e-3, split_ratio=0.5)
    return {
        "sums": res.sums,
        "error": res.error,
        "evals": res.n_evaluations,
        "rounds": torch.tensor(res.rounds),
        "alphas": torch.cat(res.path_alphas),
        "alpha_star": res.alpha_star if res.alpha_star is not None else torch.zeros(0),
        "local_points": torch.tensor(sum(res.chunk_sizes)),
        "converged": res.path_converged,
    }


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1 + rank)  # different reduction orders must not change decisions
    try:
        torch.save(_distributed_case(True), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_path_splitting_across_two_ranks_gives_the_single_process_result(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _distributed_case(False)
    assert int(single["rounds"]) > 1
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for got in ranks:
        for key in ("evals", "rounds", "alphas", "alpha_star", "converged"):
            assert torch.equal(got[key], single[key]), key
        torch.testing.assert_close(got["sums"], single["sums"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(got["error"], single["error"], rtol=0, atol=1e-6)
    # the points were split: each rank evaluated part of them, together all of them
    assert int(ranks[0]["local_points"]) + int(ranks[1]["local_points"]) == int(
        single["evals"].sum()
    )
    assert 0 < int(ranks[0]["local_points"]) < int(single["evals"].sum())
