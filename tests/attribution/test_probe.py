"""The one-point probe measures what the engine measures, and the run then plans at once."""

from __future__ import annotations

import pytest
import torch

from medattr.attribution import IntegratedGradients
from medattr.attribution.probe import measure_point, usable_bytes
from medattr.targets import bind_target
from tests.conftest import SmallConvNet


def _bound(model: torch.nn.Module, x: torch.Tensor):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        out = model(x)
    return bind_target(1, out)[1]


def test_the_probe_measures_what_the_run_measures() -> None:
    x = torch.rand(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    measured_by_run = IntegratedGradients(SmallConvNet().eval()).explain(x, 0.0, target=1)
    model = SmallConvNet().eval()
    per_point = measure_point(IntegratedGradients(model).engine(), x, _bound(model, x))
    assert per_point == measured_by_run.extras["bytes_per_point"] > 0


def test_after_the_probe_the_run_plans_its_chunks_at_once() -> None:
    x = torch.rand(1, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    fresh = IntegratedGradients(SmallConvNet().eval()).explain(x, 0.0, target=1, n_steps=8)
    assert fresh.chunk_sizes == [2, 6]  # a small measuring chunk first
    model = SmallConvNet().eval()
    ig = IntegratedGradients(model)
    measure_point(ig.engine(), x, _bound(model, x))
    probed = ig.explain(x, 0.0, target=1, n_steps=8)
    assert probed.chunk_sizes == [8]
    torch.testing.assert_close(probed.attributions, fresh.attributions, rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_of_one_probes_one_point() -> None:
    class OneAtATime(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] != 1:
                raise RuntimeError("batch size must be 1")
            return torch.cat([x.mean().view(1, 1), -x.mean().view(1, 1)], 1)

    model = OneAtATime()
    x = torch.rand(1, 1, 4, 4, 4)
    with pytest.raises(RuntimeError, match="batch size must be 1"):
        measure_point(IntegratedGradients(model).engine(), x, _bound(model, x))
    engine = IntegratedGradients(model, internal_batch_size=1).engine()
    assert measure_point(engine, x, _bound(model, x)) > 0


def test_a_non_finite_gradient_at_the_input_is_reported() -> None:
    class Kink(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = torch.sqrt((x - x).abs().mean(dim=(1, 2, 3, 4))).view(-1, 1)
            return torch.cat([s, -s], 1)

    model = Kink()
    x = torch.rand(1, 1, 4, 4, 4)
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        measure_point(IntegratedGradients(model).engine(), x, _bound(model, x))


def test_usable_bytes_follows_the_budget() -> None:
    engine = IntegratedGradients(SmallConvNet(), memory_budget="1MB").engine()
    assert usable_bytes(engine, torch.device("cpu")) == int(0.9 * 2**20)
