"""medattr: counterfactual path attribution for 3D medical imaging.

>>> from medattr import IntegratedGradients  # a drop-in for captum.attr.IntegratedGradients
"""

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
from medattr.io import read_nifti, write_nifti
from medattr.targets import ClassTarget, SegmentationTarget
from medattr.volume import Volume

__all__ = [
    "ClassTarget",
    "ConstantBaseline",
    "DicomSeriesError",
    "ExpectedGradients",
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
    "TargetError",
    "UniformNoiseBaseline",
    "Volume",
    "VolumeError",
    "ZeroBaseline",
    "__version__",
    "read_nifti",
    "write_nifti",
]
