"""The model-loader registry (its own module so that loader modules can import it while the
package initialises)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medattr.registry import Registry

__all__ = ["LOADERS", "Loaded", "ModelLoader", "register_loader"]

Loaded = tuple[torch.nn.Module, dict[str, Any], Path]
"""What a loader returns: the network on its device, the metadata that came with it (``{}``
if none), and the file whose SHA-256 identifies the weights."""


class ModelLoader:
    """Base of the model loaders, one per model format.

    Subclasses implement :meth:`accepts` (does this path look like my format?) and
    :meth:`load`; they are tried by decreasing ``priority``, then in registration order.
    """

    priority = 0
    """Loaders that claim broadly (a fallback) set a lower priority."""
    description = ""
    """What the format is, for messages (``"TorchScript file"``)."""

    @classmethod
    def accepts(cls, path: Path) -> bool:
        raise NotImplementedError

    def load(
        self, path: Path, device: torch.device
    ) -> tuple[torch.nn.Module, dict[str, Any], Path]:
        """``(module, metadata, weights_path)``: the network on ``device``, the metadata that
        came with it (``{}`` if none), and the file whose SHA-256 identifies the weights."""
        raise NotImplementedError


LOADERS: Registry[ModelLoader] = Registry(
    "model format", "medattr.models", scan=("medattr.models.loaders",)
)
"""Every model loader by format name."""

register_loader = LOADERS.register
