"""NoiseTunnel wraps any path method: the mean over noisy copies, drawn as SmoothGrad draws."""

from __future__ import annotations

import torch

from medattr import NoiseTunnel, SplitIntegratedGradients
from medattr.attribution import draw_noise


def test_noise_tunnel_over_split_ig_is_the_mean_over_the_draws(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    sig = SplitIntegratedGradients(relu_net)
    base = torch.zeros_like(volume_batch)
    nt = NoiseTunnel(sig)
    attr, deltas = nt.attribute(
        volume_batch,
        nt_samples=3,
        stdevs=0.05,
        baselines=base,
        target=1,
        n_steps=6,
        return_convergence_delta=True,
        seed=7,
    )
    expected = torch.zeros_like(volume_batch)
    for i in range(volume_batch.shape[0]):
        for j in range(3):
            noisy = volume_batch[i : i + 1] + draw_noise(volume_batch.shape[1:], 0.05, 7, i, j)
            expected[i] += sig.attribute(noisy, base[i : i + 1], 1, n_steps=6)[0] / 3
    torch.testing.assert_close(attr, expected, rtol=1e-4, atol=1e-6)
    assert deltas.shape == (6,)  # one completeness delta per noisy copy


def test_vargrad_over_split_ig_is_non_negative(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    nt = NoiseTunnel(SplitIntegratedGradients(relu_net))
    var = nt.attribute(volume_batch, nt_type="vargrad", nt_samples=4, stdevs=0.1, target=0)
    assert var.shape == volume_batch.shape and bool((var >= -1e-7).all())
