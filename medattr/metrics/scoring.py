"""The model's target score for batches of volumes, in chunks and without gradients.

The perturbation metrics and the completeness check need ``f(x)``: the scalar that was
explained (a class logit or probability, a segmentation region sum, any callable) for each
volume. The target is given exactly as to the attribution methods (see
:mod:`medattr.targets`) and is bound once, at the unperturbed inputs, so ``"predicted"`` and
predicted segmentation regions stay fixed while the input is perturbed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from medattr.errors import InputError, ModelError
from medattr.metrics._validation import plain_tensor
from medattr.targets import BoundTarget, Target, TargetLike, bind_target

__all__ = ["TargetScorer", "target_scores"]


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _forward(model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    out = model(x)
    if hasattr(out, "as_tensor"):
        out = out.as_tensor()
    if not isinstance(out, Tensor):
        raise ModelError(f"the model must return a tensor, got {type(out).__name__}")
    if out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise ModelError(
            f"the model output's first dimension must be the batch size {x.shape[0]}; got output "
            f"shape {tuple(out.shape)}"
        )
    return out


class TargetScorer:
    """A model and a target bound at a batch of inputs; scores perturbed copies of them.

    Parameters
    ----------
    model
        ``model(x) -> output`` for ``x`` of shape ``(N, C, *spatial)``. Put a ``torch.nn.Module``
        in ``eval()`` mode first (a warning is given otherwise): batch statistics and dropout
        would make scores depend on the chunking.
    inputs
        The unperturbed batch ``(B, C, *spatial)``; the target is bound to the model output here.
    target
        Any target accepted by the attribution methods: ``None`` (the model returns one scalar
        per sample), an ``int`` class index, a per-sample sequence, ``"predicted"``, a
        :class:`~medattr.targets.Target` (e.g. ``ClassTarget(1, activation="softmax")``) or a
        callable ``score_fn(output) -> Tensor (N,)``.
    batch_size
        Volumes per forward pass.

    Attributes
    ----------
    f_input
        float64 ``(B,)``: the target score at ``inputs``.
    """

    def __init__(
        self,
        model: Callable[[Tensor], Tensor],
        inputs: Tensor,
        target: TargetLike = None,
        batch_size: int = 8,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable, got {type(model).__name__}")
        if isinstance(model, torch.nn.Module) and model.training:
            warnings.warn(
                "the model is in training mode; call model.eval() so that batch normalisation "
                "and dropout do not make the scores depend on the batch",
                stacklevel=3,
            )
        self.model = model
        self.batch_size = _check_batch_size(batch_size)
        x = plain_tensor(inputs, "inputs")
        if x.dim() < 2 or x.shape[0] == 0:
            raise InputError(
                f"inputs must have shape (B, C, *spatial) with B ≥ 1; got {tuple(x.shape)}"
            )
        with torch.no_grad():
            outs = [
                _forward(model, x[i : i + self.batch_size])
                for i in range(0, x.shape[0], self.batch_size)
            ]
            out_x = torch.cat(outs) if len(outs) > 1 else outs[0]
            self.target: Target
            self.bound: BoundTarget
            self.target, self.bound = bind_target(target, out_x)
            self.f_input = self._apply(out_x, torch.arange(x.shape[0], device=out_x.device))

    def _apply(self, output: Tensor, sample: Tensor) -> Tensor:
        values = self.bound(output, sample)
        return values.detach().to(torch.float64)

    def __call__(self, points: Tensor, sample: Tensor) -> Tensor:
        """Target scores (float64, ``(N,)``) of ``points`` ``(N, C, *spatial)``, where
        ``sample[n]`` is the input that point ``n`` was made from. One forward pass: chunking is
        the caller's job."""
        with torch.no_grad():
            out = _forward(self.model, points)
            return self._apply(out, sample.to(out.device))


def target_scores(
    model: Callable[[Tensor], Tensor],
    inputs: Tensor,
    target: TargetLike = None,
    *,
    batch_size: int = 8,
) -> Tensor:
    """The target score of each volume, ``f(x)``, without gradients.

    Parameters
    ----------
    model, target, batch_size
        As in :class:`TargetScorer`.
    inputs
        ``(B, C, *spatial)``.

    Returns
    -------
    Tensor of shape ``(B,)``
        float64, on the model output's device.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3)).eval()
    >>> target_scores(model, torch.zeros(2, 1, 2, 2, 2), target=1).shape
    torch.Size([2])
    """
    return TargetScorer(model, inputs, target, batch_size).f_input
