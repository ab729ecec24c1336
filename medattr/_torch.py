"""Small torch helpers shared by several layers (kept here so that no layer imports another
sideways for them)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["evaluating", "frozen_parameters", "module_device"]


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


@contextlib.contextmanager
def evaluating(module: Any) -> Iterator[None]:
    """Eval mode with frozen parameters for the block; every submodule's train/eval mode and
    every parameter's ``requires_grad`` flag are restored afterwards (a caller's model is left
    as it was given)."""
    if not isinstance(module, torch.nn.Module):
        yield
        return
    modes = [(m, m.training) for m in module.modules()]
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for m, _ in modes:
        m.training = False
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
