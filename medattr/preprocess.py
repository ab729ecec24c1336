"""Bring a volume into the model's geometry and intensity range, and map results back.

The spatial part (orientation, voxel size, crop/pad) uses MONAI's invertible transforms. Images
on the model grid (baselines) go back by inverting exactly the operations applied.
Attributions are *amounts* per voxel (they sum to ``f(x) - f(x')``), so they go back through
the adjoint of the resampling instead of an interpolation: the total is preserved exactly.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Orientation, ResizeWithPadOrCrop, Spacing

from medattr.affines import voxel_sizes
from medattr.models.spec import ModelSpec
from medattr.volume import Volume

__all__ = ["Preprocessed", "Preprocessor"]


@dataclass
class Preprocessed:
    """A volume on the model grid.

    Attributes
    ----------
    image
        ``(1, C, *spatial)`` float32 tensor, the model input.
    valid
        ``(1, 1, *spatial)`` bool tensor: voxels inside the source field of view (padding is
        outside; baselines are set equal to the input there so it gets no attribution).
    affine
        Model-grid affine (RAS, mm).
    state
        The MONAI MetaTensor carrying the applied operations, for inversion.
    source_affine, source_shape
        Geometry of the source grid.
    replay
        The spatial operations as applied to this study (data-dependent ones frozen), for
        pipelines whose geometry depends on the data (see :class:`TransformPreprocessor`).
    """

    image: torch.Tensor
    valid: torch.Tensor
    affine: np.ndarray
    state: MetaTensor
    source_affine: np.ndarray
    source_shape: tuple[int, int, int]
    replay: list[Any] | None = None

    @property
    def spacing(self) -> tuple[float, ...]:
        return voxel_sizes(self.affine)


class Preprocessor:
    """Model-input preparation from a :class:`~medattr.models.ModelSpec`.

    Parameters
    ----------
    spec
        Orientation, pixdim, spatial size and intensity mapping; ``None`` entries are skipped.
    interpolation
        ``"bilinear"`` (default) or ``"nearest"`` for resampling to ``pixdim``.

    Examples
    --------
    >>> from medattr.models import ModelSpec
    >>> pre = Preprocessor(ModelSpec(pixdim=(2.0, 2.0, 2.0), spatial_size=(8, 8, 8)))
    >>> vol = Volume(np.zeros((1, 10, 10, 5), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
    >>> pre(vol).image.shape
    torch.Size([1, 1, 8, 8, 8])
    """

    def __init__(self, spec: ModelSpec, interpolation: str = "bilinear") -> None:
        self.spec = spec
        ops: list[Any] = []
        if spec.orientation:
            ops.append(
                Orientation(axcodes=spec.orientation, labels=(("L", "R"), ("P", "A"), ("I", "S")))
            )
        if spec.pixdim:
            ops.append(Spacing(pixdim=spec.pixdim, mode=interpolation, padding_mode="border"))
        if spec.spatial_size:
            ops.append(ResizeWithPadOrCrop(spatial_size=spec.spatial_size))
        self.spatial = Compose(ops)

    def intensity(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Apply the spec's intensity mapping (source units -> model units)."""
        x = torch.as_tensor(array, dtype=torch.float32)
        it = self.spec.intensity
        if it is None:
            return x
        if it.mode == "zscore":  # per channel for (C, I, J, K) arrays
            dims = tuple(range(1, x.dim())) if x.dim() == 4 else tuple(range(x.dim()))
            mean = x.mean(dim=dims, keepdim=True)
            std = x.std(dim=dims, keepdim=True)
            return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))
        t = (x - it.a_min) / (it.a_max - it.a_min)
        if it.clip:
            t = t.clamp(0.0, 1.0)
        return it.b_min + t * (it.b_max - it.b_min)

    def _spatial(
        self, data: torch.Tensor, affine: np.ndarray, pre: Preprocessed | None = None
    ) -> MetaTensor:
        mt = MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            out = self.spatial(mt)
        return out if isinstance(out, MetaTensor) else MetaTensor(out)

    def __call__(self, volume: Volume) -> Preprocessed:
        if volume.num_channels != self.spec.in_channels:
            from medattr.errors import VolumeError

            raise VolumeError(
                f"the model expects {self.spec.in_channels} channel(s), the volume has "
                f"{volume.num_channels}",
                volume.source.path if volume.source else None,
            )
        image = self._spatial(self.intensity(volume.array), volume.affine)
        ones = self._spatial(torch.ones((1, *volume.spatial_shape)), volume.affine)
        affine = np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64)
        return Preprocessed(
            image=image.as_tensor().float()[None].contiguous(),
            valid=(ones.as_tensor() > 0.5)[None],
            affine=affine,
            state=image,
            source_affine=np.asarray(volume.affine, dtype=np.float64),
            source_shape=volume.spatial_shape,
        )

    def map_to_model(self, volume: Volume, *, intensity: bool = True) -> torch.Tensor:
        """Another volume on the same source grid (e.g. a user baseline) onto the model grid."""
        data = self.intensity(volume.array) if intensity else torch.as_tensor(volume.array)
        return self._spatial(data, volume.affine).as_tensor().float()[None]

    def invert(self, array: torch.Tensor | np.ndarray, pre: Preprocessed) -> np.ndarray:
        """Map an image on the model grid ``(C, *spatial)`` or ``(*spatial)`` back to the source
        grid by inverting the spatial operations (interpolation)."""
        data = _as_channel_first(array)
        mt = MetaTensor(data, meta=dict(pre.state.meta))
        mt.applied_operations = copy.deepcopy(list(pre.state.applied_operations))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            out = self.spatial.inverse(mt)
        return torch.as_tensor(out).detach().cpu().numpy().astype(np.float32)

    def attribution_to_source(
        self, array: torch.Tensor | np.ndarray, pre: Preprocessed
    ) -> np.ndarray:
        """Map an attribution on the model grid back to the source grid, preserving its total.

        The spatial preprocessing is linear, ``x_model = R x_source``; the attribution goes back
        through the adjoint, ``a_source = R^T a_model`` (computed by autograd through the same
        MONAI transforms): each model voxel's attribution is shared among the source voxels it
        was interpolated from, in proportion to the interpolation weights, so the total is kept
        exactly and nothing outside the field of view receives any.
        """
        data = _as_channel_first(array)
        src = torch.zeros(
            (data.shape[0], *pre.source_shape), dtype=torch.float32, requires_grad=True
        )
        mapped = self._spatial(src, pre.source_affine, pre)
        if tuple(mapped.shape) != tuple(data.shape):
            raise ValueError(
                f"attribution shape {tuple(data.shape)} does not match the model grid "
                f"{tuple(mapped.shape)}"
            )
        (grad,) = torch.autograd.grad(mapped.as_tensor(), src, grad_outputs=data)
        return grad.detach().cpu().numpy().astype(np.float32)


def _as_channel_first(array: torch.Tensor | np.ndarray) -> torch.Tensor:
    data = (
        torch.as_tensor(np.asarray(array))
        if isinstance(array, np.ndarray)
        else array.detach().cpu()
    )
    data = data.float()
    return data[None] if data.dim() == 3 else data
