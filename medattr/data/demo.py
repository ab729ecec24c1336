"""The embedded example studies the ``medattr demo`` command explains.

They are generated (:func:`make_demo_study`) and shipped in ``medattr/assets`` so that the demo
runs on a fresh machine without downloads; a test checks that the shipped files are what the
generator renders. The phantom study is stored the way scanners often store CT: 16-bit HU, an
anisotropic grid (2.4 x 2.4 x 4.8 mm) in LPS voxel order, so the demo exercises reorientation
and resampling to the model grid and the way back.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from medattr.data.study import Study
from medattr.errors import InputError
from medattr.io.atomic import atomic_path

__all__ = ["DEMO_SEEDS", "demo_affine", "demo_study_path", "make_demo_study", "write_demo_assets"]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"

DEMO_SEEDS = {"phantom": 990_008}
"""Seeds of the demo studies (outside every range used to train the shipped models)."""

_SHAPE = (80, 80, 40)
_SPACING = (2.4, 2.4, 4.8)


def demo_affine() -> np.ndarray:
    """LPS-ordered voxel axes (i to the left, j posterior), centred on the phantom."""
    aff = np.diag([-_SPACING[0], -_SPACING[1], _SPACING[2], 1.0])
    aff[:3, 3] = -np.diag(aff)[:3] * (np.asarray(_SHAPE) - 1) / 2.0
    return aff


def make_demo_study(kind: str = "phantom") -> Study:
    """Render the demo study (lesion present) with its mask and healthy twin."""
    if kind != "phantom":
        raise InputError(f"no demo study of kind {kind!r}; available: {', '.join(DEMO_SEEDS)}")
    from medattr.data.phantoms import make_phantom

    return make_phantom(DEMO_SEEDS[kind], lesion=True, shape=_SHAPE, affine=demo_affine())


def demo_study_path(kind: str = "phantom", *, part: str = "image") -> Path:
    """Path of a shipped demo file: ``part`` is ``"image"`` or ``"mask"``."""
    if kind not in DEMO_SEEDS or part not in ("image", "mask"):
        raise InputError(f"no demo {part!r} of kind {kind!r}")
    suffix = "" if part == "image" else "_mask"
    path = _ASSETS / f"demo_{kind}{suffix}.nii.gz"
    if not path.exists():
        raise InputError("the demo study is missing from this installation", path)
    return path


def write_demo_assets(
    out_dir: str | os.PathLike[str] = _ASSETS, kind: str = "phantom"
) -> list[Path]:
    """Write the demo image (int16 HU) and lesion mask (uint8) as NIfTI; returns the paths."""
    study = make_demo_study(kind)
    out = Path(out_dir)
    written = []
    for part, data, dtype in (
        ("", np.round(study.image.array[0]), np.int16),
        ("_mask", study.mask.array[0] > 0.5, np.uint8),
    ):
        img = nib.Nifti1Image(np.asarray(data, dtype=dtype), study.image.affine)
        img.set_sform(study.image.affine, code=1)
        img.set_qform(study.image.affine, code=1)
        img.header.set_xyzt_units("mm")
        path = out / f"demo_{kind}{part}.nii.gz"
        with atomic_path(path, suffix=".nii.gz") as tmp:
            nib.save(img, str(tmp))
        written.append(path)
    return written
