"""The embedded example studies the ``medattr demo`` command explains.

They are generated (:func:`make_demo_study`) and shipped in ``medattr/assets`` so that the demo
runs on a fresh machine without downloads; a test checks that the shipped files are what the
generator renders.

- ``mni`` (the default demo): a brain made from the MNI152 template with an inserted lesion, on
  the brain classifier's grid (64^3 voxels of 3 mm, float32 normalised T1 intensity) but stored
  in LPS voxel order, so the demo exercises reorientation and the way back. Its seed was chosen
  as a study the shipped brain classifier calls diseased (see ``docs/models.md``).
- ``phantom``: a torso phantom stored the way scanners often store CT: 16-bit HU, an
  anisotropic grid (2.4 x 2.4 x 4.8 mm) in LPS voxel order, so that demo also exercises
  resampling to the model grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from medattr._fs import atomic_path
from medattr.errors import InputError
from medattr.synthetic.study import Study

__all__ = ["DEMO_SEEDS", "demo_affine", "demo_study_path", "make_demo_study", "write_demo_assets"]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"

DEMO_SEEDS = {"mni": 990_100, "phantom": 990_008}
"""Seeds of the demo studies (outside every range used to train the shipped models)."""

_SHAPE = (80, 80, 40)
_SPACING = (2.4, 2.4, 4.8)


def demo_affine() -> np.ndarray:
    """LPS-ordered voxel axes (i to the left, j posterior), centred on the phantom."""
    aff = np.diag([-_SPACING[0], -_SPACING[1], _SPACING[2], 1.0])
    aff[:3, 3] = -np.diag(aff)[:3] * (np.asarray(_SHAPE) - 1) / 2.0
    return aff


def make_demo_study(kind: str = "mni") -> Study:
    """Render the demo study (lesion present) with its mask and healthy twin."""
    if kind not in DEMO_SEEDS:
        raise InputError(f"no demo study of kind {kind!r}; available: {', '.join(DEMO_SEEDS)}")
    if kind == "mni":
        from medattr.synthetic.mni import make_mni_study

        return _to_lps(make_mni_study(DEMO_SEEDS[kind], lesion=True, shape=(64, 64, 64)))
    from medattr.synthetic.phantoms import make_phantom

    return make_phantom(DEMO_SEEDS[kind], lesion=True, shape=_SHAPE, affine=demo_affine())


def _to_lps(study: Study) -> Study:
    """The same study with its first two voxel axes reversed (RAS order to LPS order)."""
    from dataclasses import replace

    from medattr.volume import Volume

    def flip(v: Volume) -> Volume:
        n = np.asarray(v.spatial_shape)
        f = np.diag([-1.0, -1.0, 1.0, 1.0])
        f[:2, 3] = n[:2] - 1  # new voxel i' = n - 1 - i
        return Volume(np.ascontiguousarray(v.array[:, ::-1, ::-1, :]), v.affine @ f, meta=v.meta)

    return replace(
        study,
        image=flip(study.image),
        healthy=flip(study.healthy),
        mask=flip(study.mask),
        region=None if study.region is None else flip(study.region),
    )


def demo_study_path(kind: str = "mni", *, part: str = "image") -> Path:
    """Path of a shipped demo file: ``part`` is ``"image"`` or ``"mask"``."""
    if kind not in DEMO_SEEDS or part not in ("image", "mask"):
        raise InputError(f"no demo {part!r} of kind {kind!r}")
    suffix = "" if part == "image" else "_mask"
    path = _ASSETS / f"demo_{kind}{suffix}.nii.gz"
    if not path.exists():
        raise InputError("the demo study is missing from this installation", path)
    return path


def write_demo_assets(out_dir: str | os.PathLike[str] = _ASSETS, kind: str = "mni") -> list[Path]:
    """Write the demo image (phantom: int16 HU; mni: float32) and lesion mask (uint8) as NIfTI;
    returns the paths."""
    study = make_demo_study(kind)
    out = Path(out_dir)
    written = []
    image = (
        np.round(study.image.array[0]).astype(np.int16)
        if kind == "phantom"
        else study.image.array[0].astype(np.float32)
    )
    for part, data, dtype in (
        ("", image, image.dtype),
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
