"""A 3D image volume with its geometry: voxel data, a RAS affine and where it came from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from medattr.affines import voxel_sizes
from medattr.errors import VolumeError

__all__ = ["Volume", "VolumeSource"]


@dataclass(frozen=True)
class VolumeSource:
    """Where a volume was read from.

    Attributes
    ----------
    path
        The file or directory read.
    format
        ``"nifti"`` or ``"dicom"``.
    name
        A short name for outputs derived from it (the file name without extension for NIfTI;
        a series-derived name for DICOM, never a patient identifier).
    header
        Format-specific header kept for writing (for NIfTI the source ``Nifti1Header``).
    dicom
        For DICOM sources, the references the DICOM writers need (see ``medattr.io.dicom``).
    """

    path: str
    format: str
    name: str
    header: Any = None
    dicom: Any = None


@dataclass
class Volume:
    """Voxel data plus geometry.

    Attributes
    ----------
    array
        ``float32`` array of shape ``(C, I, J, K)``; the spatial axes are the voxel indices
        ``(i, j, k)`` of :attr:`affine`.
    affine
        ``(4, 4)`` float64 matrix mapping ``(i, j, k, 1)`` to RAS+ world coordinates in mm
        (the NIfTI / MONAI convention; DICOM and ITK use LPS, converted on reading).
    source
        Where the data came from, or ``None`` for generated volumes.

    Examples
    --------
    >>> import numpy as np
    >>> v = Volume(np.zeros((1, 4, 5, 6), np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> v.spatial_shape, v.spacing
    ((4, 5, 6), (2.0, 2.0, 3.0))
    """

    array: np.ndarray
    affine: np.ndarray
    source: VolumeSource | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 4:
            raise VolumeError(
                f"Volume.array must be 4D (C, I, J, K), but it is {self.array.ndim}D "
                f"with shape {tuple(self.array.shape)}"
            )
        if self.array.dtype != np.float32:
            self.array = self.array.astype(np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise VolumeError(f"Volume.affine must be 4x4, got shape {self.affine.shape}")
        if not np.all(np.isfinite(self.affine)) or abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise VolumeError("Volume.affine must be finite and invertible")

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Shape of the spatial axes ``(I, J, K)``."""
        i, j, k = self.array.shape[1:]
        return (int(i), int(j), int(k))

    @property
    def num_channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``(i, j, k)`` (column norms of the affine)."""
        i, j, k = voxel_sizes(self.affine)
        return (i, j, k)

    @property
    def name(self) -> str:
        return self.source.name if self.source is not None else "volume"

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume with the same geometry and source but other voxel data."""
        array = np.asarray(array, dtype=np.float32)
        if array.ndim == 3:
            array = array[None]
        if array.shape[1:] != self.array.shape[1:]:
            raise VolumeError(
                f"array spatial shape {array.shape[1:]} differs from the volume's "
                f"{self.array.shape[1:]}"
            )
        return replace(self, array=array, meta=dict(self.meta))

    def to_metatensor(self) -> Any:
        """This volume as a MONAI ``MetaTensor`` (channel first, RAS affine)."""
        import torch
        from monai.data import MetaTensor

        meta = {
            "original_affine": self.affine.copy(),
            "original_channel_dim": 0,
            "space": "RAS",
            "spatial_shape": np.asarray(self.spatial_shape),
        }
        if self.source is not None:
            meta["filename_or_obj"] = self.source.path
        return MetaTensor(
            torch.from_numpy(self.array.copy()),
            affine=torch.from_numpy(self.affine.copy()),
            meta=meta,
        )
