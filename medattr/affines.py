"""Small geometry helpers on affines: voxel size from the columns of a (RAS or LPS) affine."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["voxel_sizes"]


def voxel_sizes(affine: Any, ndim: int = 3) -> tuple[float, ...]:
    """Voxel size in mm along each of the first ``ndim`` index axes: the column norms of the
    affine's linear part (a NumPy array or a torch tensor, ``(4, 4)`` or ``(ndim + 1, ndim + 1)``).

    Examples
    --------
    >>> voxel_sizes(np.diag([2.0, -3.0, 1.5, 1.0]))
    (2.0, 3.0, 1.5)
    """
    a = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, np.float64)
    return tuple(float(v) for v in np.linalg.norm(a[:ndim, :ndim], axis=0))
