"""Operating points and per-category sensitivity of a classifier's predictions."""

from __future__ import annotations

import numpy as np
import pytest

from medattr.training.evaluation import (
    category_sensitivity,
    operating_point_metrics,
    youden_threshold,
)


def test_youden_threshold_separates_separable_scores():
    t = youden_threshold([0.1, 0.3, 0.35, 0.8, 0.9], [0, 0, 1, 1, 1])
    assert 0.3 < t <= 0.35
    m = operating_point_metrics([0.1, 0.3, 0.35, 0.8, 0.9], [0, 0, 1, 1, 1], t)
    assert m["sensitivity"] == 1.0 and m["specificity"] == 1.0 and m["accuracy"] == 1.0


def test_youden_threshold_maximises_j_on_overlapping_scores():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    p = np.concatenate([rng.normal(0.3, 0.1, 200), rng.normal(0.5, 0.1, 200)])
    t = youden_threshold(p, y)
    best = max(
        operating_point_metrics(p, y, c)["sensitivity"]
        + operating_point_metrics(p, y, c)["specificity"]
        for c in np.linspace(0, 1, 201)
    )
    m = operating_point_metrics(p, y, t)
    assert m["sensitivity"] + m["specificity"] >= best - 1e-12
    assert 0.3 < t < 0.5  # between the two class means


def test_operating_point_counts():
    m = operating_point_metrics([0.2, 0.6, 0.7, 0.4], [0, 0, 1, 1], 0.5)
    assert (m["false_positives"], m["false_negatives"]) == (1, 1)
    assert (m["n_lesion"], m["n_healthy"]) == (2, 2)
    assert m["sensitivity"] == 0.5 and m["specificity"] == 0.5


def test_category_sensitivity_counts_lesion_studies_per_value():
    probs = [0.9, 0.2, 0.7, 0.6, 0.1, 0.95]
    labels = [1, 1, 1, 1, 0, 0]
    cats = {
        "location": ["deep", "deep", "cortical", "cortical", "", ""],
        "shape": ["round", "round", "round", "elongated", "", ""],
    }
    out = category_sensitivity(probs, labels, cats, 0.65)
    assert out["location"] == {
        "cortical": {"n": 2, "detected": 1, "sensitivity": 0.5},
        "deep": {"n": 2, "detected": 1, "sensitivity": 0.5},
    }
    assert out["shape"]["round"] == {"n": 3, "detected": 2, "sensitivity": pytest.approx(2 / 3)}
    assert out["shape"]["elongated"]["sensitivity"] == 0.0
    assert "" not in out["location"]  # healthy studies have no category


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: youden_threshold([0.1, 0.2], [1, 1]), "both classes"),
        (lambda: youden_threshold([0.1, 0.2], [0, 2]), "labels"),
        (lambda: operating_point_metrics([0.1], [0, 1], 0.5), "same length"),
        (lambda: category_sensitivity([0.1, 0.2], [0, 1], {"a": ["x"]}, 0.5), "one value"),
    ],
)
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
