"""Multi-channel studies: one file per channel (T1 + FLAIR), or several DICOM series of a study.

The first channel's grid is the study's grid. A channel already on that grid is stacked as it
is; one on another grid (a FLAIR series of another resolution) is resampled onto it in world
coordinates (bilinear; beyond its field of view its border values continue, so every study
voxel is a convex combination of the channel's voxels), and the resampling is remembered so that
its attribution goes back to its own grid through the exact adjoint (the total is kept). A 4D
NIfTI whose last axis is channels is read by :func:`~medattr.io.read_nifti` directly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medattr.errors import InputError, VolumeError
from medattr.volume import Volume, VolumeSource

__all__ = [
    "ChannelSource",
    "channel_attributions",
    "is_channel_list",
    "read_channels",
    "read_study",
]


@dataclass(frozen=True)
class ChannelSource:
    """Where one channel of a multi-channel study came from.

    Attributes
    ----------
    name
        A short, identifier-free name (file stem or series name), unique within the study.
    source
        What was read.
    affine, shape
        The channel's own grid (RAS).
    resampled
        Whether it was resampled onto the first channel's grid.
    """

    name: str
    source: VolumeSource | None
    affine: np.ndarray
    shape: tuple[int, int, int]
    resampled: bool


def is_channel_list(paths: Sequence[str | os.PathLike[str]]) -> bool:
    """Several paths that are each a NIfTI file or a directory: one channel each (a list of
    plain files is one DICOM series given file by file)."""
    from medattr.io.nifti import is_nifti_path

    return len(paths) > 1 and all(is_nifti_path(p) or Path(p).is_dir() for p in paths)


def read_study(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], **options: Any
) -> Volume:
    """One study: a single path (NIfTI file or DICOM series), one path per channel (NIfTI
    files or DICOM directories), or the files of one DICOM series."""
    from medattr.io import read_volume

    if isinstance(paths, str | os.PathLike):
        return read_volume(paths, **options)
    paths = list(paths)
    if len(paths) == 1:
        return read_volume(paths[0], **options)
    return (
        read_channels(paths, **options) if is_channel_list(paths) else read_volume(paths, **options)
    )


def read_channels(paths: Sequence[str | os.PathLike[str]], **options: Any) -> Volume:
    """Read one study from one file or series per channel (see the module docstring).

    ``options`` are :func:`~medattr.io.read_volume`'s DICOM options, applied to every channel.
    """
    from medattr.io import read_volume

    if not paths:
        raise InputError("no input given")
    vols = [read_volume(p, **options) for p in paths]
    ref = vols[0]
    arrays: list[np.ndarray] = []
    sources: list[ChannelSource] = []
    names: list[str] = []
    for k, vol in enumerate(vols):
        name = _unique(vol.name, names)
        names.append(name)
        same = vol.spatial_shape == ref.spatial_shape and np.allclose(
            vol.affine, ref.affine, atol=1e-3
        )
        data = vol.array if same else _resample(vol, ref)
        arrays.extend(data)
        sources.extend(
            ChannelSource(
                name if vol.num_channels == 1 else f"{name}_{c}",
                vol.source,
                vol.affine.copy(),
                vol.spatial_shape,
                not same,
            )
            for c in range(vol.num_channels)
        )
        if k and not same:
            _check_overlap(vol, ref)
    meta = {**ref.meta, "channels": sources}
    return Volume(np.stack(arrays), ref.affine, source=ref.source, meta=meta)


def channel_attributions(
    volume: Volume, attribution: np.ndarray
) -> list[tuple[ChannelSource, np.ndarray]]:
    """Each channel's attribution ``(C, I, J, K)`` on the study grid mapped to its own grid
    (the adjoint of the resampling for resampled channels: the total is kept)."""
    sources = volume.meta.get("channels")
    if not sources:
        if volume.num_channels == 1:
            return []
        sources = [
            ChannelSource(
                f"{volume.name}_ch{k}", volume.source, volume.affine, volume.spatial_shape, False
            )
            for k in range(volume.num_channels)
        ]
    out = []
    for k, src in enumerate(sources):
        a = attribution[k]
        if src.resampled:
            a = _resample_adjoint(a, src, volume)
        out.append((src, a.astype(np.float32)))
    return out


def _unique(name: str, taken: list[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"


def _apply(data: torch.Tensor, src_affine: np.ndarray, dst: Volume) -> torch.Tensor:
    from monai.data import MetaTensor

    mt = MetaTensor(data, affine=torch.as_tensor(src_affine, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from monai.transforms import SpatialResample

        out = SpatialResample(mode="bilinear", padding_mode="border", dtype=np.float32)(
            mt,
            dst_affine=torch.as_tensor(dst.affine, dtype=torch.float64),
            spatial_size=dst.spatial_shape,
        )
    return torch.as_tensor(out)


def _resample(vol: Volume, ref: Volume) -> np.ndarray:
    return _apply(torch.as_tensor(vol.array), vol.affine, ref).numpy().astype(np.float32)


def _resample_adjoint(a: np.ndarray, src: ChannelSource, study: Volume) -> np.ndarray:
    probe = torch.zeros((1, *src.shape), dtype=torch.float32, requires_grad=True)
    mapped = _apply(probe, src.affine, study)
    (grad,) = torch.autograd.grad(mapped, probe, grad_outputs=torch.as_tensor(a)[None].float())
    return grad[0].detach().numpy()


def _check_overlap(vol: Volume, ref: Volume) -> None:
    """Refuse channels that do not cover the same part of the patient."""
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (0, vol.spatial_shape[0] - 1)
            for j in (0, vol.spatial_shape[1] - 1)
            for k in (0, vol.spatial_shape[2] - 1)
        ]
    )
    world = corners @ vol.affine.T
    in_ref = world @ np.linalg.inv(ref.affine).T
    lo, hi = in_ref[:, :3].min(0), in_ref[:, :3].max(0)
    shape = np.array(ref.spatial_shape)
    if np.any(hi < 0) or np.any(lo > shape - 1):
        raise VolumeError(
            "this channel does not overlap the first channel's field of view; the channels of "
            "a study must show the same part of the patient",
            vol.source.path if vol.source else None,
        )
