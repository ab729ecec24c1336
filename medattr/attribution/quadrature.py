"""Quadrature rules on [0, 1] for path integrals.

``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid`` and
``gausslegendre`` are defined exactly as Captum defines them, so attributions agree with
``captum.attr.IntegratedGradients``. Note that Captum's ``riemann_trapezoid`` places ``n`` nodes
on ``linspace(0, 1, n)`` but weights them ``1/n`` (ends ``1/(2n)``), so its weights sum to
``(n - 1) / n`` and a linear model loses completeness by a factor ``(n - 1) / n``. ``trapezoid``
is the composite trapezoidal rule proper (weights ``1/(n-1)``, ends halved), exact for linear
paths; prefer it when you do not need to reproduce Captum numbers.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from medattr.attribution._auto import steps_value
from medattr.options import parse_option
from medattr.registry import Setting

__all__ = ["N_STEPS", "QUADRATURE", "Quadrature", "quadrature"]


class Quadrature(str, Enum):
    """Names of the supported rules (strings are accepted wherever a rule is asked for)."""

    RIEMANN_LEFT = "riemann_left"
    RIEMANN_RIGHT = "riemann_right"
    RIEMANN_MIDDLE = "riemann_middle"
    RIEMANN_TRAPEZOID = "riemann_trapezoid"
    TRAPEZOID = "trapezoid"
    GAUSS_LEGENDRE = "gausslegendre"


QUADRATURE = Setting(
    "quadrature",
    Quadrature.GAUSS_LEGENDRE.value,
    "rule on [0, 1]; riemann_* as Captum defines them",
    choices=tuple(q.value for q in Quadrature),
    param="method",
)


N_STEPS = Setting(
    "n_steps",
    32,
    "path points (quadrature nodes) per input, or 'auto': add points until completeness holds "
    "within --completeness-rtol",
    type=steps_value,
    minimum=1,
    flag="--steps",
)
"""Setting of the methods that integrate along a path (IG, Split IG, SmoothGrad over IG)."""


def quadrature(method: str | Quadrature, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``alphas`` in [0, 1] (ascending) and weights for ``n_steps`` points.

    Returns
    -------
    alphas, weights
        float64 arrays of length ``n_steps``.

    Examples
    --------
    >>> a, w = quadrature("riemann_middle", 4)
    >>> a.tolist(), w.sum()
    ([0.125, 0.375, 0.625, 0.875], 1.0)
    """
    rule = parse_option(Quadrature, method, "method")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int | np.integer):
        raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
    n = int(n_steps)
    minimum = (
        1
        if rule
        in (
            Quadrature.GAUSS_LEGENDRE,
            Quadrature.RIEMANN_LEFT,
            Quadrature.RIEMANN_RIGHT,
            Quadrature.RIEMANN_MIDDLE,
        )
        else 2
    )
    if n < minimum:
        raise ValueError(f"n_steps must be >= {minimum} for {rule.value}, got {n}")
    if rule is Quadrature.GAUSS_LEGENDRE:
        x, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + x), 0.5 * w
    if rule is Quadrature.TRAPEZOID:
        alphas = np.linspace(0.0, 1.0, n)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2.0
        return alphas, weights
    weights = np.full(n, 1.0 / n)
    if rule is Quadrature.RIEMANN_LEFT:
        alphas = np.linspace(0.0, 1.0 - 1.0 / n, n)
    elif rule is Quadrature.RIEMANN_RIGHT:
        alphas = np.linspace(1.0 / n, 1.0, n)
    elif rule is Quadrature.RIEMANN_MIDDLE:
        alphas = np.linspace(1.0 / (2 * n), 1.0 - 1.0 / (2 * n), n)
    else:  # Captum's riemann_trapezoid
        alphas = np.linspace(0.0, 1.0, n)
        weights[[0, -1]] /= 2.0
    return alphas, weights
