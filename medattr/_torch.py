"""Small torch helpers shared by several layers (kept here so that no layer imports another
sideways for them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["frozen_parameters", "module_device"]


@contextlib.contextmanager
def frozen_parameters(forward_func: Any) -> Iterator[None]:
    """Stop parameters of an ``nn.Module`` from requiring grad for the duration of the block.

    Path methods need gradients with respect to the input only, but autograd computes weight
    gradients for every parameter that requires grad (a convolution's backward then produces
    both), which costs about as much again. The original flags are restored afterwards.
    """
    params = []
    if isinstance(forward_func, torch.nn.Module):
        params = [p for p in forward_func.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def module_device(module: Any, default: str | torch.device = "cpu") -> torch.device:
    """The device of a module's first parameter or buffer (``default`` if it has none)."""
    if isinstance(module, torch.nn.Module):
        for t in (*module.parameters(), *module.buffers()):
            return t.device
    return torch.device(default)
