"""Finding and opening a shipped or user generative model (VAE, inpainter) saved as
TorchScript: ``builtin:NAME``, a file, or a bundle directory holding ``models/<file>``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models import ModelSpec
from medattr.models.loading import builtin_model_path, load_torchscript

__all__ = ["open_scripted", "spec_of"]


def open_scripted(
    path: str | os.PathLike[str], what: str, bundle_file: str, device: str | torch.device
) -> tuple[Any, dict[str, Any], Path]:
    """The module (eval mode), its stored metadata and the file it came from.

    Raises
    ------
    ModelError
        If nothing is there, a bundle lacks ``models/<bundle_file>``, or the file is not
        TorchScript.
    """
    name = str(path)
    file = builtin_model_path(name.split(":", 1)[1]) if name.startswith("builtin:") else Path(name)
    if not file.exists():
        raise ModelError(f"{what} not found", file)
    if file.is_dir():
        file = file / "models" / bundle_file
        if not file.exists():
            raise ModelError(f"bundle has no models/{bundle_file}", file.parent.parent)
    module, meta = load_torchscript(file, torch.device(device))
    module.eval()
    return module, meta, file


def spec_of(meta: dict[str, Any], file: Path) -> ModelSpec:
    """The :class:`ModelSpec` stored with the model (an empty one if none was)."""
    stored = meta.get("medattr")
    return ModelSpec.from_dict(stored, str(file)) if isinstance(stored, dict) else ModelSpec()
