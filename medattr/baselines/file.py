"""A baseline read from a file: ``--baseline file:PATH``, a volume on the input's grid."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from medattr._baseline import Baseline, BaselineSetup
from medattr.baselines._registry import register
from medattr.baselines.classic import TensorBaseline
from medattr.errors import InputError, VolumeError

__all__ = ["VolumeFileBaseline"]


@register("file")
class VolumeFileBaseline(TensorBaseline):
    """A volume on the input's grid, read from file:PATH (NIfTI or DICOM) and preprocessed
    like the input.

    Built per study (its grid is checked against the study's); the file's SHA-256 is part of
    the cohort fingerprint.
    """

    argument = "PATH"
    per_study = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        from medattr.io import read_volume

        path = setup.argument
        if not path:
            raise InputError("the file baseline needs a path: --baseline file:PATH")
        if setup.volume is None or setup.preprocessor is None:
            raise InputError("the file baseline is built per study (it needs the study's grid)")
        other = read_volume(path)
        volume = setup.volume
        if other.spatial_shape != volume.spatial_shape or not np.allclose(
            other.affine, volume.affine, atol=1e-3
        ):
            raise VolumeError(
                f"the baseline volume's grid (shape {other.spatial_shape}) differs from the "
                f"input's (shape {volume.spatial_shape}) or its affine does; resample it onto "
                f"the input grid first",
                path,
            )
        tensor = setup.preprocessor.map_to_model(other).to(setup.device)
        return cls(tensor, name="file")

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        return {"baseline_file": setup.argument} if setup.argument else {}
