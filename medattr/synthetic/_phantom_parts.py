"""Building blocks of the torso phantom: occupancy factors and painted layers.

A layer's occupancy is the product of its factors, each a continuous function of world
coordinates in ``[0, 1]``. Layers are painted in order (``v ← v + o·(value − v)``), so a later
layer covers earlier ones where it is present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from medattr.synthetic._fields import Ellipsoid, ramp

__all__ = ["Layer", "Paint", "Sector", "Shell", "Solid", "Void", "ZBands", "paint"]

EDGE_MM = 1.5  # width of the partial-volume edge of every structure


class Factor(Protocol):
    def __call__(self, pts: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Solid:
    """Inside an ellipsoid (or elliptical cylinder)."""

    ell: Ellipsoid

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        return self.ell.occupancy(pts, EDGE_MM)


@dataclass(frozen=True)
class Void:
    """Outside an ellipsoid."""

    ell: Ellipsoid

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        return 1.0 - self.ell.occupancy(pts, EDGE_MM)


@dataclass(frozen=True)
class Shell:
    """A shell ``thickness_mm`` thick whose middle lies ``depth_mm`` inside an ellipsoid."""

    ell: Ellipsoid
    depth_mm: float
    thickness_mm: float

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        d = self.ell.signed_distance(pts) + self.depth_mm
        return ramp(np.abs(d) - self.thickness_mm / 2.0, EDGE_MM)


@dataclass(frozen=True)
class ZBands:
    """Slabs ``thickness_mm`` thick, one every ``period_mm`` along z (inverted: the gaps).

    With a ``slope`` the slabs tilt: they are level sets of ``z + slope * y`` (ribs run
    downwards from the spine to the front).
    """

    offset_mm: float
    period_mm: float
    thickness_mm: float
    invert: bool = False
    z_min_mm: float = -np.inf
    slope: float = 0.0

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        z = pts[2] + self.slope * pts[1] if self.slope else pts[2]
        d = np.abs(
            np.mod(z - self.offset_mm + self.period_mm / 2, self.period_mm) - self.period_mm / 2
        )
        occ = ramp(d - self.thickness_mm / 2.0, EDGE_MM)
        if self.invert:
            occ = 1.0 - occ
        if np.isfinite(self.z_min_mm):
            occ = occ * ramp(self.z_min_mm - z, EDGE_MM)
        return occ


@dataclass(frozen=True)
class Sector:
    """Away from a direction: 0 within ``half_width_deg`` of the +y axis seen from ``center``."""

    center_xy: tuple[float, float]
    half_width_deg: float

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        theta = np.degrees(
            np.abs(np.arctan2(pts[0] - self.center_xy[0], pts[1] - self.center_xy[1]))
        )
        return np.clip((theta - self.half_width_deg) / 10.0, 0.0, 1.0)


@dataclass(frozen=True)
class Layer:
    """A structure: HU value, texture gain and occupancy factors; ``clip`` names a layer
    whose occupancy multiplies this one's (organs stay inside the abdominal cavity)."""

    name: str
    value: float
    gain: float
    factors: tuple[Any, ...]
    clip: str | None = None

    def occupancy(self, pts: np.ndarray, done: dict[str, np.ndarray]) -> np.ndarray:
        occ = self.factors[0](pts)
        for f in self.factors[1:]:
            occ = occ * f(pts)
        if self.clip is not None:
            occ = occ * done[self.clip]
        return occ


@dataclass
class Paint:
    """Result of painting: base values, texture gains and each tracked layer's visibility."""

    value: np.ndarray
    gain: np.ndarray
    visible: dict[str, np.ndarray]
    body: np.ndarray


def paint(
    layers: tuple[Layer, ...],
    pts: np.ndarray,
    *,
    background: float,
    track: tuple[str, ...] = (),
    body: str = "body",
) -> Paint:
    """Paint ``layers`` in order at ``(3, N)`` points.

    ``visible[name]`` is how much of each tracked layer remains uncovered by later layers.
    """
    n = pts.shape[1]
    value = np.full(n, background, dtype=np.float64)
    gain = np.zeros(n, dtype=np.float64)
    visible: dict[str, np.ndarray] = {}
    done: dict[str, np.ndarray] = {}
    for layer in layers:
        occ = layer.occupancy(pts, done)
        done[layer.name] = occ
        value += occ * (layer.value - value)
        gain += occ * (layer.gain - gain)
        for key in visible:
            visible[key] = visible[key] * (1.0 - occ)
        if layer.name in track:
            visible[layer.name] = occ.copy()
    return Paint(value, gain, visible, done[body])
