"""Percentile-bootstrap confidence intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medattr.errors import InputError
from medattr.metrics import bootstrap_ci


def test_contains_the_mean_and_shrinks_with_more_samples() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal(0.7, 0.1, size=20)
    large = rng.normal(0.7, 0.1, size=2000)
    m_s, lo_s, hi_s = bootstrap_ci(small)
    m_l, lo_l, hi_l = bootstrap_ci(large)
    assert m_s == pytest.approx(small.mean()) and m_l == pytest.approx(large.mean())
    assert lo_s < m_s < hi_s and lo_l < m_l < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # about √100 = 10× narrower


def test_width_matches_normal_theory() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0.0, 2.0, size=400)
    _, lo, hi = bootstrap_ci(values, n_boot=4000)
    expected = 2 * 1.959964 * values.std(ddof=0) / math.sqrt(values.size)
    assert hi - lo == pytest.approx(expected, rel=0.1)
    _, lo90, hi90 = bootstrap_ci(values, n_boot=4000, alpha=0.1)
    assert hi90 - lo90 < hi - lo


def test_seeded_and_accepts_tensors() -> None:
    values = torch.rand(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values.numpy(), seed=3)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values.tolist(), seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    ci = bootstrap_ci(values)
    assert ci.mean == ci[0] and ci.lo == ci[1] and ci.hi == ci[2]


def test_degenerate_cases() -> None:
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    mean, lo, hi = bootstrap_ci([0.25])
    assert mean == 0.25 and math.isnan(lo) and math.isnan(hi)


def test_nan_policy_and_errors() -> None:
    values = [0.1, math.nan, 0.3, 0.5]
    with pytest.raises(InputError, match="1 NaN of 4"):
        bootstrap_ci(values)
    assert bootstrap_ci(values, nan_policy="omit", seed=1) == bootstrap_ci([0.1, 0.3, 0.5], seed=1)
    with pytest.raises(InputError, match="empty"):
        bootstrap_ci([math.nan], nan_policy="omit")
    with pytest.raises(InputError, match="one-dimensional"):
        bootstrap_ci(np.zeros((2, 2)))
    with pytest.raises(InputError, match="alpha"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(InputError, match="n_boot"):
        bootstrap_ci([1.0, 2.0], n_boot=0)
    with pytest.raises(InputError, match="infinite"):
        bootstrap_ci([1.0, math.inf])
    with pytest.raises(InputError, match="nan_policy must be one of"):
        bootstrap_ci([1.0, 2.0], nan_policy="drop")
