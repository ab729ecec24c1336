"""Path attribution on the GPU or CPU: Integrated Gradients, SmoothGrad, Split IG and Expected
Gradients over one memory-planned engine, with Captum's call shape; one registered class per
method name (``@medattr.attribution.register("name")``)."""

from medattr.attribution._base import Explanation, PathAttribution, PathCall
from medattr.attribution._registry import METHODS, register
from medattr.attribution.adaptive import (
    AdaptiveResult,
    AdaptiveRule,
    PathSet,
    adaptive_path_integral,
)
from medattr.attribution.engine import PathEngine
from medattr.attribution.expected_gradients import ExpectedGradients
from medattr.attribution.integrated_gradients import IntegratedGradients
from medattr.attribution.jobs import AMP, EngineResult, PathJobs
from medattr.attribution.noise_tunnel import NoiseTunnel
from medattr.attribution.quadrature import Quadrature, quadrature
from medattr.attribution.saliency import Saliency
from medattr.attribution.smoothgrad import NoiseType, SmoothGrad, draw_noise
from medattr.attribution.split_ig import SplitIGDetails, SplitIntegratedGradients

__all__ = [
    "AMP",
    "METHODS",
    "AdaptiveResult",
    "AdaptiveRule",
    "EngineResult",
    "ExpectedGradients",
    "Explanation",
    "IntegratedGradients",
    "NoiseTunnel",
    "NoiseType",
    "PathAttribution",
    "PathCall",
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
    "get",
    "names",
    "quadrature",
    "register",
]


names = METHODS.names
"""Every available attribution method name (built-in and plug-in)."""
get = METHODS.get
"""The method class registered under a name (an :class:`~medattr.registry.UnknownNameError`,
listing the available names, if none is)."""
