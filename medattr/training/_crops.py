"""Lesion-centred crops of training pairs: a cheap, dense start for the paired classifier.

On whole 64³ brains a lesion of a few millilitres is well under 0.1 % of the volume, and the
small detector learns it slowly (``docs/models.md``). Cropping a lesion study and its healthy
twin at the same place around the lesion keeps the pair's only difference, the lesion, while
making it a larger share of what the network sees, at an eighth of the cost per sample for 32³
crops. The network is fully convolutional with a spatial mean, so the same weights then train
on whole volumes, which sets the calibration the shipped model is used with.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["crop_epoch", "lesion_voxels"]


def lesion_voxels(lesions: torch.Tensor, twins: torch.Tensor) -> list[torch.Tensor]:
    """Per pair, the ``(M, 3)`` voxel indices where a lesion study differs from its twin.

    ``lesions`` and ``twins`` have shape ``(N, 1, I, J, K)``. The generators make a study and its
    twin differ exactly on the lesion (same anatomy and noise), so this is the lesion, as the
    model sees it (after the intensity window).
    """
    out = []
    for a, b in zip(lesions, twins, strict=True):
        idx = (a[0] != b[0]).nonzero()
        if len(idx) == 0:  # a lesion clipped away by the window: crop anywhere
            idx = torch.tensor([[s // 2 for s in a.shape[1:]]])
        out.append(idx)
    return out


def crop_epoch(
    step_fn: Callable[[torch.Tensor, torch.Tensor], float],
    x_train: torch.Tensor,
    units: int,
    voxels: list[torch.Tensor],
    *,
    size: int,
    shift: int,
    pairs_per_step: int,
    scale: Callable[[int], torch.Tensor],
    generator: torch.Generator,
) -> list[float]:
    """One pass over the training pairs as lesion-centred crops; returns the step losses.

    ``x_train`` holds the ``units`` lesion studies then their twins, ``(2 units, 1, I, J, K)``.
    Each pair is cropped to ``size³`` voxels around a random voxel of its lesion moved by up to
    ``shift`` voxels per axis (kept inside the volume), the same crop for both members;
    ``scale(n)`` gives the ``(n, 1, 1, 1, 1)`` intensity jitter of ``n`` pairs (shared by the
    two members of a pair); ``step_fn(batch, labels)`` takes one optimiser step and returns the
    loss.
    """
    dims = torch.tensor(x_train.shape[2:])
    perm = torch.randperm(units, generator=generator)
    losses = []
    for i in range(0, units, pairs_per_step):
        idx = perm[i : i + pairs_per_step].tolist()
        les, twin = [], []
        for j in idx:
            v = voxels[j]
            c = v[int(torch.randint(len(v), (1,), generator=generator))]
            c = c + torch.randint(-shift, shift + 1, (3,), generator=generator)
            lo = (c - size // 2).clamp(min=torch.zeros(3, dtype=torch.long), max=dims - size)
            box = (slice(None), *(slice(int(a), int(a) + size) for a in lo))
            les.append(x_train[j][box])
            twin.append(x_train[j + units][box])
        k = len(idx)
        s = scale(k)
        batch = torch.stack(les + twin) * torch.cat([s, s])
        labels = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
        losses.append(step_fn(batch, labels))
    return losses
