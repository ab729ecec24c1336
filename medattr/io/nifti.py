"""NIfTI reading and writing with the affine kept exactly."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from medattr._fs import atomic_path
from medattr.errors import VolumeError
from medattr.volume import Volume, VolumeSource

__all__ = ["is_nifti_path", "nifti_stem", "read_nifti", "write_nifti"]

_SUFFIXES = (".nii.gz", ".nii")


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(_SUFFIXES)


def nifti_stem(path: str | os.PathLike[str]) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def read_nifti(path: str | os.PathLike[str], *, allow_nonfinite: bool = False) -> Volume:
    """Read a NIfTI file (``.nii`` or ``.nii.gz``) into a :class:`~medattr.Volume`.

    A 3D file is one channel; a 4D file's last axis (or the fifth axis of a 5D file whose
    fourth has length 1, NIfTI's vector layout) holds the channels (T1, FLAIR, ...). Scale
    slope and intercept are applied. The affine is nibabel's best affine (sform if set, else
    qform), RAS+ in mm.

    Raises
    ------
    VolumeError
        If the file is missing, unreadable, not 3D, or has NaN/inf voxels (unless
        ``allow_nonfinite``).

    Examples
    --------
    >>> vol = read_nifti("study.nii.gz")  # doctest: +SKIP
    >>> vol.array.shape  # (1, I, J, K)  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise VolumeError("file not found", p)
    if p.is_dir():
        raise VolumeError("is a directory, expected a NIfTI file", p)
    try:
        img = nib.load(str(p))
    except Exception as exc:  # nibabel raises several types for corrupt files
        raise VolumeError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", p) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"not a NIfTI image (got {type(img).__name__})", p)
    shape = tuple(int(v) for v in img.shape)
    if len(shape) == 5 and shape[3] == 1:
        shape = (*shape[:3], shape[4])
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4:
        raise VolumeError(
            f"expected a 3D volume (or 4D with channels last), but the image is "
            f"{len(img.shape)}D with shape {tuple(img.shape)}",
            p,
        )
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:
        raise VolumeError(f"voxel data cannot be read ({type(exc).__name__}: {exc})", p) from exc
    data = np.moveaxis(data, 3, 0)
    if not allow_nonfinite:
        bad = ~np.isfinite(data)
        if bad.any():
            raise VolumeError(
                f"contains {int(bad.sum())} NaN or infinite voxel(s); fix or mask them first", p
            )
    affine = np.asarray(img.affine, dtype=np.float64)
    source = VolumeSource(path=str(p), format="nifti", name=nifti_stem(p), header=img.header.copy())
    return Volume(np.ascontiguousarray(data), affine, source=source)


def write_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    *,
    like: Volume | None = None,
    description: str = "",
) -> Path:
    """Write ``data`` (3D, or 4D with a leading channel of 1) as a float32 NIfTI, atomically.

    ``affine`` is stored in both sform and qform. When ``like`` is a volume read from a NIfTI
    file with the same affine, its header's geometry fields (sform/qform codes and values,
    units) are copied verbatim so the written affine is bit-identical to the source.
    """
    arr = np.asarray(data, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise VolumeError(f"write_nifti expects a 3D array, got shape {arr.shape}", path)
    affine = np.asarray(affine, dtype=np.float64)
    header = None
    src_header = like.source.header if like is not None and like.source is not None else None
    if isinstance(src_header, nib.Nifti1Header) and np.allclose(
        src_header.get_best_affine(), affine, atol=1e-6
    ):
        header = nib.Nifti1Header()
        for key in (
            "pixdim",
            "qform_code",
            "sform_code",
            "quatern_b",
            "quatern_c",
            "quatern_d",
            "qoffset_x",
            "qoffset_y",
            "qoffset_z",
            "srow_x",
            "srow_y",
            "srow_z",
            "xyzt_units",
        ):
            header[key] = src_header[key]
        img = nib.Nifti1Image(arr, None, header=header)
        img.header.set_data_dtype(np.float32)
    else:
        img = nib.Nifti1Image(arr, affine)
        img.header.set_data_dtype(np.float32)
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
        img.header.set_xyzt_units("mm")
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    suffix = ".nii.gz" if str(path).lower().endswith(".gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return Path(path)
