"""The Explainer takes names from the configuration, or ready objects (as bundle configs build
them with ``_target_``), and a plain ``torch.nn.Module``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medattr import ExplainConfig, Explainer, IntegratedGradients, Volume
from medattr.baselines import ConstantBaseline, GaussianBlurBaseline
from medattr.errors import InputError
from tests.conftest import LinearModel


@pytest.fixture
def volume() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.random((1, 6, 6, 6), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))


def test_a_plain_module_is_explained(volume: Volume) -> None:
    model = LinearModel((1, 6, 6, 6)).eval()
    result = Explainer(model, ExplainConfig(baseline="zero", n_steps=4)).explain(volume)
    exp = result.explanation
    assert result.attribution.shape == (6, 6, 6)
    assert abs(float(exp.convergence_delta[0])) < 1e-4  # linear: exact
    assert Explainer(model).model.kind == "module"


def test_ready_objects_replace_the_configured_names(volume: Volume) -> None:
    model = LinearModel((1, 6, 6, 6)).eval()
    x = torch.as_tensor(volume.array)[None]
    ready = Explainer(
        model,
        ExplainConfig(baseline="blur", n_steps=4),
        baseline=ConstantBaseline(0.25),
        method=IntegratedGradients(model, internal_batch_size=2),
    )
    result = ready.explain(volume)
    assert result.baseline_info["name"] == "constant" and result.baseline_info["value"] == 0.25
    expected = IntegratedGradients(model).attribute(x, 0.25, target=1, n_steps=4)
    np.testing.assert_allclose(
        result.explanation.attributions.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6
    )
    assert result.explanation.chunk_sizes == [2, 2]  # the given method's engine settings
    by_class = Explainer(model, ExplainConfig(n_steps=4), method=IntegratedGradients)
    assert isinstance(by_class.method(), IntegratedGradients)
    with pytest.raises(InputError, match="must be a Baseline"):
        Explainer(model, baseline="blur")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="must be a path method"):
        Explainer(model, method=GaussianBlurBaseline)  # type: ignore[arg-type]


def test_the_configured_baseline_is_built_once(volume: Volume) -> None:
    model = LinearModel((1, 6, 6, 6)).eval()
    explainer = Explainer(model, ExplainConfig(baseline="blur", blur_sigma_mm=4, n_steps=2))
    first = explainer.make_baseline(volume)
    assert isinstance(first, GaussianBlurBaseline) and first.sigma_mm == 4.0
    assert explainer.make_baseline(volume) is first
