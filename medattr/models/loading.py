"""Load a model for attribution: a TorchScript file, a MONAI bundle directory, or a built-in."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models.spec import ModelSpec

__all__ = [
    "BUILTIN_MODELS",
    "LoadedModel",
    "builtin_model_path",
    "file_sha256",
    "load_model",
    "load_torchscript",
]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"

BUILTIN_MODELS = {
    "mni": "mni_classifier.ts",
    "mni-vae": "mni_vae.ts",
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
    """

    module: torch.nn.Module
    spec: ModelSpec
    path: str
    kind: str
    sha256: str
    metadata: dict[str, Any]

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


def load_torchscript(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a TorchScript file and the ``metadata.json`` stored in it (``{}`` if none)."""
    if not zipfile.is_zipfile(path):
        raise ModelError("not a TorchScript file (not a zip archive)", path)
    extra = {"metadata.json": ""}
    try:
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError/ValueError for foreign zips
        raise ModelError(
            f"cannot be loaded as TorchScript ({type(exc).__name__}: {exc})", path
        ) from exc
    meta: dict[str, Any] = {}
    if extra["metadata.json"]:
        try:
            meta = json.loads(extra["metadata.json"])
        except json.JSONDecodeError as exc:
            raise ModelError(f"its metadata.json is not valid JSON ({exc})", path) from exc
    return module, meta


def _load_bundle(root: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    from monai.bundle import ConfigParser

    meta_file = root / "configs" / "metadata.json"
    meta: dict[str, Any] = {}
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
    ts = root / "models" / "model.ts"
    if ts.exists():
        module, ts_meta = load_torchscript(ts, device)
        return module, {**ts_meta, **meta}, ts
    weights = root / "models" / "model.pt"
    config = next(
        (
            root / "configs" / f"inference.{ext}"
            for ext in ("json", "yaml", "yml")
            if (root / "configs" / f"inference.{ext}").exists()
        ),
        None,
    )
    if config is None or not weights.exists():
        raise ModelError(
            "not a usable MONAI bundle: expected models/model.ts, or models/model.pt with "
            "configs/inference.json defining network_def",
            root,
        )
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(root)
    if "network_def" not in parser:
        raise ModelError(f"{config.name} defines no 'network_def'", root)
    try:
        net = parser.get_parsed_content("network_def")
        state = torch.load(weights, map_location=device, weights_only=True)
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        net.load_state_dict(state)
    except Exception as exc:
        raise ModelError(
            f"cannot build the bundle's network ({type(exc).__name__}: {exc})", root
        ) from exc
    return net.to(device), meta, weights


def load_model(
    model: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    spec: ModelSpec | str | os.PathLike[str] | None = None,
) -> LoadedModel:
    """Load a TorchScript file, a MONAI bundle directory, or ``builtin:<name>``.

    The module is put in eval mode on ``device``. Its :class:`ModelSpec` comes from ``spec`` if
    given (an object or a JSON file), else from the model's metadata.

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
    if path.is_dir():
        module, meta, weights = _load_bundle(path, dev)
        kind = "bundle"
    else:
        module, meta = load_torchscript(path, dev)
        weights, kind = path, "torchscript"
    module.eval()
    if isinstance(spec, ModelSpec):
        model_spec = spec
    elif spec is not None:
        model_spec = ModelSpec.from_json(spec)
    else:
        model_spec = _spec_from_metadata(meta, str(path))
    return LoadedModel(module, model_spec, str(path), kind, file_sha256(weights), meta)
