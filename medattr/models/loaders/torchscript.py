"""TorchScript files (as MONAI's ``ckpt_export`` writes them), with their ``metadata.json``."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import Loaded, ModelLoader, register_loader

__all__ = ["TorchScriptLoader", "load_torchscript"]


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


@register_loader("torchscript")
class TorchScriptLoader(ModelLoader):
    """TorchScript file (.ts/.pt zip archive as torch.jit.save writes it)."""

    description = "TorchScript file, e.g. from torch.jit.save or MONAI's ckpt_export"
    priority = -100  # the fallback for files

    @classmethod
    def accepts(cls, path: Path) -> bool:
        # the fallback for files: what is not TorchScript gets load_torchscript's diagnosis
        return path.is_file()

    def load(self, path: Path, device: torch.device, spec: Any = None) -> Loaded:
        try:
            module, meta = load_torchscript(path, device)
        except ModelError as exc:  # the fallback for files: say what else would have worked
            from medattr.models.loading import accepted_formats

            raise ModelError(f"{exc.problem}; medattr loads {accepted_formats()}", path) from exc
        return Loaded(module, meta, path)
