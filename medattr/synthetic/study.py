"""A generated study: the image, its exact healthy twin, the lesion mask and the ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medattr.errors import InputError
from medattr.volume import Volume

__all__ = ["Study", "centred_affine", "validate_grid", "world_points"]


@dataclass
class Study:
    """One synthetic study with exact ground truth.

    Attributes
    ----------
    image
        What a model sees: the study with its lesion if it has one.
    healthy
        The healthy twin: the same subject, geometry and noise realisation without the lesion.
        For a study without a lesion it equals ``image``.
    mask
        ``float32`` 0/1 mask of the voxels whose intensity the lesion changed (its support,
        soft edge included): ``image - healthy`` is zero outside it. Empty without a lesion.
    label
        1 if the study has a lesion, else 0.
    params
        JSON-able description: the seed, the subject's parameters and, for a lesion, its
        location (mm, RAS), size, shape, polarity and contrast.
    region
        ``float32`` 0/1 mask of the anatomy lesions are placed in (the body for phantoms, the
        brain for MNI studies), for restricting metrics to tissue.

    Examples
    --------
    >>> from medattr.synthetic import make_phantom
    >>> s = make_phantom(3, lesion=True)
    >>> bool((s.image.array != s.healthy.array)[s.mask.array == 0].any())
    False
    """

    image: Volume
    healthy: Volume
    mask: Volume
    label: int
    params: dict[str, Any] = field(default_factory=dict)
    region: Volume | None = None

    @property
    def difference(self) -> np.ndarray:
        """``image - healthy`` as an array of shape ``(1, I, J, K)``: the lesion's signal."""
        return self.image.array - self.healthy.array


def validate_grid(
    shape: Sequence[int], spacing: float | Sequence[float] | None, affine: np.ndarray | None
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Check a grid request and return ``(shape, affine)``; see :func:`centred_affine`."""
    try:
        values = [float(s) for s in shape]
    except (TypeError, ValueError):
        raise InputError(f"shape must be three positive integers, got {shape!r}") from None
    if len(values) != 3 or any(v < 1 or v != int(v) for v in values):
        raise InputError(f"shape must be three positive integers, got {tuple(shape)!r}")
    shp = (int(values[0]), int(values[1]), int(values[2]))
    if affine is not None:
        aff = np.asarray(affine, dtype=np.float64)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
            raise InputError(f"affine must be a finite 4x4 matrix, got shape {aff.shape}")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9 or not np.allclose(aff[3], [0, 0, 0, 1]):
            raise InputError("affine must be invertible with last row (0, 0, 0, 1)")
        return shp, aff
    return shp, centred_affine(shp, spacing if spacing is not None else 1.0)


def centred_affine(
    shape: Sequence[int],
    spacing: float | Sequence[float],
    center_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """An axial RAS affine (i→R, j→A, k→S) whose voxel centres are centred on ``center_mm``.

    Examples
    --------
    >>> a = centred_affine((3, 3, 3), 2.0)
    >>> (a @ [1, 1, 1, 1])[:3].tolist()
    [0.0, 0.0, 0.0]
    """
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing must be positive (mm), got {spacing!r}")
    shp = np.asarray(shape, dtype=np.float64)
    aff = np.diag([*sp, 1.0])
    aff[:3, 3] = np.asarray(center_mm, dtype=np.float64) - sp * (shp - 1.0) / 2.0
    return aff


def world_points(shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm, RAS) of every voxel centre, as an array of shape ``(3, I*J*K)``.

    The voxels are in C order, so ``values.reshape(shape)`` puts them back on the grid.
    """
    idx = np.indices(tuple(int(s) for s in shape), dtype=np.float64).reshape(3, -1)
    aff = np.asarray(affine, dtype=np.float64)
    return aff[:3, :3] @ idx + aff[:3, 3:4]
