"""``--format nifti``: the attribution and the baseline on the source grid, source affine."""

from __future__ import annotations

from typing import Any

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
        return outputs
