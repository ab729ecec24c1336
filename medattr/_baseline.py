"""The baseline protocol shared by the baselines and the path methods.

A path method integrates from a baseline ``x'`` to the input ``x``; :class:`Baseline` is what
makes ``x'``. The protocol lives in this neutral module so that :mod:`medattr.attribution`
(which accepts any baseline) and :mod:`medattr.baselines` (which implements them) do not
import each other. Users import these names from :mod:`medattr.baselines`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from medattr.targets import BoundTarget

if TYPE_CHECKING:
    from medattr.registry import Setting

__all__ = [
    "Baseline",
    "BaselineContext",
    "BaselineResult",
    "BaselineSetup",
    "broadcast_baseline",
    "resolve_baselines",
]


@dataclass
class BaselineContext:
    """What a baseline may need beyond the inputs when it generates.

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
    """A baseline tensor and what its construction reports (JSON-able ``info``).

    ``masks`` holds volumes the construction decided on, ``(B, 1, *spatial)`` on the input's
    grid, by name (the anomaly mask of the mask-and-infill baselines): the explainer maps them
    to the source grid and the NIfTI writer writes each as ``<study>_<name>.nii.gz``.
    """

    baselines: Tensor
    info: dict[str, Any] = field(default_factory=dict)
    masks: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class BaselineSetup:
    """What building a registered baseline from settings may need (see
    :meth:`Baseline.from_settings`).

    Attributes
    ----------
    model
        The :class:`~medattr.models.LoadedModel` being explained (its spec, its paired VAE).
    preprocessor
        Maps volumes onto the model grid (for baselines given as volumes).
    device
        Where baselines are made.
    volume
        The study being explained (``None`` when only the files a baseline depends on are
        asked for, before any study is read).
    disease_class
        The classifier output that means "diseased" (guided counterfactuals).
    seed
        The run's seed.
    argument
        The part after ``:`` of a name such as ``file:PATH``.
    """

    model: Any = None
    preprocessor: Any = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    volume: Any = None
    disease_class: int = 1
    seed: int = 0
    argument: str | None = None


class Baseline(ABC):
    """A rule that makes a baseline ``x'`` for each input ``x``.

    Subclasses keep settings in ``__init__`` and implement :meth:`generate`; calling the object
    returns just the tensor. Registered baselines (``@medattr.baselines.register("name")``)
    also declare their ``settings`` (:class:`~medattr.registry.Setting`), may override
    :meth:`from_settings` when building needs more than passing the settings to ``__init__``,
    and :meth:`assets` when their output depends on files (weights).
    """

    name: str = "baseline"
    settings: ClassVar[tuple[Setting, ...]] = ()
    argument: ClassVar[str | None] = None
    """Set to a word (e.g. ``"PATH"``) for baselines named ``name:ARGUMENT``."""
    asset_labels: ClassVar[dict[str, str]] = {}
    """What each of :meth:`assets`' files is, for messages (``{"vae": "the healthy-only VAE"}``)."""

    @abstractmethod
    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        """Baselines of the same shape ``(B, C, *spatial)`` as ``inputs``."""

    def __call__(self, inputs: Tensor, context: BaselineContext | None = None) -> Tensor:
        return self.generate(inputs, context).baselines

    def describe(self) -> dict[str, Any]:
        """Name and settings, JSON-able, for manifests."""
        return {"name": self.name}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        """Build from the declared settings' values (by setting name).

        The default passes each declared setting to ``__init__`` under its ``param`` keyword.
        """
        kwargs = {s.keyword: settings[s.name] for s in cls.settings if s.name in settings}
        return cls(**kwargs)

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        """Files the baseline's output depends on, ``{label: path}`` (default: none)."""
        return {}


def seeded_generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    g.manual_seed(int(seed))
    return g


def broadcast_baseline(tensor: Tensor, inputs: Tensor) -> Tensor:
    """``tensor`` broadcast to the inputs' shape, dtype and device (a copy)."""
    t = tensor.to(device=inputs.device, dtype=inputs.dtype)
    try:
        return torch.broadcast_to(t, inputs.shape).clone()
    except RuntimeError:
        raise ValueError(
            f"baseline of shape {tuple(t.shape)} cannot be broadcast to the input shape "
            f"{tuple(inputs.shape)}"
        ) from None


def resolve_baselines(
    baselines: Baseline | Tensor | float | int | None,
    inputs: Tensor,
    context: BaselineContext | None = None,
) -> BaselineResult:
    """Turn any accepted baseline specification into a tensor of the inputs' shape."""
    if baselines is None:
        return BaselineResult(torch.zeros_like(inputs))
    if isinstance(baselines, Baseline):
        result = baselines.generate(inputs, context)
        if tuple(result.baselines.shape) != tuple(inputs.shape):
            raise ValueError(
                f"{type(baselines).__name__} returned shape {tuple(result.baselines.shape)}, "
                f"expected {tuple(inputs.shape)}"
            )
        result.info.setdefault("baseline", baselines.describe())
        return result
    if isinstance(baselines, bool):
        raise TypeError("baselines must be a tensor, a number, a Baseline or None, not a bool")
    if isinstance(baselines, int | float):
        return BaselineResult(
            torch.full_like(inputs, float(baselines)),
            {"baseline": {"name": "constant", "value": float(baselines)}},
        )
    if isinstance(baselines, Tensor):
        t = baselines.as_tensor() if hasattr(baselines, "as_tensor") else baselines
        return BaselineResult(broadcast_baseline(t, inputs))
    raise TypeError(
        f"baselines must be a tensor, a number, a Baseline or None; got {type(baselines).__name__}"
    )
