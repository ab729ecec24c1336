"""What a model's output means, read from the output itself when nothing else says.

No class count is assumed: on the prepared input, an output of shape ``(N, 1)`` is a binary
classifier with one logit, ``(N, K)`` a K-class classifier and ``(N, K, *spatial)`` a
segmentation network. The model's metadata or a ``--model-spec`` refine it (class names, the
default target) and are checked against it. A model returning a tuple or a dict is explained
through one of its outputs, chosen by index or key (:class:`SelectOutput`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from medattr.errors import ModelError
from medattr.models.spec import ModelSpec

__all__ = ["OutputContract", "SelectOutput", "describe_output", "select_output"]

_KINDS = ("binary", "classes", "segmentation")


@dataclass(frozen=True)
class OutputContract:
    """The meaning of a model's output tensor.

    Attributes
    ----------
    kind
        ``"binary"`` (one logit, ``(N, 1)``), ``"classes"`` (``(N, K)``) or
        ``"segmentation"`` (``(N, K, *spatial)``).
    channels
        ``K`` (1 for a binary classifier).
    class_names
        One name per channel.
    """

    kind: str
    channels: int
    class_names: tuple[str, ...]

    @property
    def task(self) -> str:
        return "segmentation" if self.kind == "segmentation" else "classification"

    @classmethod
    def infer(cls, output: Tensor, spec: ModelSpec, source: str | None = None) -> OutputContract:
        """The contract of ``output`` (the model's output on one prepared input), refined and
        checked by ``spec``.

        Raises
        ------
        ModelError
            If the output is not a floating tensor of a known shape, or contradicts the spec.
        """
        if not isinstance(output, Tensor):
            raise ModelError(
                f"the model returns {type(output).__name__}, not a tensor" + _choice_hint(output),
                source,
            )
        shape = tuple(output.shape)
        if output.dim() < 2 or shape[1] < 1:
            raise ModelError(
                f"the model output has shape {shape}; expected (N, 1) for a binary classifier, "
                "(N, K) for K classes or (N, K, *spatial) for a segmentation network",
                source,
            )
        channels = int(shape[1])
        if output.dim() == 2:
            kind = "binary" if channels == 1 else "classes"
        else:
            kind = "segmentation"
        if spec.task == "segmentation" and kind != "segmentation":
            raise ModelError(
                f"the model's spec says segmentation, but its output has shape {shape} "
                "(expected (N, K, *spatial))",
                source,
            )
        if spec.task == "classification" and kind == "segmentation":
            raise ModelError(
                f"the model's spec says classification, but its output has shape {shape} "
                "(expected (N, K))",
                source,
            )
        names = spec.class_names
        if names is None:
            word = "label" if kind == "segmentation" else "class"
            names = ["positive"] if kind == "binary" else [f"{word} {i}" for i in range(channels)]
        elif kind == "binary" and len(names) == 2:
            names = [names[1]]  # (negative, positive) names of a one-logit classifier
        if len(names) != channels:
            what = "classifier" if kind != "segmentation" else "segmentation network"
            raise ModelError(
                f"the model output has shape {shape}, expected (1, {len(names)}) for a {what} "
                f"of {len(names)} classes ({', '.join(names)})",
                source,
            )
        return cls(kind, channels, tuple(names))

    def refine(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with the task and class names this contract establishes."""
        return replace(spec, task=self.task, class_names=list(self.class_names))


class SelectOutput(torch.nn.Module):
    """One output of a model that returns a tuple, a list or a dict (by index or key)."""

    def __init__(self, module: torch.nn.Module, key: str | int) -> None:
        super().__init__()
        self.module = module
        self.key = key

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return select_output(self.module(*args, **kwargs), self.key)


def select_output(output: Any, key: str | int) -> Tensor:
    """``output[key]`` for a tuple/list (an index; ``"0"`` works too) or a dict (a key)."""
    if isinstance(output, Mapping):
        if key not in output and str(key) not in output:
            raise ModelError(
                f"the model's outputs are {', '.join(map(repr, output))}; there is no {key!r}"
            )
        out = output[key] if key in output else output[str(key)]
    elif isinstance(output, Sequence) and not isinstance(output, str):
        try:
            out = output[int(key)]
        except (ValueError, IndexError):
            raise ModelError(
                f"the model returns {len(output)} outputs; --output must be an index 0.."
                f"{len(output) - 1}, got {key!r}"
            ) from None
    else:
        raise ModelError(
            f"--output {key!r} was given, but the model returns a single "
            f"{type(output).__name__}, not a tuple or a dict"
        )
    if not isinstance(out, Tensor):
        raise ModelError(f"the model's output {key!r} is a {type(out).__name__}, not a tensor")
    return out


def describe_output(output: Any) -> str:
    """Shapes of a tensor / tuple / dict output, for messages."""
    if isinstance(output, Tensor):
        return str(tuple(output.shape))
    if isinstance(output, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe_output(v)}" for k, v in output.items()) + "}"
    if isinstance(output, Sequence) and not isinstance(output, str):
        return "(" + ", ".join(describe_output(v) for v in output) + ")"
    return type(output).__name__


def _choice_hint(output: Any) -> str:
    if isinstance(output, Mapping):
        return (
            f" but a dict of outputs {describe_output(output)}; choose one with "
            f"--output KEY (model spec field 'output')"
        )
    if isinstance(output, Sequence) and not isinstance(output, str):
        return (
            f" but a {type(output).__name__} of {len(output)} outputs "
            f"{describe_output(output)}; choose one with --output INDEX (model spec field "
            "'output')"
        )
    return ""
