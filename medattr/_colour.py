"""Colour maths shared by the PNG renderings and the DICOM RGB overlay: display windows, the
attribution colour limit and the heatmap blend (no figure, no file: plain arrays)."""

from __future__ import annotations

import numpy as np

__all__ = ["blend_rgb", "robust_limit", "window_limits"]


def robust_limit(attr: np.ndarray, percentile: float = 99.5) -> float:
    """Colour-scale limit: the ``percentile`` of |attribution| (never 0)."""
    a = np.abs(np.asarray(attr, dtype=np.float64))
    nz = a[a > 0]
    if nz.size == 0:
        return 1.0
    return float(max(np.percentile(nz, percentile), np.finfo(np.float32).tiny))


def window_limits(anatomy: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display window from percentiles of the anatomy."""
    lo, hi = np.percentile(anatomy, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def blend_rgb(
    anatomy: np.ndarray,
    attr: np.ndarray,
    *,
    window: tuple[float, float] | None = None,
    limit: float | None = None,
    cmap: str = "RdBu_r",
    opacity: float = 0.7,
    threshold: float = 0.1,
) -> np.ndarray:
    """Heatmap over grayscale anatomy, as ``uint8`` RGB with a trailing channel axis.

    Works on arrays of any shape (a slice or a whole volume). Voxels with
    ``|attr| < threshold * limit`` show the anatomy only; above, the colour's opacity grows with
    ``|attr| / limit`` up to ``opacity``.

    Examples
    --------
    >>> rgb = blend_rgb(np.zeros((4, 4)), np.eye(4))
    >>> rgb.shape, rgb.dtype
    ((4, 4, 3), dtype('uint8'))
    """
    import matplotlib

    anatomy = np.asarray(anatomy, dtype=np.float32)
    attr = np.asarray(attr, dtype=np.float32)
    if anatomy.shape != attr.shape:
        raise ValueError(f"anatomy {anatomy.shape} and attribution {attr.shape} differ in shape")
    lo, hi = window if window is not None else window_limits(anatomy)
    gray = np.clip((anatomy - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    lim = limit if limit is not None else robust_limit(attr)
    norm = np.clip(attr / lim, -1.0, 1.0)
    colors = matplotlib.colormaps[cmap]((norm + 1.0) / 2.0)[..., :3].astype(np.float32)
    strength = np.abs(norm)
    alpha = np.where(
        strength >= threshold,
        opacity * np.clip((strength - threshold) / max(1 - threshold, 1e-6) * 0.7 + 0.3, 0, 1),
        0.0,
    )
    out = gray[..., None] * (1.0 - alpha[..., None]) + colors * alpha[..., None]
    return np.round(out * 255.0).astype(np.uint8)
