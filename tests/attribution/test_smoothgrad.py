from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import NoiseTunnel as CaptumNT
from captum.attr import Saliency as CaptumSaliency

from medattr import IntegratedGradients, NoiseTunnel, Saliency, SmoothGrad
from medattr.attribution.smoothgrad import draw_noise
from tests.conftest import LinearModel


def test_linear_model_gradient_is_noise_free(volume_batch: torch.Tensor) -> None:
    model = LinearModel((1, 8, 8, 8))
    sg = SmoothGrad(model)
    w = model.weight[0].view(1, 8, 8, 8)
    mean = sg.attribute(volume_batch, target=0, nt_samples=6, noise_level=0.3)
    torch.testing.assert_close(mean, w.expand_as(volume_batch).detach(), rtol=1e-5, atol=1e-6)
    var = sg.attribute(volume_batch, target=0, nt_samples=6, noise_level=0.3, nt_type="vargrad")
    assert var.abs().max() < 1e-5
    sq = sg.attribute(
        volume_batch, target=0, nt_samples=6, noise_level=0.3, nt_type="smoothgrad_sq"
    )
    torch.testing.assert_close(sq, (w * w).expand_as(volume_batch).detach(), rtol=1e-5, atol=1e-6)


def test_quadratic_model_matches_the_drawn_noise() -> None:
    # f(x) = sum x^2 -> grad = 2 (x + eps): SmoothGrad is 2 (x + mean eps), VarGrad is 4 var(eps)
    x = torch.rand(2, 1, 3, 3, 3)

    def f(z: torch.Tensor) -> torch.Tensor:
        return (z * z).flatten(1).sum(1)

    n, sigma, seed = 5, 0.2, 11
    eps = torch.stack(
        [
            torch.stack([draw_noise(x.shape[1:], sigma, seed, i, j) for j in range(n)])
            for i in range(2)
        ]
    )
    sg = SmoothGrad(f).explain(x, None, nt_samples=n, stdevs=sigma, seed=seed)
    torch.testing.assert_close(sg.attributions, 2 * (x + eps.mean(1)), rtol=1e-5, atol=1e-6)
    vg = SmoothGrad(f).attribute(x, None, nt_samples=n, stdevs=sigma, seed=seed, nt_type="vargrad")
    torch.testing.assert_close(vg, 4 * eps.var(1, unbiased=False), rtol=1e-4, atol=1e-6)


def test_noise_conventions_absolute_and_fraction_agree() -> None:
    x = torch.zeros(1, 1, 4, 4, 4)
    x[0, 0, 0, 0, 0] = 2.0  # range = 2
    f = lambda z: (z**3).flatten(1).sum(1)  # noqa: E731
    a = SmoothGrad(f).attribute(x, None, nt_samples=4, stdevs=0.5, seed=3)
    b = SmoothGrad(f).attribute(x, None, nt_samples=4, noise_level=0.25, seed=3)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="exactly one"):
        SmoothGrad(f).attribute(x, None, stdevs=0.5, noise_level=0.1)
    with pytest.raises(ValueError, match="exactly one"):
        SmoothGrad(f).attribute(x, None)


def test_reproducible_and_independent_of_grouping(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    sg = SmoothGrad(relu_net, "integrated_gradients")
    kw = {"target": 1, "nt_samples": 5, "noise_level": 0.1, "seed": 7, "n_steps": 6}
    a = sg.explain(volume_batch, **kw, nt_samples_batch_size=10)
    b = sg.explain(volume_batch, **kw, nt_samples_batch_size=3)
    c = sg.explain(volume_batch, **{**kw, "seed": 8})
    torch.testing.assert_close(a.attributions, b.attributions, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(a.attributions, c.attributions)
    # SmoothGrad over IG: the mean attribution is complete against the mean noisy output
    assert a.convergence_delta.abs().max() < 0.05 * (a.f_input - a.f_baseline).abs().max()
    assert a.extras["draw_deltas"].shape == (10,)


def _captum_with_our_noise(
    monkeypatch: pytest.MonkeyPatch, x: torch.Tensor, n: int, sigma: float, seed: int
) -> None:
    noise = torch.stack(
        [draw_noise(x.shape[1:], sigma, seed, i, j) for i in range(x.shape[0]) for j in range(n)]
    )

    def fake_normal(mean: float, std: torch.Tensor, *a: object, **k: object) -> torch.Tensor:
        assert std.shape == noise.shape
        return noise.clone()

    monkeypatch.setattr(torch, "normal", fake_normal)


@pytest.mark.parametrize("nt_type", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_agrees_with_captum_given_the_same_noise(
    nt_type: str,
    monkeypatch: pytest.MonkeyPatch,
    relu_net: torch.nn.Module,
    volume_batch: torch.Tensor,
) -> None:
    n, sigma, seed = 4, 0.15, 5
    base = torch.rand_like(volume_batch) * 0.2
    ours_ig = NoiseTunnel(IntegratedGradients(relu_net)).attribute(
        volume_batch,
        nt_type=nt_type,
        nt_samples=n,
        stdevs=sigma,
        seed=seed,
        baselines=base,
        target=1,
        n_steps=8,
    )
    ours_sal = NoiseTunnel(Saliency(relu_net)).attribute(
        volume_batch, nt_type=nt_type, nt_samples=n, stdevs=sigma, seed=seed, target=0
    )
    _captum_with_our_noise(monkeypatch, volume_batch, n, sigma, seed)
    ref_ig = CaptumNT(CaptumIG(relu_net)).attribute(
        volume_batch,
        nt_type=nt_type,
        nt_samples=n,
        stdevs=sigma,
        baselines=base,
        target=1,
        n_steps=8,
    )
    ref_sal = CaptumNT(CaptumSaliency(relu_net)).attribute(
        volume_batch, nt_type=nt_type, nt_samples=n, stdevs=sigma, target=0
    )
    for ours, ref in ((ours_ig, ref_ig), (ours_sal, ref_sal)):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_saliency_agrees_with_captum(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    for absolute in (True, False):
        ours = Saliency(relu_net).attribute(volume_batch, target=1, abs=absolute)
        ref = CaptumSaliency(relu_net).attribute(volume_batch, target=1, abs=absolute)
        torch.testing.assert_close(ours, ref)


def test_bad_arguments(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"nt_type must be one of"):
        SmoothGrad(relu_net).attribute(volume_batch, 0, nt_type="smooth", stdevs=0.1)
    with pytest.raises(ValueError, match="nt_samples"):
        SmoothGrad(relu_net).attribute(volume_batch, 0, nt_samples=0, stdevs=0.1)
    with pytest.raises(ValueError, match="baselines are only used"):
        SmoothGrad(relu_net).explain(volume_batch, 0, stdevs=0.1, baselines=0.0)
    with pytest.raises(ValueError, match="stdevs"):
        SmoothGrad(relu_net).attribute(volume_batch, 0, stdevs=[0.1, 0.2, 0.3])
