"""Models: their input contract (:class:`ModelSpec`), loading (one registered loader per model
format, :func:`register_loader`), and the shipped networks."""

from medattr.models._registry import LOADERS, ModelLoader, register_loader
from medattr.models.export import export_torchscript
from medattr.models.loading import (
    BUILTIN_MODELS,
    LoadedModel,
    builtin_model_path,
    file_sha256,
    load_model,
    model_format,
)
from medattr.models.spec import IntensitySpec, ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "LOADERS",
    "IntensitySpec",
    "LoadedModel",
    "ModelLoader",
    "ModelSpec",
    "builtin_model_path",
    "export_torchscript",
    "file_sha256",
    "load_model",
    "model_format",
    "register_loader",
]
