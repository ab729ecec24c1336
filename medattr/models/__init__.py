"""Models: their input contract (:class:`ModelSpec`), loading, and the shipped networks."""

from medattr.models.export import export_torchscript
from medattr.models.loading import (
    BUILTIN_MODELS,
    LoadedModel,
    builtin_model_path,
    file_sha256,
    load_model,
)
from medattr.models.spec import IntensitySpec, ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "IntensitySpec",
    "LoadedModel",
    "ModelSpec",
    "builtin_model_path",
    "export_torchscript",
    "file_sha256",
    "load_model",
]
