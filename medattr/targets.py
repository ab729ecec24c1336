"""What scalar is explained: a class logit or probability, or a region of a segmentation.

A *target* turns the model output for a batch of path points into one scalar per point. It
is bound once per attribution call to the model's output at the inputs (that is where
``"predicted"`` classes and predicted segmentation masks come from); the bound target is then
called on every chunk of path points together with the index of the input each point belongs
to.

Accepted target specifications (``TargetLike``):

- ``None``: the output is already one scalar per sample (shape ``(N,)`` or ``(N, 1)``);
- an ``int`` class index, or a ``tuple`` index into a multi-dimensional output (Captum);
- a list / 1D tensor with one of those per sample;
- ``"predicted"``: the arg-max class at the input;
- a :class:`Target` instance, e.g. :class:`ClassTarget` with ``activation="softmax"``, or
  :class:`SegmentationTarget`;
- any other callable ``fn(output) -> Tensor of shape (N,)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any, Union

import torch
from torch import Tensor

from medattr.errors import TargetError
from medattr.options import parse_option

__all__ = [
    "Activation",
    "BoundTarget",
    "CallableTarget",
    "ClassTarget",
    "RegionTarget",
    "SegmentationTarget",
    "Target",
    "TargetLike",
    "bind_target",
    "class_probabilities",
    "disease_probability",
]


class Activation(str, Enum):
    """Applied to the model output before selection."""

    LOGIT = "logit"
    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


def _activate(output: Tensor, activation: Activation, channel_dim: int = 1) -> Tensor:
    if activation is Activation.SOFTMAX:
        return torch.softmax(output.float(), dim=channel_dim)
    if activation is Activation.SIGMOID:
        return torch.sigmoid(output.float())
    return output


def class_probabilities(output: Tensor) -> Tensor:
    """Class probabilities ``(N, K)`` of a classifier output ``(N, K)``: the softmax over the
    classes, or for a single-logit output ``(N, 1)`` the sigmoid (probability of the positive
    class).

    Examples
    --------
    >>> class_probabilities(torch.tensor([[0.0]]))
    tensor([[0.5000]])
    """
    out = output.float()
    if out.dim() != 2:
        raise TargetError(f"expected a classifier output (N, classes), got {tuple(out.shape)}")
    return torch.sigmoid(out) if out.shape[1] == 1 else torch.softmax(out, 1)


def disease_probability(output: Tensor, disease_class: int = 1) -> Tensor:
    """Probability ``(N,)`` of the class ``disease_class`` from a classifier output ``(N, K)``
    (for a single-logit output, the sigmoid of that logit whatever ``disease_class`` says).

    Examples
    --------
    >>> disease_probability(torch.tensor([[0.0, 0.0]]), 1)
    tensor([0.5000])
    """
    probs = class_probabilities(output)
    return probs[:, 0] if probs.shape[1] == 1 else probs[:, int(disease_class)]


BoundTarget = Callable[[Tensor, Tensor], Tensor]
"""``(output of N points, index of each point's input (N,)) -> Tensor (N,)``."""


class Target(ABC):
    """A rule that reduces model output to one scalar per sample."""

    @abstractmethod
    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        """Resolve per-sample choices from the output at the inputs (shape ``(B, ...)``)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for manifests."""
        return {"type": type(self).__name__}


def _check_scalar_per_point(values: Tensor, n: int, what: str) -> Tensor:
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != n:
        raise TargetError(
            f"{what} must give one scalar per sample, i.e. shape ({n},), but it gives shape "
            f"{tuple(values.shape)}; choose a class index for classifier outputs or a "
            f"SegmentationTarget for segmentation outputs"
        )
    return values


class ClassTarget(Target):
    """A class of a classifier output ``(N, num_classes)`` (or any index into ``(N, ...)``).

    Parameters
    ----------
    index
        Class index; a tuple indexes a multi-dimensional output; a sequence gives one index per
        sample; ``"predicted"`` picks each sample's arg-max class at the input.
    activation
        ``"logit"`` (default; the raw output), ``"softmax"`` or ``"sigmoid"`` probabilities.

    Examples
    --------
    >>> t = ClassTarget(1, activation="softmax").bind(torch.zeros(2, 3))
    >>> t(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([0]))
    tensor([0.3333])
    """

    def __init__(
        self,
        index: int | tuple[int, ...] | Sequence[int | tuple[int, ...]] | Tensor | str,
        activation: str | Activation = Activation.LOGIT,
    ) -> None:
        self.activation = parse_option(Activation, activation, "activation")
        if isinstance(index, str) and index != "predicted":
            raise TargetError(
                f"target must be an int, a sequence of ints or 'predicted'; got {index!r}"
            )
        self.index = index

    def describe(self) -> dict[str, Any]:
        idx = self.index
        if isinstance(idx, Tensor):
            idx = idx.tolist()
        return {"type": "class", "index": idx, "activation": self.activation.value}

    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        batch = output_at_inputs.shape[0]
        out = output_at_inputs
        if out.ndim < 2:
            raise TargetError(
                f"a class target needs an output of shape (N, classes); the model gives "
                f"{tuple(out.shape)}; use target=None for scalar outputs"
            )
        per_sample: list[tuple[int, ...]]
        if isinstance(self.index, str):  # "predicted"
            flat = out.reshape(batch, -1).argmax(dim=1)
            per_sample = [
                tuple(int(v) for v in torch.unravel_index(f, out.shape[1:])) for f in flat
            ]
        elif isinstance(self.index, int | tuple) and not isinstance(self.index, bool):
            idx = self.index if isinstance(self.index, tuple) else (self.index,)
            per_sample = [tuple(int(i) for i in idx)] * batch
        else:
            seq = self.index.tolist() if isinstance(self.index, Tensor) else list(self.index)  # type: ignore[arg-type]
            if len(seq) != batch:
                raise TargetError(f"got {len(seq)} targets for a batch of {batch} inputs")
            per_sample = [tuple(s) if isinstance(s, tuple | list) else (int(s),) for s in seq]
        for idx in per_sample:
            if len(idx) > out.ndim - 1:
                raise TargetError(
                    f"target index {idx} has more dimensions than the output {tuple(out.shape)}"
                )
            for d, i in enumerate(idx):
                size = out.shape[1 + d]
                if not -size <= i < size:
                    raise TargetError(
                        f"target index {i} is out of range for output dimension {1 + d} of size "
                        f"{size} (output shape {tuple(out.shape)})"
                    )
            if len(idx) < out.ndim - 1:
                rest = tuple(out.shape[1 + len(idx) :])
                raise TargetError(
                    f"target {idx} selects a block of shape {rest} per sample, not one scalar "
                    f"(output shape {tuple(out.shape)}); for segmentation outputs use "
                    f"SegmentationTarget"
                )
        table = torch.tensor(per_sample, dtype=torch.long)
        activation = self.activation
        self.resolved = [list(p) for p in per_sample]

        def bound(output: Tensor, sample: Tensor) -> Tensor:
            act = _activate(output, activation)
            idx = table.to(output.device)[sample.to(output.device)]
            rows = torch.arange(output.shape[0], device=output.device)
            values = act[(rows,) + tuple(idx.unbind(1))]  # noqa: RUF005 (mypy, py3.10)
            return _check_scalar_per_point(values, output.shape[0], "the target")

        return bound


class SegmentationTarget(Target):
    """The sum of one label's output inside a region, for segmentation networks.

    The target is linear in the per-voxel logits, so for sliding-window inference its gradient
    is the sum of the per-window gradients.

    Parameters
    ----------
    label
        Output channel to explain.
    mask
        Boolean region of shape ``(B, *spatial)`` or ``(*spatial)``; ``None`` (default) uses the
        model's own prediction at the input: voxels whose arg-max channel is ``label`` (or, for a
        single-channel output, whose logit is positive).
    activation
        ``"logit"`` (default), ``"softmax"`` or ``"sigmoid"``. Prefer logits: a softmax taken after
        sliding-window blending breaks the linearity that window-wise gradients rely on.
    reduction
        ``"sum"`` (default) or ``"mean"`` over the region.
    """

    def __init__(
        self,
        label: int,
        mask: Tensor | None = None,
        activation: str | Activation = Activation.LOGIT,
        reduction: str = "sum",
    ) -> None:
        if reduction not in ("sum", "mean"):
            raise TargetError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.label = int(label)
        self.mask = mask
        self.activation = parse_option(Activation, activation, "activation")
        self.reduction = reduction

    def describe(self) -> dict[str, Any]:
        return {
            "type": "segmentation-region",
            "label": self.label,
            "mask": "predicted" if self.mask is None else "given",
            "activation": self.activation.value,
            "reduction": self.reduction,
        }

    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        out = output_at_inputs
        if out.ndim < 3:
            raise TargetError(
                f"a segmentation target needs an output of shape (N, C, *spatial); "
                f"got {tuple(out.shape)}"
            )
        channels = out.shape[1]
        if not 0 <= self.label < max(channels, 2):
            raise TargetError(
                f"label {self.label} is out of range for {channels} output channel(s)"
            )
        if self.mask is None:
            mask = out.argmax(dim=1) == self.label if channels > 1 else out[:, 0] > 0
        else:
            mask = self.mask.to(out.device).bool()
            if mask.ndim == out.ndim - 2:
                mask = mask.unsqueeze(0).expand(out.shape[0], *mask.shape)
            if tuple(mask.shape) != (out.shape[0], *out.shape[2:]):
                raise TargetError(
                    f"mask shape {tuple(mask.shape)} does not match the output's spatial shape "
                    f"{tuple(out.shape[2:])}"
                )
        if not bool(mask.any()):
            raise TargetError(
                f"the region for label {self.label} is empty (the model predicts no such voxel); "
                f"give an explicit mask"
            )
        maskf = mask.float()
        counts = maskf.flatten(1).sum(1).clamp_min(1.0)
        self.region_voxels = counts.tolist()
        channel = self.label if channels > 1 else 0
        weights = (
            maskf / counts.view(-1, *([1] * (maskf.dim() - 1)))
            if self.reduction == "mean"
            else maskf
        )
        return RegionTarget(channel, weights, self.activation)


class RegionTarget:
    """A bound segmentation target: ``sum_v weights[i, v] * act(output)[:, channel, v]``.

    On logits it is linear in the output; :meth:`linear` then gives the channel and the
    per-voxel weights, so that sliding-window models compute its gradient window by window.
    """

    def __init__(self, channel: int, weights: Tensor, activation: Activation) -> None:
        self.channel = int(channel)
        self.weights = weights
        self.activation = activation

    def __call__(self, output: Tensor, sample: Tensor) -> Tensor:
        act = _activate(output, self.activation)[:, self.channel]
        w = self.weights.to(output.device)[sample.to(output.device)]
        return (act * w).flatten(1).sum(1)

    def linear(self, sample: Tensor) -> tuple[int, Tensor] | None:
        """``(channel, weights of the inputs in sample)``, or ``None`` if not linear."""
        if self.activation is not Activation.LOGIT:
            return None
        return self.channel, self.weights[sample.to(self.weights.device)]


class CallableTarget(Target):
    """Wrap ``fn(output) -> Tensor (N,)``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def describe(self) -> dict[str, Any]:
        return {"type": "callable", "name": getattr(self.fn, "__name__", type(self.fn).__name__)}

    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        fn = self.fn

        def bound(output: Tensor, sample: Tensor) -> Tensor:
            return _check_scalar_per_point(fn(output), output.shape[0], "the target callable")

        return bound


class _ScalarOutput(Target):
    def describe(self) -> dict[str, Any]:
        return {"type": "scalar-output"}

    def bind(self, output_at_inputs: Tensor) -> BoundTarget:
        _check_scalar_per_point(
            output_at_inputs, output_at_inputs.shape[0], "with target=None the model output"
        )

        def bound(output: Tensor, sample: Tensor) -> Tensor:
            return _check_scalar_per_point(
                output, output.shape[0], "with target=None the model output"
            )

        return bound


TargetLike = Union[  # noqa: UP007 (a runtime alias; `|` on typing objects needs 3.10+ types)
    None, int, tuple, Sequence, Tensor, str, Target, Callable[[Tensor], Tensor]
]


def as_target(target: TargetLike) -> Target:
    """Normalise any accepted target specification to a :class:`Target`."""
    if target is None:
        return _ScalarOutput()
    if isinstance(target, Target):
        return target
    if isinstance(target, bool):
        raise TargetError(
            f"target must be an int, a sequence, 'predicted' or a Target; got {target!r}"
        )
    if isinstance(target, int | tuple | str | list | Tensor):
        return ClassTarget(target)
    if callable(target):
        return CallableTarget(target)
    raise TargetError(f"unsupported target of type {type(target).__name__}")


def bind_target(target: TargetLike, output_at_inputs: Tensor) -> tuple[Target, BoundTarget]:
    """Normalise ``target`` and bind it to the model output at the inputs."""
    t = as_target(target)
    return t, t.bind(output_at_inputs.detach())
