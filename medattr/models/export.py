"""Save a network as TorchScript with medattr's model spec, the format ``ckpt_export`` writes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from monai.data import save_net_with_metadata

from medattr._fs import atomic_path
from medattr.models.loading import file_sha256
from medattr.models.spec import ModelSpec

__all__ = ["export_torchscript"]


def export_torchscript(
    net: torch.nn.Module,
    spec: ModelSpec,
    path: str | os.PathLike[str],
    *,
    example: torch.Tensor | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Script (or trace, given ``example``) ``net`` and save it with metadata; returns sha256.

    The metadata JSON stored in the file holds ``metadata`` (e.g. a bundle's
    ``network_data_format``) plus ``"medattr": spec.to_dict()``, which :func:`load_model` reads.
    """
    net = net.eval().cpu()
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; MONAI uses it
        warnings.simplefilter("ignore", DeprecationWarning)
        jit = torch.jit.trace(net, example) if example is not None else torch.jit.script(net)
    meta = dict(metadata or {})
    meta["medattr"] = spec.to_dict()
    dest = Path(path)
    with atomic_path(dest, suffix=".ts") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        save_net_with_metadata(
            jit, str(tmp), include_config_vals=False, append_timestamp=False, meta_values=meta
        )
    return file_sha256(dest)
