"""Random hole masks for training the healthy inpainter.

These masks stand in for "where a lesion might be" while the inpainter learns to fill holes
with healthy tissue. They are drawn by this module's own generator, independent of the
benchmark's lesion generator (:mod:`medattr.synthetic._lesion`), so that the lesions the
benchmark scores stay unseen shapes for the inpainter. Each mask has 1-3 components; each
component is one of

* ``ellipsoid``: a rotated ellipsoid with axis ratios up to 3:1;
* ``lobulated``: a star-shaped body whose radius varies with direction (a few random cosine
  lobes of the direction vector, amplitude 15-45 %);
* ``blob``: Gaussian-smoothed white noise inside a ball, thresholded (irregular, ragged);
* ``capsule``: a line segment thickened to a radius (elongated, tube-like);
* ``box``: an axis-aligned cuboid (the shape of the leave-block-out holes of the anomaly map).

Sizes are drawn log-uniformly in millimetres; centres lie inside ``region`` (for example the
brain) when it is given; half of the components are cut to the region.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from medattr.errors import InputError

__all__ = ["MASK_KINDS", "LesionLikeMaskGenerator"]

MASK_KINDS = ("ellipsoid", "lobulated", "blob", "capsule", "box")


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class LesionLikeMaskGenerator:
    """Draw random lesion-like hole masks on a voxel grid.

    Parameters
    ----------
    radius_mm
        Range of a component's mean radius (drawn log-uniformly).
    components
        Range (inclusive) of the number of components.
    kinds
        Component shapes to draw from (see the module docstring), uniformly.
    cut_probability
        Probability that a component is cut to ``region``.
    max_fraction
        Largest fraction of the grid one mask may cover (components are dropped to stay
        below it; at least one is always kept).

    Examples
    --------
    >>> gen = LesionLikeMaskGenerator()
    >>> m = gen(np.random.default_rng(0), (32, 32, 32), spacing=(3.0, 3.0, 3.0))
    >>> m.dtype, m.shape, bool(m.any())
    (dtype('bool'), (32, 32, 32), True)
    """

    def __init__(
        self,
        radius_mm: tuple[float, float] = (4.0, 24.0),
        components: tuple[int, int] = (1, 3),
        kinds: Sequence[str] = MASK_KINDS,
        cut_probability: float = 0.5,
        max_fraction: float = 0.35,
    ) -> None:
        lo, hi = (float(v) for v in radius_mm)
        if not 0 < lo <= hi:
            raise InputError(f"radius_mm must be (lo, hi) with 0 < lo <= hi, got {radius_mm!r}")
        c0, c1 = (int(v) for v in components)
        if not 1 <= c0 <= c1:
            raise InputError(f"components must be (lo, hi) with 1 <= lo <= hi, got {components!r}")
        bad = [k for k in kinds if k not in MASK_KINDS]
        if bad or not kinds:
            raise InputError(f"kinds must be a non-empty subset of {MASK_KINDS}, got {kinds!r}")
        if not 0.0 <= cut_probability <= 1.0:
            raise InputError(f"cut_probability must be in [0, 1], got {cut_probability}")
        if not 0.0 < max_fraction <= 1.0:
            raise InputError(f"max_fraction must be in (0, 1], got {max_fraction}")
        self.radius_mm = (lo, hi)
        self.components = (c0, c1)
        self.kinds = tuple(kinds)
        self.cut_probability = float(cut_probability)
        self.max_fraction = float(max_fraction)

    def __call__(
        self,
        rng: np.random.Generator,
        shape: Sequence[int],
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        region: np.ndarray | None = None,
    ) -> np.ndarray:
        """One mask ``(I, J, K)`` of bool, never empty.

        Parameters
        ----------
        rng
            The random generator (the caller seeds it).
        shape
            Grid size in voxels.
        spacing
            Voxel size in mm per axis.
        region
            Optional bool array of ``shape``: component centres are drawn inside it.
        """
        shp = tuple(int(s) for s in shape)
        if len(shp) != 3 or min(shp) < 1:
            raise InputError(f"shape must be three positive sizes, got {shape!r}")
        sp = np.asarray(spacing, dtype=np.float64)
        if sp.shape != (3,) or np.any(sp <= 0):
            raise InputError(f"spacing must be three positive sizes in mm, got {spacing!r}")
        if region is not None and tuple(region.shape) != shp:
            raise InputError(f"region must have shape {shp}, got {tuple(region.shape)}")
        inside = np.flatnonzero(region) if region is not None and region.any() else None
        n = int(rng.integers(self.components[0], self.components[1] + 1))
        mask = np.zeros(shp, dtype=bool)
        limit = self.max_fraction * mask.size
        for i in range(n):
            if inside is not None:
                c = np.array(np.unravel_index(int(inside[rng.integers(inside.size)]), shp), float)
            else:
                c = rng.uniform(0, 1, 3) * (np.array(shp) - 1)
            c += rng.uniform(-0.5, 0.5, 3)
            r = float(np.exp(rng.uniform(np.log(self.radius_mm[0]), np.log(self.radius_mm[1]))))
            kind = self.kinds[int(rng.integers(len(self.kinds)))]
            comp = self._component(rng, kind, shp, sp, c, r)
            if region is not None and rng.random() < self.cut_probability:
                comp &= region
            if not comp.any():
                continue
            if i > 0 and mask.sum() + comp.sum() > limit:
                continue
            mask |= comp
        if not mask.any():  # tiny region or an unlucky cut: one voxel-sized ball at a centre
            c = np.array(np.unravel_index(int(rng.integers(mask.size)), shp))
            if inside is not None:
                c = np.array(np.unravel_index(int(inside[rng.integers(inside.size)]), shp))
            mask[tuple(c)] = True
            mask = ndimage.binary_dilation(mask, iterations=1)
        return mask

    @staticmethod
    def _component(
        rng: np.random.Generator,
        kind: str,
        shape: tuple[int, int, int],
        spacing: np.ndarray,
        centre: np.ndarray,
        radius: float,
    ) -> np.ndarray:
        # evaluate in a bounding box around the centre (mm offsets from the centre)
        reach = radius * 2.6
        lo = np.maximum(np.floor(centre - reach / spacing), 0).astype(int)
        hi = np.minimum(np.ceil(centre + reach / spacing) + 1, shape).astype(int)
        out = np.zeros(shape, dtype=bool)
        if np.any(hi <= lo):
            return out
        axes = [
            ((np.arange(a, b) - c) * s).astype(np.float32)
            for a, b, c, s in zip(lo, hi, centre, spacing, strict=True)
        ]
        d = np.stack(np.meshgrid(*axes, indexing="ij"))  # (3, i, j, k) mm from the centre
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        if kind == "box":
            half = radius * rng.uniform(0.6, 1.4, 3)
            out[box] = np.all(np.abs(d) <= half[:, None, None, None], axis=0)
            return out
        rot = _rotation(rng).astype(np.float32)
        u = np.tensordot(rot.T, d, axes=1)  # coordinates in the component's own frame
        if kind == "capsule":
            half_len = radius * rng.uniform(1.2, 2.2)
            thick = radius * rng.uniform(0.35, 0.7)
            along = np.clip(u[0], -half_len, half_len)
            dist = np.sqrt((u[0] - along) ** 2 + u[1] ** 2 + u[2] ** 2)
            out[box] = dist <= thick
            return out
        radii = radius * np.exp(rng.uniform(-0.55, 0.55, 3))
        rho = np.sqrt(np.sum((u / radii[:, None, None, None]) ** 2, axis=0))
        if kind == "ellipsoid":
            out[box] = rho <= 1.0
            return out
        if kind == "lobulated":
            norm = np.sqrt(np.sum(u**2, axis=0)) + 1e-9
            unit = u / norm
            mod = np.zeros_like(rho)
            for _ in range(int(rng.integers(2, 6))):
                k = rng.standard_normal(3)
                k *= rng.uniform(1.5, 4.0) / np.linalg.norm(k)
                mod += np.cos(np.tensordot(k, unit, axes=1) + rng.uniform(0, 2 * np.pi))
            mod /= max(float(np.abs(mod).max()), 1e-9)
            out[box] = rho <= 1.0 + rng.uniform(0.15, 0.45) * mod
            return out
        # blob: smoothed noise inside a ball, thresholded at a random level
        noise = ndimage.gaussian_filter(
            rng.standard_normal(rho.shape), sigma=max(radius / 2.5, 1.0) / spacing
        )
        noise /= max(float(noise.std()), 1e-9)
        out[box] = (1.0 - rho) * 1.6 + 0.6 * noise > 0.0
        return out
