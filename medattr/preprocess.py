"""Bring a volume into the model's geometry and intensity range, and map results back.

The spatial part (orientation, voxel size, crop/pad) uses MONAI's invertible transforms. Images
on the model grid (baselines) go back by inverting exactly the operations applied.
Attributions are *amounts* per voxel (they sum to ``f(x) - f(x')``), so they go back in one of
two total-preserving ways (:class:`AttributionMapping`):

* ``"adjoint"`` -- the exact adjoint (transpose) of the resampling, for quantitative use: the
  attribution of a source voxel is exactly what it contributed to the model input. When the
  model grid is coarser than the source (a 3 mm model on a 0.8 mm CT) only the source voxels
  the interpolation sampled get anything: on screen, a lattice of isolated dots.
* ``"smooth"`` -- for everything a person looks at: each model voxel's attribution is spread
  over the source voxels it covers, with trilinear weights, and rescaled so that the model
  voxel's total is kept. The attribution density is interpolated, not point-sampled, so a
  lesion shows as a region.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Orientation, ResizeWithPadOrCrop, Spacing

from medattr.affines import voxel_sizes
from medattr.errors import InputError
from medattr.models.spec import ModelSpec
from medattr.volume import Volume

__all__ = ["AttributionMapping", "Preprocessed", "Preprocessor"]

#: Points sampled per chunk by the smooth mapping (bounds its memory to ~100 MB).
_CHUNK_POINTS = 1 << 22


class AttributionMapping(str, Enum):
    """How an attribution on the model grid is mapped back to the source grid.

    Both keep the total (Σφ, hence completeness) exactly.

    ``ADJOINT``
        The transpose of the model-input resampling: exact for quantitative use (each source
        voxel gets what it contributed), but a dot lattice when the model grid is coarser.
    ``SMOOTH``
        Each model voxel's attribution spread over the source voxels it covers (trilinear
        weights, averaged over each source voxel's extent), rescaled so that its total is
        kept: what the PNG, the RGB series, the Parametric Map and the SEG should show.
    """

    ADJOINT = "adjoint"
    SMOOTH = "smooth"


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
                f"{volume.num_channels}{_channel_hint(volume)}",
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
        self,
        array: torch.Tensor | np.ndarray,
        pre: Preprocessed,
        mapping: AttributionMapping | str = AttributionMapping.ADJOINT,
    ) -> np.ndarray:
        """Map an attribution on the model grid back to the source grid, preserving its total.

        Parameters
        ----------
        array
            ``(C, *model_spatial)`` or ``(*model_spatial)`` attribution on the model grid.
        pre
            What :meth:`__call__` returned for the volume that was explained.
        mapping
            ``"adjoint"`` (default): the spatial preprocessing is linear, ``x_model =
            R x_source``, and the attribution goes back through the adjoint, ``a_source =
            R^T a_model`` (computed by autograd through the same MONAI transforms): each model
            voxel's attribution is shared among the source voxels it was interpolated from, in
            proportion to the interpolation weights, so the total is kept exactly and nothing
            outside the field of view receives any. Use it for numbers.

            ``"smooth"``: ``a_source = P (a_model / P^T 1)``, where ``P`` interpolates the
            model grid trilinearly at each source voxel (averaged over sub-samples spanning
            the voxel when it is larger than a model voxel): each model voxel's attribution is
            spread over the source voxels it covers, in proportion to the interpolation weights,
            and divided by the sum of those weights so that its total is kept. Attribution of
            model voxels that no source voxel covers (padding) goes back through the adjoint,
            so the grand total is exact here too. Use it for what a person looks at.

        Returns
        -------
        numpy.ndarray
            ``(C, *source_spatial)`` float32.

        Examples
        --------
        >>> pre = Preprocessor(ModelSpec(pixdim=(2.0, 2.0, 2.0), spatial_size=(8, 8, 8)))
        >>> vol = Volume(np.zeros((1, 10, 10, 5), np.float32), np.diag([1.0, 1.0, 3.0, 1.0]))
        >>> p = pre(vol)
        >>> a = torch.zeros(1, 8, 8, 8); a[0, 4, 4, 4] = 1.0
        >>> back = pre.attribution_to_source(a, p, mapping="smooth")
        >>> back.shape, round(float(back.sum()), 5), int((back > 0).sum()) > 8
        ((1, 10, 10, 5), 1.0, True)
        """
        kind = _parse_mapping(mapping)
        data = _as_channel_first(array)
        model_shape = tuple(int(n) for n in pre.image.shape[2:])
        if tuple(data.shape[1:]) != model_shape:
            raise InputError(
                f"attribution has shape {tuple(data.shape)}, expected (C, *{model_shape}) on "
                "the model grid"
            )
        if kind is AttributionMapping.ADJOINT:
            return self._adjoint(data, pre)
        return self._smooth(data, pre)

    def _adjoint(self, data: torch.Tensor, pre: Preprocessed) -> np.ndarray:
        src = torch.zeros(
            (data.shape[0], *pre.source_shape), dtype=torch.float32, requires_grad=True
        )
        mapped = self._spatial(src, pre.source_affine, pre)
        if tuple(mapped.shape) != tuple(data.shape):
            raise InputError(
                f"attribution shape {tuple(data.shape)} does not match the model grid "
                f"{tuple(mapped.shape)}"
            )
        (grad,) = torch.autograd.grad(mapped.as_tensor(), src, grad_outputs=data)
        return grad.detach().cpu().numpy().astype(np.float32)

    def _smooth(self, data: torch.Tensor, pre: Preprocessed) -> np.ndarray:
        sampler = _SourceSampler(pre, tuple(int(n) for n in data.shape[1:]))
        weights = sampler.column_sums()  # P^T 1: how much of each model voxel is covered
        covered = weights > 1e-6
        amounts = data.double()
        density = torch.where(covered, amounts / torch.where(covered, weights, 1.0), 0.0)
        out = sampler.sample(density)
        lost = torch.where(covered, 0.0, amounts)
        if bool(torch.any(lost != 0)):
            out += self._adjoint(lost.float(), pre).astype(np.float64)
        return out.astype(np.float32)


class _SourceSampler:
    """``P``: trilinear interpolation of a model-grid array at the source voxels.

    A source voxel larger than a model voxel along one of its axes is sampled at evenly
    spread sub-points (at most one model voxel apart) and their values averaged, so no model
    voxel falls between samples. Outside the model grid the array counts as zero. The
    sampling grid of each chunk of source slices is one ``affine_grid`` per sub-point.
    """

    def __init__(self, pre: Preprocessed, model_shape: tuple[int, ...]) -> None:
        self.to_model = np.linalg.inv(pre.affine) @ pre.source_affine  # source ijk -> model ijk
        self.model_shape = model_shape
        self.source_shape = tuple(int(n) for n in pre.source_shape)
        counts = [
            max(1, math.ceil(float(x) - 1e-6))
            for x in np.linalg.norm(self.to_model[:3, :3], axis=0)
        ]
        axes = [(np.arange(n) + 0.5) / n - 0.5 for n in counts]
        self.subs = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        i, j, _ = self.source_shape
        self.slices_per_chunk = max(1, _CHUNK_POINTS // (i * j))

    def _chunks(self) -> list[tuple[int, int]]:
        k, step = self.source_shape[2], self.slices_per_chunk
        return [(k0, min(k, k0 + step)) for k0 in range(0, k, step)]

    def _theta(self, k0: int, k1: int, sub: np.ndarray) -> torch.Tensor:
        """``affine_grid``'s theta: output (chunk) normalised coords -> model normalised coords.

        Both in grid_sample's (W, H, D) axis order, ``align_corners=False``.
        """
        i, j, _ = self.source_shape
        out_size = np.array([i, j, k1 - k0], dtype=np.float64)  # (D, H, W) = source (i, j, k)
        # normalised (x=W, y=H, z=D) -> chunk index (i, j, k - k0)
        unnorm = np.zeros((4, 4))
        for axis in range(3):
            unnorm[axis, 2 - axis] = out_size[axis] / 2.0
            unnorm[axis, 3] = (out_size[axis] - 1.0) / 2.0
        unnorm[3, 3] = 1.0
        shift = np.eye(4)
        shift[:3, 3] = [sub[0], sub[1], sub[2] + k0]
        size = np.asarray(self.model_shape, dtype=np.float64)
        norm = np.zeros((4, 4))  # model index (a0, a1, a2) -> normalised (W=a2, H=a1, D=a0)
        for axis in range(3):
            norm[2 - axis, axis] = 2.0 / size[axis]
            norm[2 - axis, 3] = 1.0 / size[axis] - 1.0
        norm[3, 3] = 1.0
        theta = norm @ self.to_model @ shift @ unnorm
        return torch.as_tensor(theta[:3], dtype=torch.float32)[None]

    def _apply(self, array: torch.Tensor, k0: int, k1: int) -> torch.Tensor:
        i, j, _ = self.source_shape
        total = torch.zeros((array.shape[0], i, j, k1 - k0), dtype=array.dtype)
        for sub in self.subs:
            grid = torch.nn.functional.affine_grid(
                self._theta(k0, k1, sub), [1, 1, i, j, k1 - k0], align_corners=False
            )
            values = torch.nn.functional.grid_sample(
                array[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )[0]  # (C, i, j, k1 - k0)
            total = total + values
        return total / float(len(self.subs))

    def column_sums(self) -> torch.Tensor:
        """``P^T 1`` on the model grid, shape ``(1, *model_shape)``."""
        x = torch.zeros((1, *self.model_shape), dtype=torch.float32, requires_grad=True)
        for k0, k1 in self._chunks():
            self._apply(x, k0, k1).sum().backward()
        grad = x.grad
        return grad.detach() if grad is not None else torch.zeros_like(x, requires_grad=False)

    def sample(self, array: torch.Tensor) -> np.ndarray:
        """``P array`` on the source grid, shape ``(C, *source_shape)`` float64."""
        i, j, k = self.source_shape
        out = np.zeros((array.shape[0], i, j, k), np.float64)
        with torch.no_grad():
            for k0, k1 in self._chunks():
                out[:, :, :, k0:k1] = self._apply(array.float(), k0, k1).numpy()
        return out


def _parse_mapping(mapping: AttributionMapping | str) -> AttributionMapping:
    try:
        return AttributionMapping(mapping)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in AttributionMapping)
        raise InputError(f"mapping must be one of {choices}; got {mapping!r}") from None


def _channel_hint(volume: Volume) -> str:
    if volume.source is not None and volume.source.format == "nifti" and volume.num_channels > 1:
        return " (a 4D NIfTI's last axis is read as channels)"
    return ""


def _as_channel_first(array: torch.Tensor | np.ndarray) -> torch.Tensor:
    data = (
        torch.as_tensor(np.asarray(array))
        if isinstance(array, np.ndarray)
        else array.detach().cpu()
    )
    data = data.float()
    return data[None] if data.dim() == 3 else data
