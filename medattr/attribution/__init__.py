"""Path attribution on the GPU or CPU: Integrated Gradients, SmoothGrad, Split IG and Expected
Gradients over one memory-planned engine, with Captum's call shape."""

from medattr.attribution._base import Explanation, PathAttribution
from medattr.attribution.adaptive import (
    AdaptiveResult,
    AdaptiveRule,
    PathSet,
    adaptive_path_integral,
)
from medattr.attribution.engine import AMP, EngineResult, PathEngine, PathJobs
from medattr.attribution.expected_gradients import ExpectedGradients
from medattr.attribution.integrated_gradients import IntegratedGradients
from medattr.attribution.quadrature import Quadrature, quadrature
from medattr.attribution.smoothgrad import NoiseTunnel, NoiseType, Saliency, SmoothGrad, draw_noise
from medattr.attribution.split_ig import SplitIGDetails, SplitIntegratedGradients

__all__ = [
    "AMP",
    "AdaptiveResult",
    "AdaptiveRule",
    "EngineResult",
    "ExpectedGradients",
    "Explanation",
    "IntegratedGradients",
    "NoiseTunnel",
    "NoiseType",
    "PathAttribution",
    "PathEngine",
    "PathJobs",
    "PathSet",
    "Quadrature",
    "Saliency",
    "SmoothGrad",
    "SplitIGDetails",
    "SplitIntegratedGradients",
    "adaptive_path_integral",
    "draw_noise",
    "quadrature",
]
