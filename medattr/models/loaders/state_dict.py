"""State-dict checkpoints (``.pt`` / ``.pth``) with the network named in the model spec
(``network``: a MONAI config such as ``{"_target_": "monai.networks.nets.UNet", ...}``)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import Loaded, ModelLoader, register_loader
from medattr.models.loaders.bundle import load_state_dict

__all__ = ["StateDictLoader"]


def _is_torchscript(path: Path) -> bool:
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


@register_loader("state-dict")
class StateDictLoader(ModelLoader):
    """State-dict checkpoint (.pt/.pth from torch.save) plus the network in the model spec."""

    description = (
        "state-dict checkpoint (torch.save of model.state_dict()) with the network given in "
        "--model-spec ('network': a MONAI config with _target_), or in a bundle's network_def"
    )
    priority = -10

    @classmethod
    def accepts(cls, path: Path) -> bool:
        return path.is_file() and zipfile.is_zipfile(path) and not _is_torchscript(path)

    def load(self, path: Path, device: torch.device, spec: Any = None) -> Loaded:
        network = getattr(spec, "network", None)
        if not network:
            raise ModelError(
                "is a PyTorch checkpoint without its network (a state dict): give the network "
                'in --model-spec (\'network\': {"_target_": "monai.networks.nets.UNet", ...}), '
                "or a MONAI bundle directory with network_def, or export the model with "
                "torch.jit.save or torch.export.save",
                path,
            )
        from monai.bundle import ConfigParser

        try:
            net = ConfigParser({"network": network}).get_parsed_content("network")
        except Exception as exc:
            raise ModelError(
                f"the spec's network cannot be built ({type(exc).__name__}: {exc})", path
            ) from exc
        if not isinstance(net, torch.nn.Module):
            raise ModelError(f"the spec's network is a {type(net).__name__}, not a module", path)
        return Loaded(load_state_dict(net, path, device, path.parent), {}, path)
