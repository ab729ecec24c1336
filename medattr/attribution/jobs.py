"""The path points an engine run evaluates, and what a run returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["AMP", "EngineResult", "PathJobs", "normalize_args", "select_args"]


class AMP(str, Enum):
    """Autocast precision for the forward and backward passes."""

    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self is AMP.BF16 else torch.float16


@dataclass
class PathJobs:
    """The path points to evaluate, one entry per point.

    Attributes
    ----------
    sample
        Index of the input each point belongs to, shape ``(M,)``.
    reference
        Index of the baseline (row of the baseline bank) of each point, shape ``(M,)``.
    alpha
        Position along the straight path from baseline (0) to input (1), shape ``(M,)``.
    weight
        Quadrature (or Monte-Carlo) weight, shape ``(M,)``.
    """

    sample: Tensor
    reference: Tensor
    alpha: Tensor
    weight: Tensor

    def __post_init__(self) -> None:
        self.sample = torch.as_tensor(self.sample, dtype=torch.long).reshape(-1)
        self.reference = torch.as_tensor(self.reference, dtype=torch.long).reshape(-1)
        self.alpha = torch.as_tensor(self.alpha, dtype=torch.float64).reshape(-1)
        self.weight = torch.as_tensor(self.weight, dtype=torch.float64).reshape(-1)
        m = self.sample.numel()
        if not (self.reference.numel() == self.alpha.numel() == self.weight.numel() == m):
            raise ValueError("PathJobs fields must all have the same length")

    def __len__(self) -> int:
        return int(self.sample.numel())

    @classmethod
    def straight(
        cls,
        batch: int,
        alphas: Sequence[float] | Tensor | np.ndarray,
        weights: Sequence[float] | Tensor | np.ndarray,
    ) -> PathJobs:
        """Every input ``i`` against baseline ``i`` at the same nodes, ordered by alpha."""
        a = torch.as_tensor(alphas, dtype=torch.float64)
        w = torch.as_tensor(weights, dtype=torch.float64)
        k = a.numel()
        sample = torch.arange(batch).repeat(k)
        return cls(sample, sample.clone(), a.repeat_interleave(batch), w.repeat_interleave(batch))


@dataclass
class EngineResult:
    """What one engine run produced.

    Attributes
    ----------
    sums
        float32 tensor ``(buckets, B, *input_shape[1:])`` of accumulated attributions; with
        ``per_point=True`` ``(1, M, *input_shape[1:])``, one weighted contribution per job.
    outputs
        float64 target value at each job's point, shape ``(M,)``.
    chunk_sizes
        Number of points in each chunk that succeeded (retries after OOM excluded).
    oom_retries
        How many chunks were retried at half size after running out of memory.
    bytes_per_point
        The measured per-point footprint used for planning (``None`` if not measured).
    seconds
        Wall time of the run.
    """

    sums: Tensor
    outputs: Tensor
    chunk_sizes: list[int] = field(default_factory=list)
    oom_retries: int = 0
    bytes_per_point: int | None = None
    seconds: float = 0.0

    @property
    def n_evaluations(self) -> int:
        return int(sum(self.chunk_sizes))


def select_args(args: tuple[Any, ...], idx: Tensor, batch: int) -> tuple[Any, ...]:
    """Index tensor arguments whose first dimension is the batch, as Captum expands them."""
    out = []
    for a in args:
        if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch:
            out.append(a.index_select(0, idx.to(a.device)))
        else:
            out.append(a)
    return tuple(out)


def normalize_args(additional_forward_args: Any) -> tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)
