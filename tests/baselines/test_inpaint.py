"""Mask-and-infill counterfactual baselines on analytic stand-ins (the shipped inpainter is
tested in tests/baselines/test_inpaint_shipped.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from medattr import IntegratedGradients
from medattr.baselines import BaselineContext
from medattr.baselines.counterfactual.inpaint import (
    InpaintCounterfactualBaseline,
    MaskedBlurBaseline,
    MaskedVAEBaseline,
    feather_mask,
)
from medattr.errors import InputError
from tests.baselines._standins import SHAPE, SP, FlatHealthy, LesionLogit, healthy


class MeanVAE:
    """Stand-in VAE whose reconstruction is the volume's mean everywhere."""

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.mean(dim=(1, 2, 3, 4))[:, None]
        return m, torch.zeros_like(m)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, :, None, None, None].expand(-1, 1, *SHAPE)


@pytest.fixture(scope="module")
def inpainter() -> FlatHealthy:
    return FlatHealthy()


@pytest.fixture
def study() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A lesion study, its healthy twin and the lesion mask (batch of 1)."""
    twin = healthy(7)
    idx = torch.stack(torch.meshgrid(*[torch.arange(s) for s in SHAPE], indexing="ij"))
    ball = ((idx - torch.tensor([12, 10, 13]).view(3, 1, 1, 1)) ** 2).sum(0) <= 9
    return twin + 0.3 * ball[None, None], twin, ball[None, None]


def _mask(base: InpaintCounterfactualBaseline, x: torch.Tensor) -> torch.Tensor:
    """The anomaly mask ``base`` finds in ``x``, ``(1, 1, *spatial)`` bool."""
    return torch.from_numpy(base.masks(x, SP)[0].mask)[None, None]


def _ctx(model: torch.nn.Module | None = None) -> BaselineContext:
    return BaselineContext(spacing=SP, forward_func=model)


def test_inpaint_baseline_removes_the_lesion_and_keeps_everything_else(
    inpainter: FlatHealthy, study: tuple[torch.Tensor, ...]
) -> None:
    x, twin, lesion = study
    base = InpaintCounterfactualBaseline(inpainter)
    res = base.generate(x, _ctx())
    b, mask = res.baselines, _mask(base, x)
    assert mask.shape == x.shape and bool(mask[lesion].all())
    # exactly the input wherever the feathered mask is zero
    _, support = feather_mask(mask, 4.5, SP)
    assert torch.equal(b[~support], x[~support])
    # inside the lesion the baseline is much closer to the twin than the input is
    before = (x - twin).abs()[lesion].mean()
    after = (b - twin).abs()[lesion].mean()
    assert after < 0.2 * before
    assert res.info["mask_empty"] == [False]
    assert res.info["mask_voxels"][0] == int(mask.sum())
    assert len(res.info["components"][0]) == 1 and res.info["n_components"] == [1]
    assert res.info["mask_volume_mm3"][0] == pytest.approx(27.0 * int(mask.sum()))
    assert res.info["steps"][0][0]["step"] == "threshold"


def test_a_healthy_volume_gets_an_empty_mask_and_itself(inpainter: FlatHealthy) -> None:
    x = healthy(8)
    res = InpaintCounterfactualBaseline(inpainter).generate(x, _ctx(LesionLogit()))
    assert res.info["mask_empty"] == [True]
    assert torch.equal(res.baselines, x)
    assert res.info["still_diseased"] == [False]


def test_ablations_share_the_mask_and_differ_only_in_the_fill(
    inpainter: FlatHealthy, study: tuple[torch.Tensor, ...]
) -> None:
    x, twin, lesion = study
    inp = InpaintCounterfactualBaseline(inpainter)
    masks = inp.masks(x, SP)
    out = {
        "inpaint": inp.from_masks(x, masks, _ctx(), SP),
        "blur": MaskedBlurBaseline(inpainter, sigma_mm=10.0).from_masks(x, masks, _ctx(), SP),
        "vae": MaskedVAEBaseline(inpainter, vae=MeanVAE()).from_masks(x, masks, _ctx(), SP),
    }
    _, support = feather_mask(_mask(inp, x), 4.5, SP)
    for res in out.values():
        assert res.info["mask_voxels"] == out["inpaint"].info["mask_voxels"]
        assert torch.equal(res.baselines[~support], x[~support])
        assert not torch.equal(res.baselines[support], x[support])
    err = {k: float((r.baselines - twin).abs()[lesion].mean()) for k, r in out.items()}
    # the blur keeps much of the lesion's brightness; the flat fills remove it
    assert err["inpaint"] < err["vae"] < err["blur"]
    # a blur ablation generated on its own finds the same mask
    alone = MaskedBlurBaseline(inpainter).generate(x, _ctx())
    assert torch.equal(alone.baselines, out["blur"].baselines)


def test_still_diseased_baselines_are_flagged(
    inpainter: FlatHealthy, study: tuple[torch.Tensor, ...], caplog: pytest.LogCaptureFixture
) -> None:
    x, _, _ = study
    ctx = _ctx(LesionLogit())
    res = InpaintCounterfactualBaseline(inpainter).generate(x, ctx)
    assert res.info["p_disease_input"][0] > 0.8 and res.info["still_diseased"] == [False]
    with caplog.at_level(logging.WARNING, logger="medattr.baselines"):
        blurred = MaskedBlurBaseline(inpainter, sigma_mm=1.0).generate(x, ctx)
    assert blurred.info["still_diseased"] == [True]
    assert "still calls 1 of 1" in caplog.text


def test_given_masks_and_ig_end_to_end(
    inpainter: FlatHealthy, study: tuple[torch.Tensor, ...]
) -> None:
    x, _, lesion = study
    base = InpaintCounterfactualBaseline(inpainter, feather_mm=0.0)
    res = base.from_masks(x, lesion.float(), _ctx(), SP)
    assert torch.equal(res.baselines[~lesion], x[~lesion])
    assert "steps" not in res.info
    # IG puts exactly zero attribution wherever the baseline kept the input
    exp = IntegratedGradients(LesionLogit()).explain(
        x, base, target=1, n_steps=8, additional_forward_args=None
    )
    kept = ~_mask(base, x)  # generated inside IG: the mask it finds (no feather)
    assert exp.extras["baseline"]["mask_voxels"] == [int((~kept).sum())]
    assert float(exp.attributions[kept].abs().max()) == 0.0
    assert float(exp.attributions.sum()) > 0


def test_feather_mask_ramps_over_the_width() -> None:
    m = torch.zeros(1, 1, 9, 9, 9, dtype=torch.bool)
    m[..., 4, 4, 4] = True
    w, s = feather_mask(m, 6.0, SP)
    assert float(w[0, 0, 4, 4, 4]) == 1.0 and float(w[0, 0, 5, 4, 4]) == pytest.approx(0.5)
    assert float(w[0, 0, 6, 4, 4]) == 0.0 and not bool(s[0, 0, 6, 4, 4])
    w0, _ = feather_mask(m, 0.0, SP)
    assert torch.equal(w0.bool(), m)


def test_bad_settings_and_grids(inpainter: FlatHealthy, study: tuple[torch.Tensor, ...]) -> None:
    x, _, _ = study
    with pytest.raises(InputError, match="calibrated at"):
        InpaintCounterfactualBaseline(inpainter).generate(x, BaselineContext(spacing=(1, 1, 1)))
    with pytest.raises(InputError, match="feather_mm"):
        InpaintCounterfactualBaseline(inpainter, feather_mm=-1)
    with pytest.raises(InputError, match="predict"):
        InpaintCounterfactualBaseline(object())
    with pytest.raises(InputError, match="masks must have"):
        InpaintCounterfactualBaseline(inpainter).from_masks(x, torch.zeros(1, 1, 4, 4, 4), None, SP)


def test_the_registry_builds_each_mask_baseline_from_settings(
    inpainter: FlatHealthy, study: tuple[torch.Tensor, ...], tmp_path: Path
) -> None:
    """The four names are registered, declare their settings (the inpainter as an asset) and
    are built by ``create`` from setting values; the inpainter defaults to the model's pair."""
    from medattr import baselines
    from medattr.baselines import BaselineSetup
    from medattr.baselines.counterfactual import VAEGuidedMaskedResidualBaseline
    from medattr.models import ModelSpec

    classes = {
        "inpaint": InpaintCounterfactualBaseline,
        "inpaint-mask-blur": MaskedBlurBaseline,
        "inpaint-mask-vae": MaskedVAEBaseline,
        "vae-guided-residual-masked": VAEGuidedMaskedResidualBaseline,
    }
    assert set(classes) <= set(baselines.names())
    for name, cls in classes.items():
        assert baselines.get(name) is cls
        declared = {s.name: s for s in cls.settings}
        assert declared["inpainter"].asset and "anomaly_threshold" in declared
    assert baselines.BASELINES.settings(["inpaint-mask-blur"])["blur_sigma_mm"].default == 10.0

    class Model:
        spec = ModelSpec(name="medattr-mni-lesion-classifier")

    setup = BaselineSetup(model=Model())
    assert InpaintCounterfactualBaseline.assets({}, setup) == {
        "inpainter": "builtin:mni-inpainter",
        "anomaly_model": "builtin:mni-normative",
    }
    # 'inpainter' selects the inpainter's own score: no maps to depend on
    assert InpaintCounterfactualBaseline.assets({"anomaly_model": "inpainter"}, setup) == {
        "inpainter": "builtin:mni-inpainter"
    }
    Model.spec = ModelSpec(name="other", extra={"paired_inpainter": "mine.ts"})
    assert InpaintCounterfactualBaseline.assets({}, setup) == {"inpainter": "mine.ts"}
    Model.spec = ModelSpec(
        name="other", extra={"paired_inpainter": "mine.ts", "paired_anomaly_model": "m.npz"}
    )
    assert InpaintCounterfactualBaseline.assets({}, setup) == {
        "inpainter": "mine.ts",
        "anomaly_model": "m.npz",
    }
    assert MaskedVAEBaseline.assets({"inpainter": "a.ts", "vae": "v.ts"}, setup) == {
        "inpainter": "a.ts",
        "vae": "v.ts",
        "anomaly_model": "m.npz",
    }
    Model.spec = ModelSpec(name="other")
    with pytest.raises(InputError, match="--inpainter"):
        InpaintCounterfactualBaseline.assets({}, setup)

    # built from setting values with a saved inpainter: the same baseline as by hand
    x, _, _ = study
    path = _export_flat(inpainter, tmp_path / "flat.ts")
    made = baselines.create(
        "inpaint-mask-blur",
        {"inpainter": str(path), "inpaint_feather_mm": 3.0, "blur_sigma_mm": 6.0},
        setup,
    )
    assert isinstance(made, MaskedBlurBaseline)
    assert made.feather_mm == 3.0 and made.sigma_mm == 6.0
    by_hand = MaskedBlurBaseline(inpainter, sigma_mm=6.0, feather_mm=3.0).generate(x, _ctx())
    torch.testing.assert_close(made.generate(x, _ctx()).baselines, by_hand.baselines)


class _FlatModule(torch.nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask > 0.5, self.predict(x, mask), x)

    @torch.jit.export
    def predict(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, 0.5)


def _export_flat(inpainter: FlatHealthy, path: Path) -> Path:
    from medattr.models import ModelSpec, export_torchscript

    spec = ModelSpec(name="flat", extra={"anomaly": inpainter.calibration, "strides": [2]})
    export_torchscript(_FlatModule(), spec, path)
    return path
