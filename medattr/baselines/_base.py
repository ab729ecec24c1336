"""The baseline protocol shared by classic and counterfactual baselines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from medattr.targets import BoundTarget

__all__ = ["Baseline", "BaselineContext", "BaselineResult"]


@dataclass
class BaselineContext:
    """What a baseline may need beyond the inputs.

    Attributes
    ----------
    spacing
        Voxel size in mm along each spatial axis of the model input (for blur in mm).
    forward_func
        The model, for baselines that consult it (classifier-guided counterfactuals).
    target
        The bound target (see :func:`medattr.targets.bind_target`).
    additional_forward_args
        Extra model arguments, as given to the attribution method.
    """

    spacing: Sequence[float] | None = None
    forward_func: Callable[..., Tensor] | None = None
    target: BoundTarget | None = None
    additional_forward_args: tuple[Any, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class BaselineResult:
    """A baseline tensor and what its construction reports (JSON-able ``info``)."""

    baselines: Tensor
    info: dict[str, Any] = field(default_factory=dict)


class Baseline(ABC):
    """A rule that makes a baseline ``x'`` for each input ``x``.

    Subclasses keep settings in ``__init__`` and implement :meth:`generate`; calling the object
    returns just the tensor.
    """

    name: str = "baseline"

    @abstractmethod
    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        """Baselines of the same shape ``(B, C, *spatial)`` as ``inputs``."""

    def __call__(self, inputs: Tensor, context: BaselineContext | None = None) -> Tensor:
        return self.generate(inputs, context).baselines

    def describe(self) -> dict[str, Any]:
        """Name and settings, JSON-able, for manifests."""
        return {"name": self.name}


def _seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    g.manual_seed(int(seed))
    return g
