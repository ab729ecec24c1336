"""Robustness of an explanation to small input changes: max-sensitivity.

Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity of
Explanations", NeurIPS 2019, define

    SENS_MAX(Φ, f, x, r) = max_{‖δ‖∞ ≤ r} ‖Φ(f, x + δ) − Φ(f, x)‖

and estimate the maximum by Monte-Carlo sampling of δ. Here the change is divided by
``‖Φ(f, x)‖`` by default, so values are comparable across inputs and methods whose maps have
different scales (set ``normalize=False`` for the paper's unnormalised form).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from typing import Any

import torch
from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._validation import option, plain_tensor

__all__ = ["MaxSensitivity", "SensitivityNorm", "max_sensitivity"]


class SensitivityNorm(str, Enum):
    """Norm of the (flattened, per sample) explanation change: ``"l2"`` or ``"linf"``."""

    L2 = "l2"
    LINF = "linf"

    def of(self, t: Tensor) -> Tensor:
        flat = t.flatten(1).double()
        if self is SensitivityNorm.L2:
            return torch.linalg.vector_norm(flat, ord=2, dim=1)
        return flat.abs().amax(dim=1)


def _attributions(result: Any, like: Tensor, name: str) -> Tensor:
    """Accept a tensor or an object with ``.attributions`` (an Explanation); check the shape."""
    if not isinstance(result, Tensor) and hasattr(result, "attributions"):
        result = result.attributions
    if isinstance(result, tuple) and len(result) == 1:
        result = result[0]
    phi = plain_tensor(result, name)
    if phi.dim() == 0 or phi.shape[0] != like.shape[0]:
        raise InputError(
            f"{name} must have the batch size {like.shape[0]} first; got shape {tuple(phi.shape)}"
        )
    return phi.detach()


def max_sensitivity(
    explain_fn: Callable[[Tensor], Any],
    inputs: Tensor,
    *,
    radius: float = 0.02,
    n_samples: int = 10,
    seed: int = 0,
    norm: str | SensitivityNorm = "l2",
    normalize: bool = True,
    explanation: Tensor | None = None,
) -> Tensor:
    r"""Largest relative change of the explanation over random perturbations in an L∞ ball.

    .. math::

        \max_{j \le n} \frac{\lVert \Phi(x + \delta_j) - \Phi(x) \rVert}
        {\lVert \Phi(x) \rVert}, \qquad \delta_j \sim \mathcal{U}[-r, r]^d

    (Yeh et al., NeurIPS 2019). Lower is more robust; 0 means the explanation did not change.
    A Monte-Carlo estimate: it is a lower bound of the true maximum that grows with
    ``n_samples``.

    Parameters
    ----------
    explain_fn
        ``explain_fn(x) -> Φ(x)`` for a batch ``(B, C, *spatial)``: a tensor with the batch first,
        a 1-tuple of one, or an object with ``.attributions`` (an
        :class:`~medattr.attribution.Explanation`). Typically a closure around an attribution
        method with its baseline and target fixed. A randomised method (SmoothGrad, Expected
        Gradients) adds its own variability to the result; fix its seed to measure the input
        sensitivity alone.
    inputs
        ``(B, C, *spatial)``; never modified.
    radius
        Half-width ``r`` of the L∞ ball, in the units of the model input (absolute, not a
        fraction of the intensity range); each element of δ is uniform in ``[-r, r]``.
    n_samples
        Number of perturbations (``explain_fn`` is called once per perturbation, on the whole
        batch).
    seed
        Seeds the perturbations, drawn on the CPU in float32 so that they are the same on every
        device.
    norm
        ``"l2"`` (default, over all elements of a sample) or ``"linf"``.
    normalize
        Divide by ``‖Φ(x)‖`` (default). Where ``Φ(x) = 0`` the relative change is undefined: NaN,
        or 0 if the explanation also stayed 0 under every perturbation.
    explanation
        ``Φ(x)`` if already computed (saves one call).

    Returns
    -------
    Tensor of shape ``(B,)``
        float64, on the explanation's device.

    Examples
    --------
    >>> w = torch.arange(8.0).view(1, 1, 2, 2, 2)
    >>> grad_times_input = lambda x: w * x  # gradient × input of the linear model Σ w·x
    >>> x = torch.ones(1, 1, 2, 2, 2)
    >>> s = max_sensitivity(grad_times_input, x, radius=0.1, n_samples=20)
    >>> bool(0 < s.item() <= 0.1 * w.norm() / (w * x).norm())  # ‖w⊙δ‖ ≤ r‖w‖
    True
    """
    x = plain_tensor(inputs, "inputs")
    if not x.is_floating_point():
        raise InputError(f"inputs must be floating point, got {x.dtype}")
    if x.dim() < 2:
        raise InputError(f"inputs must have shape (B, C, *spatial); got {tuple(x.shape)}")
    r = float(radius)
    if not (math.isfinite(r) and r >= 0):
        raise InputError(f"radius must be a finite number ≥ 0, got {radius!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise InputError(f"n_samples must be a positive int, got {n_samples!r}")
    norm_ = option(SensitivityNorm, norm, "norm")
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be callable, got {type(explain_fn).__name__}")

    base = _attributions(
        explain_fn(x) if explanation is None else explanation,
        x,
        "explanation" if explanation is not None else "explain_fn(inputs)",
    )
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    worst = torch.zeros(x.shape[0], dtype=torch.float64, device=base.device)
    for _ in range(n_samples):
        delta = torch.rand(x.shape, generator=generator, dtype=torch.float32).mul_(2 * r).sub_(r)
        perturbed = x + delta.to(device=x.device, dtype=x.dtype)
        phi = _attributions(explain_fn(perturbed), x, "explain_fn(inputs + delta)")
        if phi.shape != base.shape:
            raise InputError(
                f"explain_fn returned shape {tuple(phi.shape)} for a perturbed input but "
                f"{tuple(base.shape)} for the input"
            )
        change = norm_.of(phi.to(base.device) - base)
        worst = torch.maximum(worst, change)
    if not normalize:
        return worst
    scale = norm_.of(base)
    out = worst / scale
    return torch.where(scale > 0, out, torch.where(worst == 0, 0.0, torch.nan).double())


class MaxSensitivity:
    """Settings-first form of :func:`max_sensitivity` (for bundle configs).

    Examples
    --------
    >>> metric = MaxSensitivity(radius=0.05, n_samples=4)
    >>> metric(lambda x: torch.ones_like(x), torch.rand(2, 1, 4, 4, 4))  # a constant explanation
    tensor([0., 0.], dtype=torch.float64)
    """

    def __init__(
        self,
        radius: float = 0.02,
        n_samples: int = 10,
        seed: int = 0,
        norm: str | SensitivityNorm = "l2",
        normalize: bool = True,
    ) -> None:
        r = float(radius)
        if not (math.isfinite(r) and r >= 0):
            raise InputError(f"radius must be a finite number ≥ 0, got {radius!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise InputError(f"n_samples must be a positive int, got {n_samples!r}")
        self.radius = r
        self.n_samples = n_samples
        self.seed = int(seed)
        self.norm = option(SensitivityNorm, norm, "norm")
        self.normalize = bool(normalize)

    def __call__(
        self, explain_fn: Callable[[Tensor], Any], inputs: Tensor, explanation: Tensor | None = None
    ) -> Tensor:
        return max_sensitivity(
            explain_fn,
            inputs,
            radius=self.radius,
            n_samples=self.n_samples,
            seed=self.seed,
            norm=self.norm,
            normalize=self.normalize,
            explanation=explanation,
        )
