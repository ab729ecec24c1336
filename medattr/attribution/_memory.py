"""Memory accounting for the chunk planner: what is free, and what one path point costs."""

from __future__ import annotations

import contextlib
import math
import os
import re
import weakref
from collections.abc import Iterator
from typing import Any

import torch

__all__ = [
    "available_bytes",
    "balanced_chunk",
    "footprints",
    "is_out_of_memory",
    "parse_bytes",
    "saved_activation_bytes",
]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "gib": 2**30,
    "t": 2**40,
    "tb": 2**40,
    "tib": 2**40,
}


def parse_bytes(value: int | float | str | None) -> int | None:
    """``"8GB"``, ``"512 MiB"``, ``2**30`` -> bytes (binary units); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"memory_budget must be positive, got {value}")
        return int(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _UNITS:
            out = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
            if out > 0:
                return out
    raise ValueError(
        f"memory_budget must be a positive number of bytes or a string like '8GB'; got {value!r}"
    )


def _cpu_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def available_bytes(device: torch.device, budget: int | None) -> int:
    """Bytes the planner may spend on path points now.

    CUDA: free device memory plus what PyTorch has cached but not allocated, limited to the
    ``budget`` minus what is allocated already. CPU: half of the available RAM, limited to the
    budget.
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        avail = free + cached
        if budget is not None:
            avail = min(avail, budget - torch.cuda.memory_allocated(device))
        return max(int(avail), 0)
    avail = _cpu_available() // 2
    if budget is not None:
        avail = min(avail, budget)
    return max(int(avail), 0)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA and CPU allocation failures (which PyTorch reports in several ways)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        msg = str(exc).lower()
        return (
            "out of memory" in msg or "can't allocate memory" in msg or "failed to allocate" in msg
        )
    return False


@contextlib.contextmanager
def saved_activation_bytes(batch: int) -> Iterator[list[int]]:
    """Count the bytes autograd saves for backward in tensors whose first dim is ``batch``.

    Those are the per-point activations; parameters (saved once, no batch dimension) are not
    counted. Yields a one-element list that holds the total when the block exits.
    """
    total = [0]
    seen: set[tuple[int, int]] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            if t.dim() > 0 and t.shape[0] == batch and t.layout == torch.strided:
                key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                if key not in seen:
                    seen.add(key)
                    total[0] += key[1]
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


_FOOTPRINT_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], int]] = (
    weakref.WeakKeyDictionary()
)


def footprints(forward_func: Any) -> dict[tuple[Any, ...], int]:
    """Measured bytes per path point of ``forward_func``, by input shape, dtype, device, amp.

    Later calls with the same model and input geometry plan their chunks at once instead of
    measuring again. Models that cannot be weakly referenced get a fresh (empty) table.
    """
    try:
        return _FOOTPRINT_CACHE.setdefault(forward_func, {})
    except TypeError:
        return {}


def balanced_chunk(size: int, remaining: int) -> int:
    """The chunk size that covers ``remaining`` points in as many chunks as ``size`` needs,
    with chunks as equal as possible (no 1-point tail at the worst cost per point)."""
    if remaining <= 0:
        return max(size, 1)
    chunks = math.ceil(remaining / max(size, 1))
    return math.ceil(remaining / chunks)
