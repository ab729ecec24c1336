"""One path's adaptive mesh: nested Lobatto panels on [0, 1], refined by bisection.

Pure bookkeeping (floats and indices, no tensors): which nodes exist, the value of
``h(alpha) = df/dalpha`` and of ``f`` at each, the panels and their completeness errors, and
the final quadrature weights. :mod:`medattr.attribution.adaptive` evaluates the nodes.

A panel ``[a, b]`` carries a closed rule whose nodes include both ends: the 2-point Lobatto rule
(trapezoid: nodes ``a, b``) or the 3-point one (Simpson: ``a, m, b``). Bisection keeps every
node of the parent (its ends and, for Simpson, its midpoint become ends of the children) and
adds one node (trapezoid) or two (Simpson): the rules are nested, no evaluation is discarded,
and ``f`` at every panel end comes with that node's gradient (no extra forward pass).
"""

from __future__ import annotations

import math
from enum import Enum

__all__ = ["PRECISION_FACTOR", "AdaptiveRule", "PathMesh"]

PRECISION_FACTOR = 8.0
"""The completeness check cannot resolve errors below this many float32 epsilons of the
attribution's L1 norm plus ``|f|`` at both ends (measured rounding of ``sum(phi)``: below 0.3
epsilon of the L1 norm on the test networks and DenseNet121; of ``f``: about 2 epsilon)."""


class AdaptiveRule(str, Enum):
    """Panel rule of the adaptive quadrature."""

    TRAPEZOID = "trapezoid"
    """2-point Lobatto (trapezoid) panels: one new node per bisection. Default: along the
    rough paths of piecewise-linear networks it reaches 1 % with the fewest evaluations."""
    SIMPSON = "simpson"
    """3-point Lobatto (Simpson) panels: two new nodes per bisection, higher order (better for
    smooth paths and tight tolerances)."""

    @property
    def new_nodes_per_split(self) -> int:
        return 1 if self is AdaptiveRule.TRAPEZOID else 2

    def initial_nodes(self, panels: int) -> int:
        return panels + 1 if self is AdaptiveRule.TRAPEZOID else 2 * panels + 1


class PathMesh:
    """Nodes and panels of one path.

    Parameters
    ----------
    rule
        The panel rule.
    panels
        Number of equal panels to start with.
    """

    def __init__(self, rule: AdaptiveRule, panels: int) -> None:
        self.rule = rule
        per = 1 if rule is AdaptiveRule.TRAPEZOID else 2
        n = per * panels
        self.alpha: list[float] = [i / n for i in range(n + 1)]
        self.h: list[float] = [math.nan] * (n + 1)
        self.f: list[float] = [math.nan] * (n + 1)
        self.l1: list[float] = [math.nan] * (n + 1)
        self.panels: list[tuple[int, ...]] = [
            tuple(range(per * k, per * k + per + 1)) for k in range(panels)
        ]
        self.pending: list[int] = list(range(n + 1))
        self.f_start: float | None = None
        self.f_end: float | None = None
        self.end = n  # node index of alpha = 1

    # ----------------------------------------------------------------- values
    def set_values(self, h: list[float], f: list[float], l1: list[float]) -> None:
        """``h``, ``f`` and the L1 norm of the contribution at the pending nodes, in the order
        of :attr:`pending`."""
        for i, hv, fv, lv in zip(self.pending, h, f, l1, strict=True):
            self.h[i] = float(hv)
            self.f[i] = float(fv)
            self.l1[i] = float(lv)
        self.pending = []

    def value(self, i: int) -> float:
        """``f`` at node ``i``; the ends take the caller's values when given."""
        if i == 0 and self.f_start is not None:
            return self.f_start
        if i == self.end and self.f_end is not None:
            return self.f_end
        return self.f[i]

    # ------------------------------------------------------------------ rules
    def _panel_weights(self, panel: tuple[int, ...]) -> list[float]:
        width = self.alpha[panel[-1]] - self.alpha[panel[0]]
        if len(panel) == 2:
            return [width / 2.0, width / 2.0]
        return [width / 6.0, 4.0 * width / 6.0, width / 6.0]

    def panel_error(self, panel: tuple[int, ...]) -> float:
        """Quadrature of ``h`` over the panel minus ``f(b) - f(a)`` (local completeness)."""
        q = sum(w * self.h[i] for w, i in zip(self._panel_weights(panel), panel, strict=True))
        return q - (self.value(panel[-1]) - self.value(panel[0]))

    def weights(self, lo: float = 0.0, hi: float = 1.0) -> list[float]:
        """Final weight of every node, counting only panels inside ``[lo, hi]``."""
        w = [0.0] * len(self.alpha)
        for p in self.panels:
            if self.alpha[p[0]] >= lo and self.alpha[p[-1]] <= hi:
                for i, v in zip(p, self._panel_weights(p), strict=True):
                    w[i] += v
        return w

    def integral(self, weights: list[float] | None = None) -> float:
        """``sum_j w_j h_j`` (the sum of the attributions, before float32 rounding)."""
        w = self.weights() if weights is None else weights
        return math.fsum(wi * hi for wi, hi in zip(w, self.h, strict=True) if wi != 0.0)

    def span(self) -> float:
        """``f(x) - f(x')`` for this path."""
        return self.value(self.end) - self.value(0)

    def precision(self) -> float:
        """The smallest completeness error float32 arithmetic can resolve on this path."""
        w = self.weights()
        l1 = math.fsum(wi * li for wi, li in zip(w, self.l1, strict=True) if wi != 0.0)
        eps = 2.0**-23
        return PRECISION_FACTOR * eps * (l1 + abs(self.value(self.end)) + abs(self.value(0)))

    def local_error(self) -> float:
        """``sum |panel error|``: what the path's error would be if no panel's error cancelled
        another's."""
        return math.fsum(abs(self.panel_error(p)) for p in self.panels)

    def error(self) -> float:
        """``sum_j w_j h_j - (f(1) - f(0))``: the path's completeness error."""
        return self.integral() - self.span()

    # ------------------------------------------------------------- refinement
    def refine(self, count: int) -> list[float]:
        """Bisect the ``count`` panels with the largest absolute error (ties: leftmost first).

        Returns the alphas of the new nodes (now pending, in :attr:`pending` order).
        """
        errors = [abs(self.panel_error(p)) for p in self.panels]
        order = sorted(range(len(self.panels)), key=lambda k: (-errors[k], k))
        chosen = set(order[: max(0, count)])
        new_panels: list[tuple[int, ...]] = []
        for k, p in enumerate(self.panels):
            if k not in chosen:
                new_panels.append(p)
                continue
            if len(p) == 2:
                m = self._add((self.alpha[p[0]] + self.alpha[p[1]]) / 2.0)
                new_panels += [(p[0], m), (m, p[1])]
            else:
                q1 = self._add((self.alpha[p[0]] + self.alpha[p[1]]) / 2.0)
                q3 = self._add((self.alpha[p[1]] + self.alpha[p[2]]) / 2.0)
                new_panels += [(p[0], q1, p[1]), (p[1], q3, p[2])]
        self.panels = new_panels
        return [self.alpha[i] for i in self.pending]

    def _add(self, alpha: float) -> int:
        self.alpha.append(alpha)
        self.h.append(math.nan)
        self.f.append(math.nan)
        self.l1.append(math.nan)
        self.pending.append(len(self.alpha) - 1)
        return len(self.alpha) - 1

    # ---------------------------------------------------------------- queries
    def order(self) -> list[int]:
        """Node indices sorted by alpha."""
        return sorted(range(len(self.alpha)), key=lambda i: self.alpha[i])

    def panel_ends(self) -> set[int]:
        """Nodes that end a panel (all nodes for trapezoid panels)."""
        return {i for p in self.panels for i in (p[0], p[-1])}
