"""Continuous fields in world coordinates (mm) shared by the generators.

Everything here is a pure function of world coordinates and of parameters drawn once from a
seeded generator, so a shape or a texture is the same object whatever voxel grid samples it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "STREAMS",
    "Ellipsoid",
    "SinusoidField",
    "fibonacci_sphere",
    "ramp",
    "random_rotation",
    "small_rotation",
    "stream_rng",
    "stream_seed32",
    "validate_seed",
]

# One independent random stream per purpose, so that e.g. drawing a lesion never shifts the
# noise realisation of the healthy twin. The numbers are part of the data definition: changing
# them changes every generated study.
STREAMS = {
    "anatomy": 1,
    "texture": 2,
    "lesion": 3,
    "noise": 4,
    "augment": 5,
}


def validate_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as a non-negative ``int``, or a ``ValueError`` naming what was received."""
    from medattr.errors import InputError

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InputError(
            f"{name} must be a non-negative integer, got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise InputError(f"{name} must be a non-negative integer, got {int(seed)}")
    return int(seed)


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """A NumPy generator for one purpose (a key of :data:`STREAMS`) of one study seed."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[stream]]))


def stream_seed32(seed: int, stream: str) -> int:
    """A 32-bit seed for libraries that take one (MONAI's ``set_random_state``)."""
    ss = np.random.SeedSequence([int(seed), STREAMS[stream]])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def ramp(signed_distance_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """Occupancy from a signed distance (negative inside): 1 inside, 0 outside, linear edge.

    The edge is ``edge_mm`` wide and centred on the surface; ``edge_mm <= 0`` gives a hard
    step (1 where the distance is negative).
    """
    if edge_mm <= 0:
        return (signed_distance_mm < 0).astype(np.float64)
    return np.clip(0.5 - signed_distance_mm / edge_mm, 0.0, 1.0)


def fibonacci_sphere(n: int) -> np.ndarray:
    """``(n, 3)`` nearly uniformly spread unit vectors."""
    i = np.arange(n, dtype=np.float64) + 0.5
    phi = np.arccos(1.0 - 2.0 * i / n)
    theta = np.pi * (1.0 + 5.0**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3D rotation matrix (from a random unit quaternion)."""
    q = rng.standard_normal(4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def small_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """A rotation by Euler angles drawn uniformly in ``[-max_deg, max_deg]`` about x, y, z."""
    a, b, c = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid (or, with an infinite radius, an elliptical cylinder) in world mm.

    ``rotation`` maps the ellipsoid's own axes to world axes (columns are its axes).
    """

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    rotation: np.ndarray | None = None

    def local(self, pts: np.ndarray) -> np.ndarray:
        """``(3, N)`` world points in the ellipsoid's frame, divided by its radii."""
        d = pts - np.asarray(self.center, dtype=np.float64)[:, None]
        if self.rotation is not None:
            d = self.rotation.T @ d
        return d / np.asarray(self.radii, dtype=np.float64)[:, None]

    def rho(self, pts: np.ndarray) -> np.ndarray:
        """Normalised radius: < 1 inside, 1 on the surface."""
        return np.sqrt(np.sum(self.local(pts) ** 2, axis=0))

    def signed_distance(self, pts: np.ndarray) -> np.ndarray:
        """An approximate signed distance in mm (exact for a sphere), negative inside."""
        finite = [r for r in self.radii if np.isfinite(r)]
        return (self.rho(pts) - 1.0) * float(min(finite))

    def occupancy(self, pts: np.ndarray, edge_mm: float) -> np.ndarray:
        return ramp(self.signed_distance(pts), edge_mm)

    def to_params(self) -> dict[str, object]:
        out: dict[str, object] = {
            "center_mm": [round(float(c), 4) for c in self.center],
            "radii_mm": [round(float(r), 4) if np.isfinite(r) else None for r in self.radii],
        }
        if self.rotation is not None:
            out["rotation"] = [[round(float(v), 6) for v in row] for row in self.rotation]
        return out


@dataclass(frozen=True)
class SinusoidField:
    """A smooth random field: a sum of plane waves ``a_k cos(2π f_k·x + φ_k)``.

    ``frequencies`` has shape ``(K, 3)`` in cycles per mm; the field is defined everywhere in
    world space, hence identical on any grid that samples it.
    """

    frequencies: np.ndarray
    phases: np.ndarray
    amplitudes: np.ndarray

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        *,
        n_waves: int,
        wavelength_mm: tuple[float, float],
        std: float,
    ) -> SinusoidField:
        """Waves with random directions, log-uniform wavelengths and a field std of ``std``."""
        dirs = rng.standard_normal((n_waves, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lo, hi = np.log(wavelength_mm[0]), np.log(wavelength_mm[1])
        wavelengths = np.exp(rng.uniform(lo, hi, size=n_waves))
        freqs = dirs / wavelengths[:, None]
        phases = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)
        weights = rng.uniform(0.5, 1.0, size=n_waves)
        # a sum of independent-phase cosines has variance sum(a^2) / 2
        amps = weights * std * np.sqrt(2.0 / np.sum(weights**2))
        return cls(freqs, phases, amps)

    @property
    def bound(self) -> float:
        """An upper bound of ``|field|``."""
        return float(np.sum(np.abs(self.amplitudes)))

    def __call__(self, pts: np.ndarray) -> np.ndarray:
        """Values at ``(3, N)`` world points."""
        arg = 2.0 * np.pi * (self.frequencies @ pts) + self.phases[:, None]
        return self.amplitudes @ np.cos(arg)
