"""MONAI bundle directories (model-zoo layout): ``models/model.ts``, or ``models/model.pt`` with
the network defined by ``configs/inference.json``'s ``network_def``; the bundle's own
``preprocessing`` and ``inferer`` come along, and its ``scripts/`` is importable."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import Loaded, ModelLoader, register_loader
from medattr.models.loaders.torchscript import load_torchscript

__all__ = ["SKIPPED_TRANSFORMS", "BundleLoader"]

SKIPPED_TRANSFORMS = (
    "LoadImage",
    "EnsureChannelFirst",
    "AddChannel",
    "EnsureType",
    "ToTensor",
    "ToNumpy",
    "CastToType",
    "ToDevice",
    "Identity",
    "SqueezeDim",
)
"""Transforms of a bundle's preprocessing that medattr's own reading replaces (reading the file,
channel first, tensor type): medattr reads NIfTI and DICOM with their geometry itself."""


@register_loader("bundle")
class BundleLoader(ModelLoader):
    """MONAI bundle directory (configs/ + models/)."""

    description = "MONAI bundle directory with models/model.ts, or models/model.pt + network_def"

    @classmethod
    def accepts(cls, path: Path) -> bool:
        return path.is_dir()

    def load(self, path: Path, device: torch.device, spec: Any = None) -> Loaded:
        return load_bundle(path, device)


def _config_file(root: Path) -> Path | None:
    for ext in ("json", "yaml", "yml"):
        candidate = root / "configs" / f"inference.{ext}"
        if candidate.exists():
            return candidate
    return None


def _parser(root: Path, config: Path) -> Any:
    from monai.bundle import ConfigParser

    if str(root) not in sys.path:
        # bundles import their own code as `scripts.*` relative to the bundle root
        sys.path.insert(0, str(root))
    parser = ConfigParser()
    try:
        parser.read_config(str(config))
    except Exception as exc:
        raise ModelError(
            f"{config.name} cannot be read ({type(exc).__name__}: {exc})", root
        ) from exc
    parser["bundle_root"] = str(root)
    return parser


def _parsed(parser: Any, key: str, root: Path) -> Any:
    if key not in parser:
        return None
    try:
        return parser.get_parsed_content(key)
    except Exception as exc:
        raise ModelError(
            f"the bundle's {key!r} cannot be built ({type(exc).__name__}: {exc})", root
        ) from exc


def _transforms(preprocessing: Any, root: Path) -> tuple[list[Any] | None, str]:
    """The bundle's preprocessing transforms (loaders and type casts removed) and image key."""
    if preprocessing is None:
        return None, "image"
    from monai.transforms import Compose

    items = (
        list(preprocessing.flatten().transforms)
        if isinstance(preprocessing, Compose)
        else [preprocessing]
    )
    key = "image"
    kept = []
    for t in items:
        name = type(t).__name__.removesuffix("d")
        keys = list(getattr(t, "keys", ()) or ())
        if name == "LoadImage" and keys:
            key = str(keys[0])
        if name in SKIPPED_TRANSFORMS:
            continue
        kept.append(t)
    return kept, key


def load_bundle(root: Path, device: torch.device) -> Loaded:
    """Load a bundle: its network (TorchScript or state dict + ``network_def``), metadata,
    preprocessing and inferer."""
    meta_file = root / "configs" / "metadata.json"
    meta: dict[str, Any] = {}
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"configs/metadata.json is not readable JSON ({exc})", root) from exc
    config = _config_file(root)
    parser = _parser(root, config) if config is not None else None
    ts = root / "models" / "model.ts"
    weights = root / "models" / "model.pt"
    if ts.exists():
        module, ts_meta = load_torchscript(ts, device)
        meta, weights = {**ts_meta, **meta}, ts
    else:
        if parser is None or not weights.exists():
            raise ModelError(
                "not a usable MONAI bundle: expected models/model.ts, or models/model.pt with "
                "configs/inference.json defining network_def",
                root,
            )
        if "network_def" not in parser:
            raise ModelError(
                f"{config.name if config else 'inference.json'} defines no 'network_def'", root
            )
        net = _parsed(parser, "network_def", root)
        module = load_state_dict(net, weights, device, root)
    loaded = Loaded(module, meta, weights)
    if parser is not None and "medattr" not in meta:
        # a model-zoo bundle: its own preprocessing and inferer define what the network sees
        loaded.preprocessing, loaded.image_key = _transforms(
            _parsed(parser, "preprocessing", root), root
        )
        loaded.inferer = _parsed(parser, "inferer", root)
    return loaded


def load_state_dict(
    net: torch.nn.Module, weights: Path, device: torch.device, where: Path
) -> torch.nn.Module:
    """``net`` with the state dict in ``weights`` (a bare state dict, or under ``"model"`` /
    ``"state_dict"`` as training checkpoints keep it)."""
    try:
        state = torch.load(weights, map_location=device, weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{weights.name} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})",
            where,
        ) from exc
    for key in ("model", "state_dict", "network"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ModelError(f"{weights.name} holds a {type(state).__name__}, not a state dict", where)
    try:
        net.load_state_dict(state)
    except Exception as exc:
        raise ModelError(
            f"the weights in {weights.name} do not fit the network ({type(exc).__name__}: {exc})",
            where,
        ) from exc
    return net.to(device)
