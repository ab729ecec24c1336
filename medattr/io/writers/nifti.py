"""``--format nifti``: the attribution, the baseline and any mask the baseline made (the
anomaly mask) on the source grid, source affine."""

from __future__ import annotations

from typing import Any

import numpy as np

from medattr.io.nifti import write_nifti
from medattr.io.writers import Stage, StudyOutput, Writer, register_writer

__all__ = ["NiftiWriter"]


@register_writer("nifti")
class NiftiWriter(Writer):
    """NIfTI: attribution (and baseline, in model units) on the source grid, source affine."""

    def write(self, result: StudyOutput, stage: Stage) -> dict[str, Any]:
        vol = result.volume
        method = result.explanation.method
        images = [
            ("attribution_nifti", "attr", result.attribution, f"{method} attribution"),
            (
                "baseline_nifti",
                "baseline",
                result.baseline_source,
                f"baseline ({result.config.baseline}, model units)",
            ),
        ]
        outputs: dict[str, Any] = {}
        for key, suffix, array, what in images:
            if array is None:
                continue
            fname = f"{vol.name}_{suffix}.nii.gz"
            write_nifti(stage(fname), array, vol.affine, like=vol, description=f"medattr {what}")
            outputs[key] = fname
        for name, mask in getattr(result, "baseline_masks", {}).items():
            fname = f"{vol.name}_{name}.nii.gz"
            write_nifti(
                stage(fname),
                mask.astype(np.uint8),
                vol.affine,
                like=vol,
                description=f"medattr {name.replace('_', ' ')} ({result.config.baseline})",
            )
            outputs[f"{name}_nifti"] = fname
        for source, array in getattr(result, "channels", ()):
            fname = f"{vol.name}_attr_{source.name}.nii.gz"
            same = source.shape == vol.spatial_shape and np.allclose(source.affine, vol.affine)
            write_nifti(
                stage(fname),
                array,
                source.affine,
                like=vol if same else None,
                description=f"medattr {method} attribution, channel {source.name}",
            )
            outputs[f"attribution_nifti_{source.name}"] = fname
        outputs["mapping"] = {"nifti": "adjoint"}
        return outputs
