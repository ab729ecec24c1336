from __future__ import annotations

import pytest
import torch

from medattr import IntegratedGradients
from medattr.attribution._memory import is_out_of_memory, parse_bytes, saved_activation_bytes
from medattr.attribution.engine import PathEngine, PathJobs
from medattr.targets import bind_target
from tests.conftest import SmallConvNet


class OOMAbove(torch.nn.Module):
    """Raises an out-of-memory error whenever a batch has more than ``limit`` points."""

    def __init__(self, inner: torch.nn.Module, limit: int, kind: str = "cuda") -> None:
        super().__init__()
        self.inner, self.limit, self.kind, self.batches = inner, limit, kind, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            if self.kind == "cuda":
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError(
                "[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: can't allocate memory"
            )
        return self.inner(x)


@pytest.mark.parametrize("kind", ["cuda", "cpu"])
def test_out_of_memory_halves_the_chunk_and_retries(
    kind: str, relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    ref = IntegratedGradients(relu_net).explain(
        volume_batch, target=1, n_steps=20, internal_batch_size=40
    )
    model = OOMAbove(relu_net, limit=5, kind=kind)
    exp = IntegratedGradients(model).explain(
        volume_batch, target=1, n_steps=20, internal_batch_size=40
    )
    torch.testing.assert_close(exp.attributions, ref.attributions, rtol=1e-5, atol=1e-8)
    assert exp.oom_retries >= 1
    assert max(exp.chunk_sizes) <= 5
    assert sum(exp.chunk_sizes) == 40
    # 40 -> 20 -> 10 -> 5 halvings happen once; later chunks keep the size that worked
    gradient_batches = [b for b in model.batches if b in (40, 20, 10)]
    assert gradient_batches == [40, 20, 10]


def test_out_of_memory_at_one_point_is_reported(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    model = OOMAbove(relu_net, limit=0)
    with pytest.raises(MemoryError, match="single"):
        IntegratedGradients(model).attribute(volume_batch, target=0, n_steps=4)


def test_auto_planner_measures_and_respects_budget(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    ig = IntegratedGradients(relu_net)
    big = ig.explain(volume_batch, target=0, n_steps=30, internal_batch_size="auto")
    assert big.chunk_sizes[0] == 2  # the measuring chunk
    per_point = big.extras["bytes_per_point"]
    assert per_point > volume_batch[0].numel() * 4  # activations are larger than the input
    # a budget of ~3 points' worth forces small chunks
    small = ig.explain(
        volume_batch,
        target=0,
        n_steps=30,
        internal_batch_size="auto",
        memory_budget=int(per_point * 3.9),
    )
    assert max(small.chunk_sizes[1:]) == 3
    torch.testing.assert_close(small.attributions, big.attributions, rtol=1e-5, atol=1e-8)


def test_saved_activation_bytes_counts_batch_tensors_only() -> None:
    conv = torch.nn.Conv3d(1, 8, 3, padding=1)
    x = torch.rand(4, 1, 10, 10, 10, requires_grad=True)
    with saved_activation_bytes(4) as total:
        y = torch.relu(conv(x)).sum()
    # conv saves its input (4*1000 floats), relu saves its output (4*8*1000 floats)
    assert total[0] >= 4 * 1000 * 4 + 4 * 8000 * 4
    assert total[0] < 4 * 1000 * 4 + 4 * 8000 * 4 + 8 * 27 * 4 + 1
    y.backward()


def test_parse_bytes_and_oom_detection() -> None:
    assert parse_bytes("8GB") == 8 * 2**30
    assert parse_bytes("512 MiB") == 512 * 2**20
    assert parse_bytes(1000) == 1000
    assert parse_bytes(None) is None
    for bad in ("eight", "-3GB", 0, "3 parsecs"):
        with pytest.raises(ValueError, match="memory_budget"):
            parse_bytes(bad)
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_buckets_split_the_sum(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    engine = PathEngine(relu_net, internal_batch_size=7)
    _, bound = bind_target(1, relu_net(volume_batch))
    jobs = PathJobs.straight(2, torch.linspace(0.05, 0.95, 10), torch.full((10,), 0.1))
    res1 = engine.run(volume_batch, torch.zeros_like(volume_batch), jobs, bound)
    res2 = engine.run(
        volume_batch,
        torch.zeros_like(volume_batch),
        jobs,
        bound,
        buckets=2,
        bucket_fn=lambda s, a, v: (a > 0.5).long(),
    )
    torch.testing.assert_close(res2.sums.sum(0), res1.sums[0], rtol=1e-5, atol=1e-8)
    assert torch.count_nonzero(res2.sums[0]) > 0 and torch.count_nonzero(res2.sums[1]) > 0
    torch.testing.assert_close(res1.outputs, res2.outputs)


def test_progress_bar_goes_to_stderr(
    capsys: pytest.CaptureFixture[str], volume_batch: torch.Tensor
) -> None:
    import time

    net = SmallConvNet("relu").eval()

    def slow(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        return net(x)

    IntegratedGradients(slow, progress=True).attribute(
        volume_batch[:1], target=0, n_steps=10, internal_batch_size=1
    )
    err = capsys.readouterr().err
    assert "integrated_gradients" in err and "pt" in err


def test_engine_rejects_bad_settings(relu_net: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="internal_batch_size"):
        PathEngine(relu_net, internal_batch_size="big")
    with pytest.raises(ValueError, match=r"amp must be one of"):
        PathEngine(relu_net, amp="fp8")
    with pytest.raises(TypeError, match="callable"):
        PathEngine("model")  # type: ignore[arg-type]


def test_parameters_are_frozen_during_the_run_and_restored(volume_batch: torch.Tensor) -> None:
    net = SmallConvNet("relu").eval()
    net.head.weight.requires_grad_(False)  # a user's own choice must survive too
    seen: list[tuple[bool, bool]] = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((x.requires_grad, any(p.requires_grad for p in self.net.parameters())))
            return self.net(x)

    IntegratedGradients(Spy()).attribute(volume_batch, target=0, n_steps=4, internal_batch_size=8)
    gradient_calls = [params for needs_grad, params in seen if needs_grad]
    assert gradient_calls and not any(gradient_calls)  # no parameter required grad in the path
    assert net.conv1.weight.requires_grad and not net.head.weight.requires_grad


def test_second_call_reuses_the_measured_footprint(volume_batch: torch.Tensor) -> None:
    net = SmallConvNet("relu", seed=9).eval()
    ig = IntegratedGradients(net)
    first = ig.explain(volume_batch, target=1, n_steps=8)
    second = ig.explain(volume_batch, target=1, n_steps=8)
    assert first.chunk_sizes[0] == 2  # measured
    assert second.extras["bytes_per_point"] == first.extras["bytes_per_point"]
    assert second.chunk_sizes == [16]  # planned at once, no measuring chunk
    # another input geometry is measured again
    third = ig.explain(volume_batch[:, :, :6, :6, :6], target=1, n_steps=8)
    assert third.chunk_sizes[0] == 2


def test_chunks_are_spread_evenly(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    engine = PathEngine(relu_net, max_chunk=13)
    _, bound = bind_target(1, relu_net(volume_batch))
    jobs = PathJobs.straight(2, torch.linspace(0.05, 0.95, 8), torch.full((8,), 0.125))
    res = engine.run(volume_batch, torch.zeros_like(volume_batch), jobs, bound)
    # 16 points: a 2-point measuring chunk, then 14 as two chunks of 7 (not 13 + 1)
    assert res.chunk_sizes == [2, 7, 7]


def test_chunks_stay_even_when_the_points_do_not_divide(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    engine = PathEngine(relu_net, max_chunk=3)
    _, bound = bind_target(1, relu_net(volume_batch))
    jobs = PathJobs.straight(2, torch.linspace(0.05, 0.95, 9), torch.full((9,), 1 / 9))
    res = engine.run(volume_batch, torch.zeros_like(volume_batch), jobs, bound)
    # 18 points: the 2-point measuring chunk, then 16 at <= 3 as 3 3 3 3 2 2 (not 3 x 5 + 1)
    assert res.chunk_sizes == [2, 3, 3, 3, 3, 2, 2]


def test_per_point_rows_add_up_to_the_sums(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    engine = PathEngine(relu_net, internal_batch_size=3)
    _, bound = bind_target(1, engine.forward(volume_batch))
    jobs = PathJobs.straight(2, [0.2, 0.5, 0.9, 1.0], [0.1, 0.4, 0.3, 0.2])
    base = torch.zeros_like(volume_batch)
    total = engine.run(volume_batch, base, jobs, bound)
    rows = engine.run(volume_batch, base, jobs, bound, per_point=True)
    assert rows.sums.shape == (1, 8, 1, 8, 8, 8)
    by_input = torch.zeros_like(total.sums[0]).index_add_(0, jobs.sample, rows.sums[0])
    torch.testing.assert_close(by_input, total.sums[0], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(rows.outputs, total.outputs)
    with pytest.raises(ValueError, match="per_point"):
        engine.run(volume_batch, base, jobs, bound, per_point=True, buckets=2)
