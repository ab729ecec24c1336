"""The classifier-guided mask (``inpaint-guided``) on analytic stand-ins."""

from __future__ import annotations

import pytest
import torch

from medattr.baselines import BASELINES, BaselineContext
from medattr.baselines.counterfactual.guided import GuidedInpaintBaseline
from medattr.baselines.counterfactual.inpaint import InpaintCounterfactualBaseline, feather_mask
from medattr.errors import InputError
from tests.baselines._standins import SHAPE, SP, FlatHealthy, LesionLogit, healthy

CENTRE = (12, 10, 13)


def _ball(radius: float, centre: tuple[int, int, int] = CENTRE) -> torch.Tensor:
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in SHAPE], indexing="ij"))
    return (((idx - torch.tensor(centre).view(3, 1, 1, 1)) ** 2).sum(0) <= radius**2)[None, None]


@pytest.fixture(scope="module")
def inpainter() -> FlatHealthy:
    return FlatHealthy()


@pytest.fixture
def faint() -> tuple[torch.Tensor, torch.Tensor, float]:
    """A lesion study (x, lesion mask) and a threshold just above its anomaly peak, so that the
    calibrated mask misses it but half that threshold finds it."""
    x = healthy(7) + 0.3 * _ball(3)
    peak = float(
        InpaintCounterfactualBaseline(FlatHealthy()).masks(x, SP)[0].residual[_ball(3)[0, 0]].max()
    )
    return x, _ball(3), 1.25 * peak


def test_the_guide_grows_a_missed_mask_until_the_classifier_calls_it_healthy(
    inpainter: FlatHealthy, faint: tuple[torch.Tensor, torch.Tensor, float]
) -> None:
    x, lesion, level = faint
    f = LesionLogit()
    ctx = BaselineContext(spacing=SP, forward_func=f)
    plain = InpaintCounterfactualBaseline(inpainter, anomaly_threshold=level).generate(x, ctx)
    assert plain.info["mask_empty"] == [True] and plain.info["still_diseased"] == [True]
    guided = GuidedInpaintBaseline(inpainter, anomaly_threshold=level, guide_factor=0.5)
    res = guided.generate(x, ctx)
    mask = res.masks["anomaly_mask"]
    assert bool(mask[lesion].all())
    assert res.info["guided"] == [True] and res.info["still_diseased"] == [False]
    assert res.info["p_disease_baseline"][0] < 0.5 < res.info["p_disease_input"][0]
    grown = [s for s in res.info["steps"][0] if s["step"].startswith("guide ")]
    assert grown[-1]["kept"] == "grown" and grown[-1]["voxels"] == int(mask.sum())
    # exactly the input outside the feathered mask
    _, support = feather_mask(mask, guided.feather_mm, SP)
    assert torch.equal(res.baselines[~support], x[~support])


def test_an_input_called_healthy_keeps_the_calibrated_mask_without_trying_infills(
    inpainter: FlatHealthy,
) -> None:
    x = healthy(8)
    f = LesionLogit()
    res = GuidedInpaintBaseline(inpainter).generate(x, BaselineContext(spacing=SP, forward_func=f))
    assert res.info["mask_empty"] == [True] and res.info["guided"] == [False]
    assert torch.equal(res.baselines, x)
    # one call for the decision, two for the report (p at x and at x'): no infill was tried
    assert f.calls == 3


def test_when_no_grown_mask_reaches_healthy_the_calibrated_mask_is_kept_and_flagged(
    inpainter: FlatHealthy, faint: tuple[torch.Tensor, torch.Tensor, float]
) -> None:
    x, _, level = faint

    class AlwaysDiseased(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[-5.0, 5.0]]).expand(len(v), 2)

    base = GuidedInpaintBaseline(inpainter, anomaly_threshold=level, guide_components=2)
    res = base.generate(x, BaselineContext(spacing=SP, forward_func=AlwaysDiseased()))
    assert res.info["mask_empty"] == [True] and res.info["guided"] == [False]
    assert torch.equal(res.baselines, x)
    assert res.info["still_diseased"] == [True]
    tried = [s for s in res.info["steps"][0] if s["step"].startswith("guide ")]
    assert 1 <= len(tried) <= 2
    assert res.info["steps"][0][-1]["reason"] == "no grown mask reached healthy"


def test_the_guide_needs_the_classifier_and_valid_settings(inpainter: FlatHealthy) -> None:
    with pytest.raises(InputError, match="needs the classifier"):
        GuidedInpaintBaseline(inpainter).generate(healthy(1), BaselineContext(spacing=SP))
    with pytest.raises(InputError, match="guide_factor"):
        GuidedInpaintBaseline(inpainter, guide_factor=1.5)
    with pytest.raises(InputError, match="guide_components"):
        GuidedInpaintBaseline(inpainter, guide_components=0)
    assert BASELINES.get("inpaint-guided") is GuidedInpaintBaseline


class BiasedLesionLogit(torch.nn.Module):
    """A central-block logit with a bias: nothing, not even a perfect infill, is called healthy
    (disease log-odds 2 s: about 6 for healthy tissue, 9 with the lesion)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 20.0 * (x[:, :, 8:16, 6:14, 9:17].mean(dim=(1, 2, 3, 4)) - 0.55) + 4.0
        return torch.stack([-s, s], dim=1)


def test_with_a_minimum_drop_the_mask_keeps_the_components_that_carry_the_evidence(
    inpainter: FlatHealthy, faint: tuple[torch.Tensor, torch.Tensor, float]
) -> None:
    x, lesion, level = faint
    # a second, weaker anomaly far from the classifier's block: it carries no evidence
    x = x + 0.25 * _ball(3, (19, 19, 4))
    ctx = BaselineContext(spacing=SP, forward_func=BiasedLesionLogit())
    kw = {"anomaly_threshold": level, "guide_factor": 0.4}
    plain = GuidedInpaintBaseline(inpainter, **kw).generate(x, ctx)
    assert plain.info["mask_empty"] == [True] and plain.info["guided"] == [False]
    res = GuidedInpaintBaseline(inpainter, guide_min_drop=1.0, **kw).generate(x, ctx)
    mask = res.masks["anomaly_mask"]
    tried = [s for s in res.info["steps"][0] if s["step"].startswith("guide ")]
    assert len(tried) >= 2  # the lesion and the other anomaly were both tried
    kept = [s for s in tried if s.get("accepted")]
    assert kept and all(s["logit_drop"] >= 1.0 for s in kept)
    assert all(s["logit_drop"] < 1.0 for s in tried if not s.get("accepted"))
    assert bool(mask[lesion].all()) and not bool(mask[_ball(3, (19, 19, 4))].any())
    assert int(mask.sum()) == kept[-1]["voxels"]
    assert res.info["guided"] == [True] and res.info["still_diseased"] == [True]
    assert res.info["steps"][0][-1]["reason"] == "evidence removed, still diseased"
    _, support = feather_mask(mask, 4.5, SP)
    assert torch.equal(res.baselines[~support], x[~support])
    with pytest.raises(InputError, match="guide_min_drop"):
        GuidedInpaintBaseline(inpainter, guide_min_drop=-1.0)
    assert GuidedInpaintBaseline(inpainter, guide_min_drop=0.0).guide_min_drop is None  # off


def test_the_minimum_drop_defaults_to_the_level_calibrated_for_the_model() -> None:
    from types import SimpleNamespace

    from medattr._baseline import BaselineSetup
    from medattr.baselines.counterfactual.guided import PAIRED_GUIDE_MIN_DROP, paired_guide_min_drop

    def setup(name: str, extra: dict | None = None) -> BaselineSetup:
        return BaselineSetup(model=SimpleNamespace(spec=SimpleNamespace(name=name, extra=extra)))

    shipped = "medattr-mni-lesion-classifier"
    assert paired_guide_min_drop(setup(shipped)) == PAIRED_GUIDE_MIN_DROP[shipped]
    assert paired_guide_min_drop(setup(shipped, {"guide_min_drop": 1.5})) == 1.5  # its own
    assert paired_guide_min_drop(setup("someone-elses-model")) is None
    assert paired_guide_min_drop(BaselineSetup()) is None
