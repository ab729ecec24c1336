"""Lesion-centred crops of training pairs."""

from __future__ import annotations

import torch

from medattr.training._crops import crop_epoch, lesion_voxels


def _pairs(n: int = 3, size: int = 20) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    g = torch.Generator().manual_seed(0)
    twins = torch.rand(n, 1, size, size, size, generator=g)
    lesions = twins.clone()
    centres = [(3, 4, 5), (16, 10, 2), (10, 10, 10)]
    for k, (i, j, m) in enumerate(centres[:n]):
        lesions[k, 0, i, j, m] += 0.5
    return torch.cat([lesions, twins]), centres[:n]


def test_lesion_voxels_are_where_the_pair_differs():
    x, centres = _pairs()
    vox = lesion_voxels(x[:3], x[3:])
    assert [tuple(v[0].tolist()) for v in vox] == centres


def test_crops_hold_the_lesion_and_the_same_place_of_the_twin():
    x, _ = _pairs()
    vox = lesion_voxels(x[:3], x[3:])
    seen = []

    def step(batch: torch.Tensor, labels: torch.Tensor) -> float:
        k = len(labels) // 2
        assert batch.shape[1:] == (1, 8, 8, 8)
        assert labels.tolist() == [1] * k + [0] * k
        diff = batch[:k] - batch[k:]
        # each crop pair differs in exactly one voxel: the lesion is inside, same place
        assert all(int((d != 0).sum()) == 1 for d in diff)
        seen.append(k)
        return 0.5

    losses = crop_epoch(
        step,
        x,
        3,
        vox,
        size=8,
        shift=2,
        pairs_per_step=2,
        scale=lambda n: torch.ones(n, 1, 1, 1, 1),
        generator=torch.Generator().manual_seed(1),
    )
    assert losses == [0.5, 0.5] and seen == [2, 1]


def test_crop_jitter_is_shared_by_the_two_members_of_a_pair():
    x, _ = _pairs(1)
    vox = lesion_voxels(x[:1], x[1:])

    def step(batch: torch.Tensor, labels: torch.Tensor) -> float:
        # no shift: the crop starts 4 voxels before the lesion at (3, 4, 5), kept in the volume
        box = (slice(None), slice(0, 8), slice(0, 8), slice(1, 9))
        torch.testing.assert_close(batch[0], 1.3 * x[0][box])
        torch.testing.assert_close(batch[1], 1.3 * x[1][box])
        return 0.0

    crop_epoch(
        step,
        x,
        1,
        vox,
        size=8,
        shift=0,
        pairs_per_step=1,
        scale=lambda n: torch.full((n, 1, 1, 1, 1), 1.3),
        generator=torch.Generator().manual_seed(2),
    )
