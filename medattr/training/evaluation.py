"""How well a trained classifier detects lesions: AUC, operating points, per-category sensitivity.

Everything here is plain NumPy on per-study probabilities, so the numbers stored with a shipped
model can be recomputed from its predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medattr.errors import InputError

__all__ = ["category_sensitivity", "operating_point_metrics", "youden_threshold"]


def _as_arrays(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise InputError(f"probs and labels must have the same length, got {p.size} and {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise InputError("labels must be 0 (healthy) or 1 (lesion)")
    return p, y.astype(bool)


def youden_threshold(probs: Any, labels: Any) -> float:
    """The probability threshold that maximises sensitivity + specificity (Youden's J).

    A study is called diseased when its probability is ``>=`` the threshold; among equally good
    thresholds the midpoint between neighbouring scores is returned (the middle one of a tie
    run), so the choice does not sit on one validation study's score.

    Examples
    --------
    >>> round(youden_threshold([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]), 6)
    0.45
    """
    p, y = _as_arrays(probs, labels)
    if y.all() or not y.any():
        raise InputError("labels must contain both classes to choose a threshold")
    s = np.unique(p)
    cuts = np.concatenate([[s[0] - 1e-9], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-9]])
    tpr = np.array([(p[y] >= c).mean() for c in cuts])
    tnr = np.array([(p[~y] < c).mean() for c in cuts])
    j = tpr + tnr - 1
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return float(cuts[best[len(best) // 2]])


def operating_point_metrics(probs: Any, labels: Any, threshold: float) -> dict[str, Any]:
    """Sensitivity, specificity and accuracy when ``probs >= threshold`` is called diseased."""
    p, y = _as_arrays(probs, labels)
    call = p >= threshold
    return {
        "threshold": float(threshold),
        "sensitivity": float(call[y].mean()) if y.any() else float("nan"),
        "specificity": float((~call[~y]).mean()) if (~y).any() else float("nan"),
        "accuracy": float((call == y).mean()),
        "n_lesion": int(y.sum()),
        "n_healthy": int((~y).sum()),
        "false_negatives": int((~call[y]).sum()),
        "false_positives": int(call[~y].sum()),
    }


def category_sensitivity(
    probs: Any, labels: Any, categories: Mapping[str, Any], threshold: float
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Sensitivity per value of each lesion category field, at ``threshold``.

    Parameters
    ----------
    probs, labels
        Per-study lesion probability and label (1 = lesion).
    categories
        Field name (``"location"``, ``"shape"`` …) -> per-study value (ignored for healthy
        studies).
    threshold
        A study is called diseased when its probability is ``>=`` it.

    Returns
    -------
    dict
        ``{field: {value: {"n": lesion studies, "detected": called diseased,
        "sensitivity": detected / n}}}``, values sorted by name.

    Examples
    --------
    >>> shapes = {"shape": ["round", "long", ""]}
    >>> out = category_sensitivity([0.9, 0.2, 0.1], [1, 1, 0], shapes, 0.5)
    >>> out["shape"]["round"]["sensitivity"], out["shape"]["long"]["sensitivity"]
    (1.0, 0.0)
    """
    p, y = _as_arrays(probs, labels)
    call = p >= threshold
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for field, values in categories.items():
        v = np.asarray(values).ravel()
        if v.shape != p.shape:
            raise InputError(f"categories[{field!r}] must have one value per study")
        rows: dict[str, dict[str, float | int]] = {}
        for value in sorted({str(x) for x in v[y]}):
            sel = y & (v.astype(str) == value)
            n = int(sel.sum())
            hit = int(call[sel].sum())
            rows[value] = {"n": n, "detected": hit, "sensitivity": round(hit / n, 6)}
        out[str(field)] = rows
    return out
