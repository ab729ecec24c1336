"""Lesion shapes in world coordinates: ellipsoids and lobulated blobs with a soft edge.

A lesion is the zero super-level set of a continuous *level* function

    s(x) = 1 - rho(x) + a * n(x) / max|n|,

where ``rho`` is the normalised radius of an ellipsoid and ``n`` a smooth random field whose
wavelength is comparable to the radius (``a = 0`` for a plain ellipsoid, ``0.2 ≤ a ≤ 0.45``
for lobulated ones, which may shed small satellite nodules near the surface). Its blend weight
is ``w = clip(s · r_min / edge_mm, 0, 1)``: 0 outside, rising to 1 over about ``edge_mm``
inside the surface. The ground-truth mask is ``w > 0``, the support of the intensity change.

Two samplers draw such shapes: :func:`sample_lesion_shape` (``ellipsoid`` or ``lobulated``,
used by the torso phantom) and :func:`sample_shape_class` (the brain studies' classes
``round``, ``elongated`` and ``irregular``, see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from medattr.synthetic._fields import Ellipsoid, SinusoidField, random_rotation

__all__ = ["SHAPE_CLASSES", "LesionShape", "sample_lesion_shape", "sample_shape_class"]

SHAPES = ("ellipsoid", "lobulated")
#: Shape classes of :func:`sample_shape_class`.
SHAPE_CLASSES = ("round", "elongated", "irregular")


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


def sample_shape_class(
    rng: np.random.Generator,
    shape_class: str,
    radius_mm: tuple[float, float],
    *,
    min_axis_mm: float = 3.5,
) -> LesionShape:
    """Draw a lesion of one class of :data:`SHAPE_CLASSES`, centred at the origin.

    The size is the geometric mean of the three semi-axes, uniform in ``radius_mm``; the
    orientation is uniformly random. Classes:

    ``round``
        an ellipsoid whose semi-axes differ by up to ±20 %;
    ``elongated``
        an ellipsoid with one long axis 2–4 times the two short ones (which differ by up to
        ±15 %), as a lesion along a fibre tract or a vessel;
    ``irregular``
        a lobulated blob (semi-axes within ±30 %, lobe amplitude 0.3–0.6 with 8 waves of
        0.5–1.2 radii), which may shed small satellite nodules.

    Every semi-axis is at least ``min_axis_mm`` (the shape is scaled up if needed); the soft
    edge is 1–3 mm wide but at most 0.4 of the shortest semi-axis, so a small lesion keeps a
    core at full contrast.
    """
    if shape_class not in SHAPE_CLASSES:
        raise ValueError(f"shape_class must be one of {SHAPE_CLASSES}, got {shape_class!r}")
    r = float(rng.uniform(*radius_mm))
    if shape_class == "elongated":
        ratio = rng.uniform(2.0, 4.0)
        aspect = np.array([ratio, 1.0, rng.uniform(0.85, 1.15)])
    else:
        spread = 0.2 if shape_class == "round" else 0.3
        aspect = rng.uniform(1.0 - spread, 1.0 + spread, size=3)
    aspect = aspect / np.cbrt(np.prod(aspect))
    radii = r * aspect
    radii *= max(1.0, min_axis_mm / float(radii.min()))
    rot = random_rotation(rng)
    edge = min(float(rng.uniform(1.0, 3.0)), 0.4 * float(radii.min()))
    if shape_class != "irregular":
        ell = Ellipsoid((0.0, 0.0, 0.0), tuple(float(v) for v in radii), rot)  # type: ignore[arg-type]
        return LesionShape(ell, shape_class, edge)
    lobes = SinusoidField.random(rng, n_waves=8, wavelength_mm=(0.5 * r, 1.2 * r), std=1.0)
    amp = float(rng.uniform(0.3, 0.6))
    # keep the nominal size: shrink the core by about the lobes' mean outward reach
    core = tuple(float(v) / (1 + amp / 3) for v in radii)
    return LesionShape(Ellipsoid((0.0, 0.0, 0.0), core, rot), shape_class, edge, lobes, amp)  # type: ignore[arg-type]
