"""What the explainer checks before any baseline or attribution work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr import ExplainConfig, Explainer, IntegratedGradients, Volume
from medattr.errors import InputError, ModelError, ResourceError, VolumeError
from medattr.explain.checks import (
    check_path_point,
    check_prepared,
    check_volume,
    describe_model_failure,
    output_bytes,
)
from medattr.models import IntensitySpec, ModelSpec
from medattr.preprocess import Preprocessor
from medattr.targets import bind_target
from tests.conftest import LinearModel


def _volume(array: np.ndarray) -> Volume:
    return Volume(array[None].astype(np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))


def test_volumes_with_nothing_to_explain_are_refused() -> None:
    with pytest.raises(VolumeError, match=r"empty axis \(shape \(0, 4, 4\)\)"):
        check_volume(_volume(np.zeros((0, 4, 4))))
    with pytest.raises(VolumeError, match=r"constant \(every voxel is 7\)"):
        check_volume(_volume(np.full((4, 4, 4), 7.0)))
    bad = np.ones((4, 4, 4))
    bad[0, 0, 0] = np.inf
    with pytest.raises(VolumeError, match="NaN or infinite"):
        check_volume(_volume(bad))
    check_volume(_volume(np.arange(64.0).reshape(4, 4, 4)))


def test_an_input_flattened_by_the_intensity_window_is_refused() -> None:
    spec = ModelSpec(intensity=IntensitySpec(a_min=-200, a_max=300))
    pre = Preprocessor(spec)
    mr = _volume(np.random.default_rng(0).uniform(2000, 3000, (6, 6, 6)))
    with pytest.raises(
        InputError, match=r"constant after the model's intensity window \[-200, 300\]"
    ):
        check_prepared(pre(mr), mr, spec)
    ct = _volume(np.random.default_rng(0).uniform(-200, 300, (6, 6, 6)))
    check_prepared(pre(ct), ct, spec)


def _setup(model: torch.nn.Module, **engine: object):  # type: ignore[no-untyped-def]
    x = torch.rand(1, 1, 6, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        bound = bind_target(1, model(x))[1]
    return IntegratedGradients(model, **engine), x, bound  # type: ignore[arg-type]


def test_one_point_larger_than_the_budget_is_an_option_error() -> None:
    method, x, bound = _setup(LinearModel((1, 6, 6, 6)).eval(), memory_budget="1KB")
    with pytest.raises(InputError, match=r"one path point needs .* --memory-budget 1.0 KiB"):
        check_path_point(method, x, bound, "m.ts")


def test_one_point_larger_than_free_memory_is_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import medattr.explain.checks as checks

    monkeypatch.setattr(checks, "usable_bytes", lambda engine, device: 10)
    method, x, bound = _setup(LinearModel((1, 6, 6, 6)).eval())
    with pytest.raises(ResourceError, match=r"only 10 B is free on cpu"):
        check_path_point(method, x, bound, "m.ts")


def test_a_model_that_takes_one_input_at_a_time_is_named() -> None:
    class OneAtATime(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] != 1:
                raise RuntimeError("batch size must be 1")
            m = x.mean().view(1, 1)
            return torch.cat([-m, m], 1)

    method, x, bound = _setup(OneAtATime())
    with pytest.raises(ModelError, match=r"m.ts: the model fails on a batch of 2 path points"):
        check_path_point(method, x, bound, "m.ts")
    method, x, bound = _setup(OneAtATime(), internal_batch_size=1)
    assert check_path_point(method, x, bound, "m.ts") > 0


def test_describe_model_failure_keeps_the_last_line_only() -> None:
    @torch.jit.script
    def refuse(x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1:
            raise ValueError("no inputs accepted")
        return x

    try:
        refuse(torch.zeros(1))
    except torch.jit.Error as exc:
        text = describe_model_failure(exc)
    assert text.startswith("TorchScript error:") and text.endswith("no inputs accepted")
    assert "\n" not in text


def test_output_bytes_bounds_the_outputs() -> None:
    vol = _volume(np.ones((10, 10, 10)))
    assert output_bytes(vol, ["nifti"]) == 8 * 1000 + 8 * 2**20
    assert output_bytes(vol, ["nifti", "dicom-pm"]) > output_bytes(vol, ["nifti"])


def test_validation_runs_before_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    explainer = Explainer(LinearModel((1, 6, 6, 6)).eval(), ExplainConfig(n_steps=2))
    monkeypatch.setattr(explainer, "make_baseline", lambda v: calls.append("baseline"))
    with pytest.raises(VolumeError, match="constant"):
        explainer.explain(_volume(np.full((6, 6, 6), 3.0)))
    explainer.config.memory_budget = "1KB"
    with pytest.raises(InputError, match="one path point"):
        explainer.explain(_volume(np.arange(216.0).reshape(6, 6, 6)))
    assert calls == []
