"""medattr: counterfactual path attribution for 3D medical imaging.

>>> from medattr import IntegratedGradients  # a drop-in for captum.attr.IntegratedGradients
>>> from medattr import Explainer, ExplainConfig, read_volume  # one study end to end
"""

from typing import Any

from medattr._version import __version__
from medattr.attribution import (
    ExpectedGradients,
    Explanation,
    IntegratedGradients,
    NoiseTunnel,
    Saliency,
    SmoothGrad,
    SplitIntegratedGradients,
)
from medattr.baselines import (
    ConstantBaseline,
    GaussianBlurBaseline,
    GaussianNoiseBaseline,
    UniformNoiseBaseline,
    ZeroBaseline,
)
from medattr.errors import (
    DicomSeriesError,
    InputError,
    MedattrError,
    ModelError,
    TargetError,
    VolumeError,
)
from medattr.io import read_nifti, read_volume, write_nifti
from medattr.targets import ClassTarget, SegmentationTarget
from medattr.volume import Volume

__all__ = [
    "ClassTarget",
    "ConstantBaseline",
    "DicomSeriesError",
    "ExpectedGradients",
    "ExplainConfig",
    "Explainer",
    "Explanation",
    "GaussianBlurBaseline",
    "GaussianNoiseBaseline",
    "InputError",
    "IntegratedGradients",
    "MedattrError",
    "ModelError",
    "NoiseTunnel",
    "Saliency",
    "SegmentationTarget",
    "SmoothGrad",
    "SplitIntegratedGradients",
    "StudyResult",
    "TargetError",
    "UniformNoiseBaseline",
    "Volume",
    "VolumeError",
    "ZeroBaseline",
    "__version__",
    "read_nifti",
    "read_volume",
    "write_nifti",
]

_LAZY = {"Explainer", "ExplainConfig", "StudyResult"}


def __getattr__(name: str) -> Any:
    # the explainer pulls in MONAI's transforms: imported on first use, not with medattr
    if name in _LAZY:
        import medattr.explain

        return getattr(medattr.explain, name)
    raise AttributeError(f"module 'medattr' has no attribute {name!r}")
