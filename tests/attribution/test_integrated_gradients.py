from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG

from medattr import GaussianBlurBaseline, IntegratedGradients, ModelError, TargetError
from medattr.attribution.quadrature import Quadrature
from tests.conftest import LinearModel, SmallConvNet

EXACT_RULES = ["riemann_left", "riemann_right", "riemann_middle", "gausslegendre", "trapezoid"]


@pytest.mark.parametrize("rule", EXACT_RULES)
@pytest.mark.parametrize("n_steps", [2, 5, 33])
def test_linear_model_is_exactly_complete(
    rule: str, n_steps: int, volume_batch: torch.Tensor
) -> None:
    model = LinearModel((1, 8, 8, 8))
    base = torch.rand_like(volume_batch)
    exp = IntegratedGradients(model).explain(
        volume_batch, base, target=1, n_steps=n_steps, method=rule
    )
    expected = model.weight[1].view(1, 1, 8, 8, 8) * (volume_batch - base)
    torch.testing.assert_close(exp.attributions, expected, rtol=1e-5, atol=1e-6)
    assert exp.convergence_delta.abs().max() < 1e-4


def test_captum_riemann_trapezoid_loses_one_over_n(volume_batch: torch.Tensor) -> None:
    # Captum's rule weights n nodes by 1/n with halved ends: the sum of weights is (n-1)/n.
    model = LinearModel((1, 8, 8, 8))
    n = 10
    exp = IntegratedGradients(model).explain(
        volume_batch, 0.0, target=0, n_steps=n, method="riemann_trapezoid"
    )
    span = exp.f_input - exp.f_baseline
    torch.testing.assert_close(
        exp.attributions.flatten(1).double().sum(1), span * (n - 1) / n, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_delta_shrinks_with_more_steps(act: str, volume_batch: torch.Tensor) -> None:
    model = SmallConvNet(act).eval()
    ig = IntegratedGradients(model)
    deltas = [
        ig.explain(volume_batch, target=1, n_steps=n, method="riemann_right")
        .convergence_delta.abs()
        .max()
        .item()
        for n in (2, 8, 64)
    ]
    assert deltas[0] > deltas[1] > deltas[2]
    assert deltas[2] < 0.05 * deltas[0]


def test_sensitivity_single_differing_voxel(relu_net: torch.nn.Module) -> None:
    # a model that depends on voxel v, with input and baseline differing only at v:
    # the attribution is non-zero at v and exactly zero elsewhere
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0, 21] = 3.0
    x = torch.zeros(1, 1, 4, 4, 4)
    x.view(-1)[21] = 2.0
    attr = IntegratedGradients(model).attribute(x, 0.0, n_steps=4)
    assert attr.view(-1)[21].item() == pytest.approx(6.0)
    assert torch.count_nonzero(attr) == 1


def test_voxels_equal_to_baseline_get_zero(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = volume_batch.clone()
    base[..., :4] = 0.0
    attr = IntegratedGradients(relu_net).attribute(volume_batch, base, target=0, n_steps=8)
    assert torch.all(attr[..., 4:] == 0)
    assert torch.count_nonzero(attr[..., :4]) > 0


def test_implementation_invariance(volume_batch: torch.Tensor) -> None:
    # two functionally equal networks: one linear layer vs. the same map factored in two layers
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(512, 3))
    factored = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(512, 512, bias=False), torch.nn.Linear(512, 3)
    )
    with torch.no_grad():
        factored[1].weight.copy_(torch.eye(512) * 2.0)
        factored[2].weight.copy_(lin[1].weight / 2.0)
        factored[2].bias.copy_(lin[1].bias)
    x = volume_batch
    torch.testing.assert_close(lin(x), factored(x), rtol=1e-5, atol=1e-5)
    a1 = IntegratedGradients(lin).attribute(x, target=2, n_steps=16)
    a2 = IntegratedGradients(factored).attribute(x, target=2, n_steps=16)
    torch.testing.assert_close(a1, a2, rtol=1e-4, atol=1e-6)


def test_relu_nets_equal_as_functions_have_equal_attributions(volume_batch: torch.Tensor) -> None:
    # relu(x) and relu(relu(x)) compute the same function through different graphs
    net1 = SmallConvNet("relu", seed=5).eval()

    class Doubled(torch.nn.Module):
        def __init__(self, inner: SmallConvNet) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            i = self.inner
            h = torch.relu(torch.relu(i.conv1(x)))
            h = torch.relu(torch.relu(i.conv2(h)))
            return i.head(h.mean(dim=(2, 3, 4)))

    net2 = Doubled(net1).eval()
    a1 = IntegratedGradients(net1).attribute(volume_batch, target=0, n_steps=12)
    a2 = IntegratedGradients(net2).attribute(volume_batch, target=0, n_steps=12)
    torch.testing.assert_close(a1, a2)


def test_linearity_in_the_model(volume_batch: torch.Tensor) -> None:
    f1, f2 = SmallConvNet("relu", seed=1).eval(), SmallConvNet("sigmoid", seed=2).eval()

    def combo(x: torch.Tensor) -> torch.Tensor:
        return 2.0 * f1(x) - 0.5 * f2(x)

    kw = {"target": 1, "n_steps": 10}
    a = IntegratedGradients(combo).attribute(volume_batch, **kw)
    b = 2.0 * IntegratedGradients(f1).attribute(volume_batch, **kw) - 0.5 * IntegratedGradients(
        f2
    ).attribute(volume_batch, **kw)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("rule", [q.value for q in Quadrature if q is not Quadrature.TRAPEZOID])
def test_agrees_with_captum(
    rule: str, relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    base = torch.rand_like(volume_batch) * 0.1
    targets = [0, 1]
    ours, d1 = IntegratedGradients(relu_net).attribute(
        volume_batch, base, targets, n_steps=20, method=rule, return_convergence_delta=True
    )
    ref, d2 = CaptumIG(relu_net).attribute(
        volume_batch, base, targets, n_steps=20, method=rule, return_convergence_delta=True
    )
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    torch.testing.assert_close(d1, d2, rtol=1e-3, atol=1e-6)


def test_agrees_with_captum_with_additional_args_and_multiply_off(
    volume_batch: torch.Tensor,
) -> None:
    net = SmallConvNet("sigmoid", seed=4).eval()

    def fwd(x: torch.Tensor, scale: torch.Tensor, shift: float) -> torch.Tensor:
        return net(x) * scale[:, None] + shift

    scale = torch.tensor([1.0, -2.0])
    for mbi in (True, False):
        ours = IntegratedGradients(fwd, multiply_by_inputs=mbi).attribute(
            volume_batch, target=1, additional_forward_args=(scale, 0.5), n_steps=7
        )
        ref = CaptumIG(fwd, multiply_by_inputs=mbi).attribute(
            volume_batch, target=1, additional_forward_args=(scale, 0.5), n_steps=7
        )
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


@pytest.mark.parametrize("ibs", [1, 3, 17, "auto", 1000])
def test_chunk_size_invariance(
    ibs: int | str, relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    ig = IntegratedGradients(relu_net)
    ref = ig.explain(volume_batch, target=1, n_steps=24, internal_batch_size=48)
    exp = ig.explain(volume_batch, target=1, n_steps=24, internal_batch_size=ibs)
    torch.testing.assert_close(exp.attributions, ref.attributions, rtol=1e-5, atol=1e-8)
    assert sum(exp.chunk_sizes) == 48
    if isinstance(ibs, int):
        assert max(exp.chunk_sizes) == min(ibs, 48)


def test_tuple_inputs_and_2d_inputs() -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )
    x = torch.rand(3, 1, 6, 6)
    model(x)
    (attr,) = IntegratedGradients(model).attribute((x,), target=0, n_steps=5)
    assert attr.shape == x.shape
    with pytest.raises(TypeError, match="one input tensor"):
        IntegratedGradients(model).attribute((x, x), target=0)


def test_bf16_autocast_accumulates_float32(
    relu_net: torch.nn.Module, volume_batch: torch.Tensor
) -> None:
    fp32 = IntegratedGradients(relu_net).explain(volume_batch, target=1, n_steps=16)
    bf16 = IntegratedGradients(relu_net, amp="bf16").explain(volume_batch, target=1, n_steps=16)
    assert bf16.attributions.dtype == torch.float32
    assert bf16.settings["amp"] == "bf16"
    span = (fp32.f_input - fp32.f_baseline).abs()
    # bf16 has ~3 significant digits: the sums agree to a few percent of the output change
    assert torch.all(
        (
            bf16.attributions.flatten(1).sum(1).double()
            - fp32.attributions.flatten(1).sum(1).double()
        ).abs()
        < 0.05 * span + 1e-3
    )


def test_metatensor_spacing_reaches_blur_baseline() -> None:
    from monai.data import MetaTensor

    model = LinearModel((1, 8, 8, 8))
    x = torch.rand(1, 1, 8, 8, 8)
    mt = MetaTensor(x, affine=torch.diag(torch.tensor([2.0, 2.0, 4.0, 1.0])))
    exp = IntegratedGradients(model).explain(
        mt, GaussianBlurBaseline(sigma_mm=4.0), target=0, n_steps=4
    )
    explicit = GaussianBlurBaseline(sigma_mm=4.0)(
        x, __import__("medattr").baselines.BaselineContext(spacing=(2, 2, 4))
    )
    torch.testing.assert_close(exp.baselines, explicit)
    with pytest.raises(ValueError, match="spacing"):
        IntegratedGradients(model).explain(x, GaussianBlurBaseline(sigma_mm=4.0), target=0)


def test_bad_arguments(relu_net: torch.nn.Module, volume_batch: torch.Tensor) -> None:
    ig = IntegratedGradients(relu_net)
    with pytest.raises(ValueError, match="n_steps"):
        ig.attribute(volume_batch, target=0, n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        ig.attribute(volume_batch, target=0, method="simpson")
    with pytest.raises(ValueError, match="internal_batch_size"):
        ig.attribute(volume_batch, target=0, internal_batch_size=0)
    with pytest.raises(TargetError, match="out of range"):
        ig.attribute(volume_batch, target=5)
    with pytest.raises(TargetError, match="one scalar per sample"):
        ig.attribute(volume_batch, target=None)
    with pytest.raises(ValueError, match="cannot be broadcast"):
        ig.attribute(volume_batch, torch.zeros(3, 1, 8, 8, 8), target=0)

    def wrong_batch(x: torch.Tensor) -> torch.Tensor:
        return relu_net(x)[:1]

    with pytest.raises(ModelError, match="batch size"):
        IntegratedGradients(wrong_batch).attribute(volume_batch, target=0)
