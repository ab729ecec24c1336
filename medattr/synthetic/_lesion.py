"""Lesion shapes in world coordinates: ellipsoids and lobulated blobs with a soft edge.

A lesion is the zero super-level set of a continuous *level* function

    s(x) = 1 - rho(x) + a * n(x) / max|n|,

where ``rho`` is the normalised radius of an ellipsoid and ``n`` a smooth random field whose
wavelength is comparable to the radius (``a = 0`` for a plain ellipsoid, ``0.2 ≤ a ≤ 0.45``
for lobulated ones, which may shed small satellite nodules near the surface). Its blend weight
is ``w = clip(s · r_min / edge_mm, 0, 1)``: 0 outside, rising to 1 over about ``edge_mm``
inside the surface. The ground-truth mask is ``w > 0``, the support of the intensity change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medattr.synthetic._fields import Ellipsoid, SinusoidField, random_rotation

__all__ = ["LesionShape", "sample_lesion_shape"]

SHAPES = ("ellipsoid", "lobulated")


@dataclass(frozen=True)
class LesionShape:
    """A lesion's geometry (see the module docstring for the definition)."""

    ellipsoid: Ellipsoid
    kind: str
    edge_mm: float
    lobes: SinusoidField | None = None
    lobe_amplitude: float = 0.0

    @property
    def extent_mm(self) -> float:
        """Radius of a sphere around the centre that contains the whole lesion."""
        return float(max(self.ellipsoid.radii)) * (1.0 + self.lobe_amplitude)

    def level(self, pts: np.ndarray) -> np.ndarray:
        s = 1.0 - self.ellipsoid.rho(pts)
        if self.lobes is not None and self.lobe_amplitude > 0:
            s = s + self.lobe_amplitude * self.lobes(pts) / self.lobes.bound
        return s

    def weight(self, pts: np.ndarray) -> np.ndarray:
        """Blend weight in ``[0, 1]`` at ``(3, N)`` world points; > 0 exactly on the lesion."""
        scale = float(min(self.ellipsoid.radii)) / self.edge_mm
        return np.clip(self.level(pts) * scale, 0.0, 1.0)

    def with_center(self, center: np.ndarray) -> LesionShape:
        ell = Ellipsoid(
            tuple(float(c) for c in center),  # type: ignore[arg-type]
            self.ellipsoid.radii,
            self.ellipsoid.rotation,
        )
        return LesionShape(ell, self.kind, self.edge_mm, self.lobes, self.lobe_amplitude)

    def scaled(self, factor: float) -> LesionShape:
        """The same shape with radii (and lobe wavelengths) multiplied by ``factor``."""
        ell = Ellipsoid(
            self.ellipsoid.center,
            tuple(float(r) * factor for r in self.ellipsoid.radii),  # type: ignore[arg-type]
            self.ellipsoid.rotation,
        )
        lobes = None
        if self.lobes is not None:
            lobes = SinusoidField(
                self.lobes.frequencies / factor, self.lobes.phases, self.lobes.amplitudes
            )
        return LesionShape(ell, self.kind, self.edge_mm, lobes, self.lobe_amplitude)

    def to_params(self) -> dict[str, Any]:
        radii = [float(r) for r in self.ellipsoid.radii]
        return {
            "shape": self.kind,
            **self.ellipsoid.to_params(),
            "mean_radius_mm": round(float(np.mean(radii)), 4),
            "lobe_amplitude": round(self.lobe_amplitude, 4),
            "edge_mm": round(self.edge_mm, 4),
        }


def sample_lesion_shape(
    rng: np.random.Generator,
    radius_mm: tuple[float, float],
    shapes: tuple[str, ...] = SHAPES,
) -> LesionShape:
    """Draw a lesion centred at the origin (move it with :meth:`LesionShape.with_center`).

    The mean radius is uniform in ``radius_mm``; the axes differ by up to ±25 %; the orientation
    is uniformly random; the soft edge is 1.5–3.5 mm wide.
    """
    kind = str(shapes[int(rng.integers(len(shapes)))])
    r = rng.uniform(*radius_mm)
    aspect = rng.uniform(0.75, 1.25, size=3)
    aspect /= np.cbrt(np.prod(aspect))
    radii = tuple(float(v) for v in r * aspect)
    rot = random_rotation(rng)
    edge = float(rng.uniform(1.5, 3.5))
    ell = Ellipsoid((0.0, 0.0, 0.0), radii, rot)  # type: ignore[arg-type]
    if kind == "lobulated":
        lobes = SinusoidField.random(rng, n_waves=6, wavelength_mm=(0.7 * r, 1.4 * r), std=1.0)
        amp = float(rng.uniform(0.2, 0.45))
        # keep the nominal radius the mean radius: shrink the core a little
        ell = Ellipsoid(
            (0.0, 0.0, 0.0),
            tuple(v / (1 + amp / 3) for v in radii),  # type: ignore[arg-type]
            rot,
        )
        return LesionShape(ell, kind, edge, lobes, amp)
    return LesionShape(ell, kind, edge)
