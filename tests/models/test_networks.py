"""The shipped architecture, LesionDetector3D: its two ways of pooling the evidence map."""

from __future__ import annotations

import math

import pytest
import torch

from medattr.models.networks import LesionDetector3D


def _with_evidence(net: LesionDetector3D, e: torch.Tensor) -> torch.Tensor:
    """The logits ``net`` gives when its evidence map is ``e`` ``(N, 1, d, h, w)``."""
    net.evidence = lambda x: e  # type: ignore[method-assign]
    return net(torch.zeros(len(e), 1, 8, 8, 8))


@pytest.mark.parametrize("pool", ["mean", "lse"])
def test_flat_evidence_gives_the_same_log_odds_under_either_pool(pool: str) -> None:
    net = LesionDetector3D(channels=(2,), strides=(2,), pool=pool)
    out = _with_evidence(net, torch.full((1, 1, 4, 4, 4), -1.5))
    assert torch.allclose(out, torch.tensor([[0.75, -0.75]]))
    assert torch.allclose(torch.softmax(out, 1)[0, 1], torch.sigmoid(torch.tensor(-1.5)))


def test_lse_lets_one_location_carry_the_study_where_the_mean_dilutes_it() -> None:
    e = torch.full((1, 1, 4, 4, 4), -4.0)
    e[0, 0, 1, 2, 3] = 12.0
    m_mean = _with_evidence(LesionDetector3D(channels=(2,), strides=(2,)), e)[0, 1] * 2
    m_lse = _with_evidence(LesionDetector3D(channels=(2,), strides=(2,), pool="lse"), e)[0, 1] * 2
    assert float(m_mean) == pytest.approx(-4.0 + 16.0 / 64)  # one cell in 64
    # log-mean-exp: about the peak minus log(cells)
    expected = math.log((63 * math.exp(-4.0) + math.exp(12.0)) / 64)
    assert float(m_lse) == pytest.approx(expected, rel=1e-5)
    assert float(m_lse) > 0 > float(m_mean)


def test_lse_detector_scripts_and_matches_eager_and_rejects_unknown_pools() -> None:
    torch.manual_seed(0)
    net = LesionDetector3D(channels=(4, 8), strides=(2, 2), pool="lse").eval()
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(net)(x), net(x), atol=1e-6)
    with pytest.raises(ValueError, match="pool"):
        LesionDetector3D(pool="max")
