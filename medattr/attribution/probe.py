"""Before a run: what one path point costs, measured on the prepared input.

The explainer calls :func:`measure_point` after the model's first forward pass and before
any baseline is made: one forward and backward pass on two copies of the input checks that
the model takes a batch, that its gradient is finite, and measures the bytes per point the
planner will use (remembered, so the run plans its first chunk at once); :func:`usable_bytes`
says what the planner may spend, so a point that cannot fit is refused up front.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from medattr._torch import frozen_parameters
from medattr.attribution._memory import available_bytes, footprints
from medattr.attribution.engine import PathEngine, _NonFinite
from medattr.attribution.jobs import AMP, PathJobs, normalize_args
from medattr.targets import BoundTarget

__all__ = ["measure_point", "usable_bytes"]


def usable_bytes(engine: PathEngine, device: torch.device) -> int:
    """Bytes ``engine``'s planner may give one chunk of path points on ``device`` now (its
    share of the free memory, or of the memory budget)."""
    fraction = 0.8 if device.type == "cuda" else 0.9
    return int(fraction * available_bytes(device, engine.memory_budget))


def measure_point(
    engine: PathEngine,
    inputs: Tensor,
    bound: BoundTarget,
    additional_forward_args: Any = None,
    points: int = 2,
) -> int:
    """Bytes one path point costs with ``engine``'s settings.

    A forward and backward pass on ``points`` copies of the first input (fewer if the
    engine's ``internal_batch_size`` is smaller), measured as the engine measures its first
    chunk (CUDA: peak allocated bytes; CPU: what autograd saves), and remembered for the
    engine's model, so that the next run on inputs of this shape plans its chunks at once.
    Returns 0 when nothing could be measured.

    Raises
    ------
    FloatingPointError
        If the gradient at the input is NaN or infinite.
    Exception
        Whatever the model raises (an out-of-memory error included), unchanged.
    """
    args = normalize_args(additional_forward_args)
    key = (tuple(inputs.shape[1:]), str(inputs.dtype), str(inputs.device), str(engine.amp))
    if hasattr(engine.forward_func, "value_and_grad") and not args:
        # a sliding-window model: its memory is one window batch plus a few copies of the
        # point whatever the volume, so one window's worth of the input is probed, not all
        per_point = _probe_windows(engine.forward_func, inputs)
        footprints(engine.forward_func)[key] = per_point
        return per_point
    fixed = engine.internal_batch_size if isinstance(engine.internal_batch_size, int) else None
    n = max(1, min(points, fixed or points))
    x_all = inputs.detach().float()
    b_all = x_all[:1].clone()
    zeros = torch.zeros(n, dtype=torch.long)
    jobs = PathJobs(zeros, zeros.clone(), torch.ones(n), torch.ones(n))
    scales = [2.0**12, 1.0] if engine.amp is AMP.FP16 else [1.0]
    nbytes: int | None = None
    with frozen_parameters(engine.forward_func):
        for i, scale in enumerate(scales):
            try:
                _, _, nbytes = engine._chunk(
                    x_all, b_all, jobs, slice(0, n), bound, args, x_all.shape[0], scale, True
                )
                break
            except _NonFinite:
                if i == len(scales) - 1:
                    raise FloatingPointError(
                        "the model's gradient at the input is NaN or infinite"
                    ) from None
    per_point = math.ceil(nbytes / n) if nbytes else 0
    if per_point > 0:
        footprints(engine.forward_func)[key] = per_point
    return per_point


def _probe_windows(model: Any, inputs: Tensor) -> int:
    """A forward and backward pass on one window at the input's corner; bytes per point."""
    roi = tuple(int(r) for r in model.roi_size)
    corner = (
        slice(0, 1),
        slice(None),
        *(slice(0, min(r, n)) for r, n in zip(roi, inputs.shape[2:], strict=True)),
    )
    window = inputs.detach().float()[corner]
    with frozen_parameters(model):
        _, grads = model.value_and_grad(window, 0, torch.ones((1, *window.shape[2:])))
    if not bool(torch.isfinite(grads).all()):
        raise FloatingPointError("the model's gradient at the input is NaN or infinite")
    return 6 * inputs[0].numel() * 4
