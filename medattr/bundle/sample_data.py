"""The bundle's embedded sample cohort: two generated MNI152 brain studies and a datalist.

``python -m monai.bundle run --config_file bundles/medattr_explain/configs/inference.json``
explains these when no ``--dataset_dir`` is given. They are made by the generators in
:mod:`medattr.synthetic` on the 64³ × 3 mm grid the shipped brain models use: a healthy subject
(seed 7000) and the lesion study of ``medattr demo`` (seed 990100, one the shipped classifier
calls diseased, so the default run has a lesion for the counterfactual to remove), stored as
8-bit NIfTI with scale slope/intercept to keep the bundle small (about 200 kB each; 8-bit
quantisation of the [0, 1] intensities is below the generator's noise). Regenerate with
``python -m medattr.bundle.sample_data DIR`` (needs ``nilearn``: ``pip install
'medattr[data]'``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medattr._fs import staged_directory

__all__ = ["SAMPLE_SEED", "write_sample_data"]

SAMPLE_SEED = 7


def _uint8_nifti(array: np.ndarray, affine: np.ndarray, path: Path, description: str) -> None:
    import nibabel as nib

    lo, hi = float(array.min()), float(array.max())
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    q = np.clip(np.round((array - lo) / scale), 0, 255).astype(np.uint8)
    img = nib.Nifti1Image(q, affine)
    img.header.set_slope_inter(scale, lo)
    img.header["descrip"] = description.encode("ascii")[:79]
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, str(path))


def write_sample_data(out_dir: str | Path, seed: int = SAMPLE_SEED) -> Path:
    """Write ``test/*.nii.gz`` and ``datalist.json`` into ``out_dir``; returns the datalist."""
    from medattr.synthetic import make_study

    rows: list[dict[str, Any]] = []
    with staged_directory(out_dir) as stage:
        test = stage("test")
        test.mkdir()
        from medattr.synthetic.demo import DEMO_SEEDS

        for k, (sid, lesion) in enumerate(((seed * 1000, False), (DEMO_SEEDS["mni"], True))):
            study = make_study("mni", sid, lesion=lesion)
            stem = f"mni_sample{k}"
            _uint8_nifti(
                study.image.array[0],
                study.image.affine,
                test / f"{stem}_image.nii.gz",
                f"medattr sample mni seed {sid}",
            )
            row: dict[str, Any] = {"id": stem, "image": f"test/{stem}_image.nii.gz"}
            if lesion:
                _uint8_nifti(
                    study.mask.array[0],
                    study.image.affine,
                    test / f"{stem}_mask.nii.gz",
                    "lesion mask",
                )
                row["mask"] = f"test/{stem}_mask.nii.gz"
            row["label"] = int(study.label)
            rows.append(row)
        datalist = {
            "name": "medattr_explain sample cohort",
            "description": "Generated MNI152 brain studies (medattr.synthetic, 64^3 x 3 mm, [0, 1] "
            "intensities stored as 8-bit with scale slope/intercept); label 1 = lesion.",
            "seed": seed,
            "test": rows,
        }
        stage("datalist.json").write_text(json.dumps(datalist, indent=2) + "\n")
    return Path(out_dir) / "datalist.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m medattr.bundle.sample_data OUT_DIR", file=sys.stderr)
        return 2
    print(write_sample_data(args[0]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
