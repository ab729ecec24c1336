"""Load a model for attribution: a TorchScript file, a MONAI bundle directory, or a built-in."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import LOADERS
from medattr.models.loaders.torchscript import load_torchscript
from medattr.models.spec import ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "LoadedModel",
    "accepted_formats",
    "asset_sha256",
    "builtin_model_path",
    "file_sha256",
    "from_module",
    "load_model",
    "load_torchscript",
    "model_format",
    "module_sha256",
]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"

BUILTIN_MODELS = {
    "mni": "mni_classifier.ts",
    "mni-vae": "mni_vae.ts",
    "mni-inpainter": "mni_inpainter.ts",
    "mni-normative": "mni_normative.npz",
    "phantom": "phantom_classifier.ts",
}
"""``builtin:<name>`` model files shipped in ``medattr/assets``."""


def builtin_model_path(name: str) -> Path:
    """Path of a shipped model, e.g. ``builtin_model_path("phantom")``."""
    try:
        return _ASSETS / BUILTIN_MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown built-in model {name!r}; available: {', '.join(sorted(BUILTIN_MODELS))}"
        ) from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class LoadedModel:
    """A model ready for attribution (eval mode, on its device) and what is known about it.

    Attributes
    ----------
    module
        The callable network.
    spec
        Its input/output contract.
    path
        What was loaded (file or bundle directory).
    kind
        ``"torchscript"``, ``"bundle"`` or ``"module"``.
    sha256
        Hash of the weights file.
    metadata
        The raw ``metadata.json`` contents, if any.
    preprocessing, image_key
        The model's own preprocessing (a MONAI bundle's transforms, over ``image_key``), used
        instead of the spec's geometry and intensity fields; ``None`` for the spec's.
    """

    module: torch.nn.Module
    spec: ModelSpec
    path: str
    kind: str
    sha256: str
    metadata: dict[str, Any]
    preprocessing: list[Any] | None = None
    image_key: str = "image"

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "sha256": self.sha256,
            "name": self.spec.name,
            "spec": self.spec.to_dict(),
        }


def _spec_from_metadata(meta: dict[str, Any], source: str) -> ModelSpec:
    if isinstance(meta.get("medattr"), dict):
        return ModelSpec.from_dict(meta["medattr"], source)
    # a MONAI bundle without medattr's entry: take what network_data_format says
    spec = ModelSpec(orientation=None, default_target="predicted")
    fmt = meta.get("network_data_format", {})
    image = fmt.get("inputs", {}).get("image", {})
    if isinstance(image.get("num_channels"), int):
        spec.in_channels = image["num_channels"]
    out = fmt.get("outputs", {}).get("pred", {})
    names = out.get("channel_def")
    if isinstance(names, dict) and names:
        spec.class_names = [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
    if out.get("type") == "image":
        spec.task = "segmentation"
    spec.name = str(meta.get("name", ""))
    return spec


def asset_sha256(name: str | os.PathLike[str] | None) -> str | None:
    """SHA-256 identifying a file a result depends on: ``builtin:NAME``, a file, or a directory
    (a bundle: the digest of every file in it by relative path); ``None`` if there is none."""
    if not name:
        return None
    text = str(name)
    try:
        path = (
            builtin_model_path(text.split(":", 1)[1]) if text.startswith("builtin:") else Path(text)
        )
    except ModelError:
        return None
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            rel = f.relative_to(path)
            if f.is_file() and not any(part.startswith(".") for part in rel.parts):
                h.update(f"{rel.as_posix()}:{file_sha256(f)};".encode())
        return h.hexdigest()
    return None


def module_sha256(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state (parameter and buffer names, dtypes, shapes and values)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, t in module.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def from_module(
    module: torch.nn.Module,
    device: str | torch.device = "cpu",
    spec: ModelSpec | str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """A :class:`LoadedModel` around an ``nn.Module`` already in memory (moved to ``device``,
    eval mode); its identity is the SHA-256 of its state."""
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was requested but CUDA is not available on this machine")
    module = module.to(dev)
    if isinstance(spec, ModelSpec):
        model_spec = spec
    elif spec is not None:
        model_spec = ModelSpec.from_json(spec)
    else:
        model_spec = ModelSpec(name=type(module).__name__)
    return LoadedModel(
        module, model_spec, f"<{type(module).__name__}>", "module", module_sha256(module), {}
    )


def model_format(path: Path) -> str:
    """The name of the first registered loader that accepts ``path``.

    Raises
    ------
    ModelError
        Naming the file and the accepted formats, if none does.
    """
    loaders = sorted(LOADERS.classes().items(), key=lambda item: -item[1].priority)
    for name, cls in loaders:
        if cls.accepts(path):
            return name
    raise ModelError(f"not a model file medattr can load; it loads {accepted_formats()}", path)


def accepted_formats() -> str:
    """The registered model formats, for messages."""
    return "; ".join(
        f"{name} ({cls.description})" if cls.description else name
        for name, cls in LOADERS.classes().items()
    )


def load_model(
    model: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    spec: ModelSpec | str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a model file or directory (TorchScript, ``torch.export`` ``.pt2``, a state-dict
    checkpoint with the network in ``spec``, a MONAI bundle) or ``builtin:<name>``.

    The module is put in eval mode on ``device``. Its :class:`ModelSpec` comes from ``spec`` if
    given (an object or a JSON file), else from the model's metadata; a MONAI bundle's own
    preprocessing and sliding-window inferer come along.

    Raises
    ------
    ModelError
        If the path is missing or the file is not a loadable model.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' was requested but CUDA is not available on this machine")
    name = str(model)
    if name.startswith("builtin:"):
        path = builtin_model_path(name.split(":", 1)[1])
    else:
        path = Path(name)
    if not path.exists():
        raise ModelError("model not found", path)
    given = spec if isinstance(spec, ModelSpec) or spec is None else ModelSpec.from_json(spec)
    kind = model_format(path)
    parts = LOADERS.get(kind)().load(path, dev, given)
    set_eval(parts.module)
    model_spec = given if given is not None else _spec_from_metadata(parts.metadata, str(path))
    if model_spec.inferer is None and parts.inferer is not None:
        from dataclasses import replace

        from medattr.models.inferers import inferer_from_monai

        model_spec = replace(model_spec, inferer=inferer_from_monai(parts.inferer))
    return LoadedModel(
        parts.module,
        model_spec,
        str(path),
        kind,
        file_sha256(parts.weights),
        parts.metadata,
        preprocessing=parts.preprocessing,
        image_key=parts.image_key,
    )


def set_eval(module: torch.nn.Module) -> None:
    """Eval mode where the module supports it (a ``torch.export`` module has no modes)."""
    try:
        module.eval()
    except (NotImplementedError, RuntimeError):
        pass
