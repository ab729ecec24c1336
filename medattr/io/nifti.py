"""NIfTI reading and writing with the affine kept exactly."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from medattr._fs import atomic_path, human_size
from medattr.errors import ResourceError, VolumeError
from medattr.phi import exception_text
from medattr.volume import Volume, VolumeSource

__all__ = [
    "GZIP_MAX_RATIO",
    "STREAM_CHECK_BYTES",
    "available_memory",
    "check_nifti_header",
    "is_nifti_path",
    "nifti_stem",
    "read_nifti",
    "write_nifti",
]

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

    The header is checked before any voxel is read (:func:`check_nifti_header`): the data it
    declares must be in the file, fit in memory, be scalar (not colour or complex) and have
    no empty axis, and the affine must be finite and invertible.

    Raises
    ------
    VolumeError
        If the file is missing, unreadable, not 3D, shorter than its header says, colour or
        complex, has an empty axis, a singular or non-finite affine, or NaN/inf voxels
        (unless ``allow_nonfinite``).
    ResourceError
        If the voxels would not fit in the memory available.

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
        raise VolumeError(f"not a readable NIfTI file ({exception_text(exc)})", p) from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"not a NIfTI image (got {type(img).__name__})", p)
    check_nifti_header(img, p)
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
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(
            "the affine (voxel-to-world matrix from the header's sform/qform and pixdim) is "
            "not finite and invertible; fix the header's sform/qform or voxel sizes",
            p,
        )
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape)
    except MemoryError:
        raise
    except Exception as exc:
        raise VolumeError(
            f"voxel data cannot be read: truncated or corrupt file ({exception_text(exc)})", p
        ) from exc
    data = np.moveaxis(data, 3, 0)
    if not allow_nonfinite:
        bad = ~np.isfinite(data)
        if bad.any():
            raise VolumeError(
                f"contains {int(bad.sum())} NaN or infinite voxel(s); fix or mask them first", p
            )
    source = VolumeSource(path=str(p), format="nifti", name=nifti_stem(p), header=img.header.copy())
    return Volume(np.ascontiguousarray(data), affine, source=source)


GZIP_MAX_RATIO = 1032
"""Deflate's largest compression ratio: a gzip file of n bytes never holds more than ~1032 n."""

STREAM_CHECK_BYTES = 64 * 2**20
"""Declared voxel data above this size in a ``.nii.gz`` is counted by decompressing (in 1 MiB
blocks, discarded) before it is read, so a truncated file never makes nibabel allocate it."""


def check_nifti_header(img: nib.Nifti1Image | nib.Nifti2Image, path: Path) -> None:
    """Check what ``img``'s header declares against the file, before reading any voxel.

    Raises
    ------
    VolumeError
        Colour or complex voxels, an empty axis, or less data in the file than declared.
    ResourceError
        If the voxels (as float32) would not fit in the memory available.
    """
    dtype = img.header.get_data_dtype()
    if dtype.names:
        raise VolumeError(
            f"colour images are not supported (voxels of type {'/'.join(dtype.names)}); "
            "convert the image to one grey-level channel first",
            path,
        )
    if dtype.kind == "c":
        raise VolumeError(
            "complex images are not supported (complex voxels); save the magnitude first", path
        )
    if dtype.kind not in "iufb":
        raise VolumeError(f"voxels of type {dtype} are not supported", path)
    shape = tuple(int(n) for n in img.shape)
    if any(n < 1 for n in shape):
        raise VolumeError(f"the image has an empty axis (shape {shape}); nothing to read", path)
    n_voxels = int(np.prod(shape, dtype=np.float64))
    declared = n_voxels * dtype.itemsize
    offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))
    compressed = str(path).lower().endswith(".gz")
    size = path.stat().st_size
    if not compressed:
        held = size - offset
    elif declared > GZIP_MAX_RATIO * size:
        held = -1  # impossible without reading: the compressed file is far too small
    elif declared > STREAM_CHECK_BYTES:
        held = _gzip_length(path, offset + declared) - offset
    else:
        held = declared  # small: nibabel reads it and reports a short file itself
    if held < declared:
        holds = (
            f"the compressed file ({human_size(size)}) cannot hold that much"
            if held < 0
            else f"the file holds only {human_size(max(held, 0))} after the header"
        )
        dims = " x ".join(map(str, shape))
        raise VolumeError(
            f"the header declares {human_size(declared)} of voxel data ({dims} {dtype}) but "
            f"{holds}: a truncated file or a wrong header",
            path,
        )
    needed = n_voxels * 4 + (declared if compressed else 0)
    free = available_memory()
    if free is not None and needed > free:
        raise ResourceError(
            f"reading this image needs about {human_size(needed)} of memory, "
            f"{human_size(free)} is available",
            path,
        )


def _gzip_length(path: Path, limit: int) -> int:
    """Decompressed length of a gzip file, counted up to ``limit`` bytes (1 MiB at a time)."""
    count = 0
    try:
        with gzip.open(path, "rb") as fh:
            while count < limit:
                block = fh.read(min(1 << 20, limit - count))
                if not block:
                    break
                count += len(block)
    except (OSError, EOFError, zlib.error):
        pass  # a damaged stream holds what was decompressed before the damage
    return count


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), else None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


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
