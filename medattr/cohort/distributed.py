"""torch.distributed glue for cohort runs: process-group setup and helpers by rank.

Whether a study's path points are split across ranks is one setting,
``ExplainConfig.distributed_paths``; :class:`DistributedPathsExplainer` is an
:class:`~medattr.Explainer` with it set.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from medattr.errors import InputError
from medattr.explain import ExplainConfig, Explainer

__all__ = [
    "DistributedPathsExplainer",
    "barrier",
    "broadcast_object",
    "destroy_process_group",
    "init_process_group_from_env",
    "rank_and_world",
]

log = logging.getLogger("medattr.cohort")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    import torch.distributed as dist

    if rank_and_world()[1] > 1:
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (returned unchanged without a process group)."""
    import torch.distributed as dist

    if rank_and_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def init_process_group_from_env(device: str) -> tuple[str, bool]:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: the device asked for.

    Returns
    -------
    (device, initialised)
        The device of this rank (``cuda:LOCAL_RANK`` for a CUDA request) and whether this call
        created the process group (the caller then destroys it).
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return device, False
    if not dist.is_available():
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("device 'cuda' was requested but CUDA is not available")
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    log.debug("rank %d of %d joined (%s, %s)", dist.get_rank(), world, backend, device)
    return device, True


def destroy_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DistributedPathsExplainer(Explainer):
    """An :class:`~medattr.Explainer` whose path points are shared by all ranks.

    For one volume too large (or too slow) for one device: under ``torchrun`` every rank runs
    the same study, evaluates every ``world_size``-th path point, and the gradient sums are
    all-reduced, so every rank ends with the single-process attribution (up to float
    rounding). Without an initialised process group it behaves as a plain Explainer.
    Split IG needs the whole path in order on one process and is refused.

    Examples
    --------
    >>> # torchrun --nproc_per_node=2 script.py, with in script.py:
    >>> # dist.init_process_group("nccl"); ex = DistributedPathsExplainer(model, config)
    >>> # result = ex.explain(volume)          # same on every rank
    """

    def __init__(
        self, model: Any, config: ExplainConfig | None = None, spec: Any = None, **kw: Any
    ) -> None:
        config = (config or ExplainConfig()).replace(distributed_paths=True)
        super().__init__(model, config, spec, **kw)
