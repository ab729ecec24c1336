"""Aggregation over samples: the mean with a percentile-bootstrap confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from typing import NamedTuple

import numpy as np
from torch import Tensor

from medattr.errors import InputError
from medattr.metrics._validation import option

__all__ = ["ConfidenceInterval", "NanPolicy", "bootstrap_ci"]


class NanPolicy(str, Enum):
    """What :func:`bootstrap_ci` does with NaN values (undefined per-sample metrics).

    ``"raise"``: an :class:`~medattr.errors.InputError`; ``"omit"``: drop them first.
    """

    RAISE = "raise"
    OMIT = "omit"


class ConfidenceInterval(NamedTuple):
    """A mean and the bounds of its confidence interval (unpacks as ``mean, lo, hi``)."""

    mean: float
    lo: float
    hi: float


def bootstrap_ci(
    values: Tensor | np.ndarray | Sequence[float],
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
    *,
    nan_policy: str | NanPolicy = "raise",
) -> ConfidenceInterval:
    """Mean of ``values`` and its ``1 − alpha`` percentile-bootstrap confidence interval.

    The samples are resampled with replacement ``n_boot`` times; the bounds are the
    ``alpha/2`` and ``1 − alpha/2`` quantiles of the resampled means (Efron & Tibshirani, "An
    Introduction to the Bootstrap", 1993, ch. 13). For a paired comparison of two methods on
    the same cases, pass the per-case differences.

    Parameters
    ----------
    values
        One value per sample, 1D (e.g. a metric's ``(B,)`` output, concatenated over batches).
    n_boot
        Number of bootstrap resamples.
    seed
        Seeds the resampling (NumPy ``default_rng``): the same inputs give the same interval.
    alpha
        1 − confidence level; 0.05 gives a 95 % interval.
    nan_policy
        ``"raise"`` (default) or ``"omit"`` NaN values (e.g. samples with an empty mask).

    Returns
    -------
    ConfidenceInterval
        ``(mean, lo, hi)`` as floats. With a single value the interval is undefined and both
        bounds are NaN.

    Examples
    --------
    >>> mean, lo, hi = bootstrap_ci([0.9, 0.8, 0.85, 0.95, 0.7], n_boot=1000, seed=1)
    >>> round(mean, 3), lo <= mean <= hi
    (0.84, True)
    """
    policy = option(NanPolicy, nan_policy, "nan_policy")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise InputError(f"n_boot must be a positive int, got {n_boot!r}")
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}")
    if isinstance(values, Tensor):
        arr = values.detach().double().cpu().numpy()
    else:
        arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InputError(
            f"values must be one-dimensional (one value per sample); got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        raise InputError("values contain infinite values; the mean is not meaningful")
    nans = np.isnan(arr)
    if nans.any():
        if policy is NanPolicy.RAISE:
            raise InputError(
                f"values contain {int(nans.sum())} NaN of {arr.size} (undefined per-sample "
                f"metrics); pass nan_policy='omit' to leave them out"
            )
        arr = arr[~nans]
    n = arr.size
    if n == 0:
        raise InputError("values is empty (after omitting NaN): no mean to estimate")
    mean = float(arr.mean())
    if n == 1:
        return ConfidenceInterval(mean, math.nan, math.nan)
    rng = np.random.default_rng(int(seed))
    means = np.empty(n_boot, dtype=np.float64)
    per_chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = arr[idx].mean(axis=1)
    lo, hi = np.quantile(means, [a / 2, 1 - a / 2])
    return ConfidenceInterval(mean, float(lo), float(hi))
