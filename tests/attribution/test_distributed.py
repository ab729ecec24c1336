"""Path points split across ranks (gloo on CPU) give the single-process result."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from medattr import ExpectedGradients, IntegratedGradients, SmoothGrad, SplitIntegratedGradients
from tests.conftest import SmallConvNet


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inputs() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    net = SmallConvNet("sigmoid", seed=3).eval()
    x = torch.rand(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    refs = torch.rand(4, 1, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    return net, x, refs


def _compute(distributed: bool) -> dict[str, torch.Tensor]:
    net, x, refs = _inputs()
    kw = {"internal_batch_size": 5, "distributed": distributed}
    ig = IntegratedGradients(net, **kw).explain(x, 0.0, target=1, n_steps=13)
    eg = ExpectedGradients(net, **kw).explain(x, refs, target=0, n_samples=9, seed=2)
    sg = SmoothGrad(net, "integrated_gradients", **kw).explain(
        x, 1, nt_samples=3, noise_level=0.1, n_steps=5, nt_samples_batch_size=4
    )
    return {
        "ig": ig.attributions,
        "ig_delta": ig.convergence_delta,
        "eg": eg.attributions,
        "eg_delta": eg.convergence_delta,
        "sg": sg.attributions,
        "ig_evals": torch.tensor(ig.n_evaluations),
    }


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        res = _compute(distributed=True)
        torch.save(res, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_split_path_points_across_two_ranks(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = _compute(distributed=False)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        for key in ("ig", "ig_delta", "eg", "eg_delta", "sg"):
            torch.testing.assert_close(got[key], single[key], rtol=1e-5, atol=1e-7)
        # each rank evaluated its own half of the 26 path points
        assert int(got["ig_evals"]) == 13


def test_distributed_needs_a_process_group_and_a_splittable_method() -> None:
    net, x, _ = _inputs()
    with pytest.raises(RuntimeError, match="process group"):
        IntegratedGradients(net, distributed=True).attribute(x, target=0, n_steps=4)
    if not dist.is_initialized():
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())})
        dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        with pytest.raises(NotImplementedError, match="Split IG"):
            SplitIntegratedGradients(net, distributed=True).attribute(x, target=0, n_steps=4)
    finally:
        dist.destroy_process_group()
