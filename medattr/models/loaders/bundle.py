"""MONAI bundle directories (model-zoo layout): ``models/model.ts``, or ``models/model.pt`` with
the network defined by ``configs/inference.json``'s ``network_def``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import Loaded, ModelLoader, register_loader
from medattr.models.loaders.torchscript import load_torchscript

__all__ = ["BundleLoader"]


@register_loader("bundle")
class BundleLoader(ModelLoader):
    """MONAI bundle directory (configs/ + models/)."""

    description = "MONAI bundle directory with models/model.ts, or models/model.pt + network_def"

    @classmethod
    def accepts(cls, path: Path) -> bool:
        return path.is_dir()

    def load(self, path: Path, device: torch.device) -> Loaded:
        return _load_bundle(path, device)


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
