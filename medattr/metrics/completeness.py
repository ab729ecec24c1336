"""Completeness error: how far a path attribution's sum is from the score difference it
should add up to.

Integrated Gradients and the other path methods satisfy completeness,
``Σ_i φ_i = f(x) − f(x')`` (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
Networks", ICML 2017); a numerical method meets it only up to its quadrature error, which
this metric measures. Large relative errors mean too few path steps.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._validation import check_finite, per_sample, plain_tensor

__all__ = ["CompletenessError", "completeness_error"]


def completeness_error(
    attributions: Tensor,
    f_input: Tensor | float | Sequence[float],
    f_baseline: Tensor | float | Sequence[float],
    *,
    relative: bool = False,
) -> Tensor:
    r"""Absolute (or relative) completeness error of each sample.

    .. math:: e = \Bigl|\sum_i \phi_i - \bigl(f(x) - f(x')\bigr)\Bigr|, \qquad
              e_{\mathrm{rel}} = \frac{e}{|f(x) - f(x')|}

    Parameters
    ----------
    attributions
        ``(B, ...)``: every element after the batch axis is summed (channels included).
    f_input, f_baseline
        Target score at the inputs and at the baselines: numbers or ``(B,)`` tensors (for
        Expected Gradients, ``f_baseline`` is the mean score over the references). Get them with
        :func:`medattr.metrics.target_scores`, or from an :class:`~medattr.attribution.Explanation`
        (``f_input``, ``f_baseline``).
    relative
        Divide by ``|f(x) − f(x')|``. Where ``f(x) = f(x')`` the relative error is undefined:
        ``inf`` if the sum is not 0, NaN if it is.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64 (the sum is taken in float64), on the attributions' device.

    Examples
    --------
    >>> import torch
    >>> phi = torch.full((2, 1, 2, 2, 2), 0.25)  # each sums to 2
    >>> completeness_error(phi, torch.tensor([3.0, 2.5]), torch.tensor([1.0, 0.0]))
    tensor([0.0000, 0.5000], dtype=torch.float64)
    >>> completeness_error(phi, torch.tensor([3.0, 2.5]), 0.0, relative=True)
    tensor([0.3333, 0.2000], dtype=torch.float64)
    """
    phi = plain_tensor(attributions, "attributions")
    if phi.dim() < 1 or phi.shape[0] == 0:
        raise InputError(f"attributions must have a batch axis first; got shape {tuple(phi.shape)}")
    check_finite(phi, "attributions")
    batch = phi.shape[0]
    fx = per_sample(f_input, batch, "f_input", phi.device)
    fb = per_sample(f_baseline, batch, "f_baseline", phi.device)
    total = phi.reshape(batch, -1).double().sum(1)
    diff = fx - fb
    error = (total - diff).abs()
    if not relative:
        return error
    return error / diff.abs()


class CompletenessError:
    """Settings-first form of :func:`completeness_error` (for bundle configs).

    Examples
    --------
    >>> import torch
    >>> CompletenessError(relative=True)(torch.ones(1, 4), 5.0, 1.0)
    tensor([0.], dtype=torch.float64)
    """

    def __init__(self, relative: bool = False) -> None:
        self.relative = bool(relative)

    def __call__(
        self,
        attributions: Tensor,
        f_input: Tensor | float | Sequence[float],
        f_baseline: Tensor | float | Sequence[float],
    ) -> Tensor:
        return completeness_error(attributions, f_input, f_baseline, relative=self.relative)
