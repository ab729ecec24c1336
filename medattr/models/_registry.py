"""The model-loader registry (its own module so that loader modules can import it while the
package initialises)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medattr.registry import Registry

__all__ = ["LOADERS", "Loaded", "ModelLoader", "register_loader"]


@dataclass
class Loaded:
    """What a loader returns.

    Attributes
    ----------
    module
        The network on its device.
    metadata
        The metadata that came with it (``{}`` if none); a ``"medattr"`` entry is its spec.
    weights
        The file whose SHA-256 identifies the weights.
    preprocessing
        The model's own preprocessing (a MONAI bundle's ``preprocessing`` transforms, keyed by
        ``image_key``), to apply instead of the spec's, or ``None``.
    inferer
        The model's own inferer (a MONAI bundle's ``inferer`` object), or ``None``.
    """

    module: torch.nn.Module
    metadata: dict[str, Any]
    weights: Path
    preprocessing: list[Any] | None = None
    image_key: str = "image"
    inferer: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


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

    def load(self, path: Path, device: torch.device, spec: Any = None) -> Loaded:
        """The network on ``device``, its metadata and its weights file (see :class:`Loaded`);
        ``spec`` is the :class:`~medattr.models.ModelSpec` given by the user, if any (a
        state-dict checkpoint takes its network definition from it)."""
        raise NotImplementedError


LOADERS: Registry[ModelLoader] = Registry(
    "model format", "medattr.models", scan=("medattr.models.loaders",)
)
"""Every model loader by format name."""

register_loader = LOADERS.register
