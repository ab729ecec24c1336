"""Keep every path node's contribution vector until its final quadrature weight is known.

Bisecting a panel of a nested rule keeps its nodes but changes their weights, so adaptive
quadrature cannot sum into one accumulator as it goes: the vectors ``(x - x') * grad f`` of
the nodes are kept (one engine result per round, float32, on ``device``) and weighted at the
end. Memory: ``nodes x voxels x 4`` bytes.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NodeStore"]

_SLICE_BYTES = 64 * 2**20
"""At most this many bytes of float64 copies of node vectors are made at once."""


class NodeStore:
    """Node vectors by round.

    Parameters
    ----------
    device
        Where the vectors are kept.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.chunks: list[Tensor] = []

    def add(self, vectors: Tensor) -> int:
        """Keep one round's ``(M, *shape)`` vectors; returns the chunk index."""
        self.chunks.append(vectors.to(self.device))
        return len(self.chunks) - 1

    def nbytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in self.chunks)

    def combine(
        self,
        terms: list[tuple[int, int, int, int, float]],
        shape: tuple[int, ...],
        device: torch.device,
    ) -> Tensor:
        """``out[bucket, sample] += coefficient * vector(chunk, row)`` for every term.

        Parameters
        ----------
        terms
            ``(bucket, sample, chunk, row, coefficient)`` tuples.
        shape
            ``(buckets, B, *spatial)`` of the result.
        device
            Device of the result.

        Returns
        -------
        float32 tensor of ``shape``, accumulated in float64.
        """
        acc = torch.zeros(shape, dtype=torch.float64, device=device)
        by_chunk: dict[int, list[tuple[int, int, int, float]]] = {}
        for bucket, sample, chunk, row, c in terms:
            if c != 0.0:
                by_chunk.setdefault(chunk, []).append((bucket, sample, row, c))
        flat = acc.view(shape[0] * shape[1], *shape[2:])
        for chunk, items in sorted(by_chunk.items()):
            vec = self.chunks[chunk]
            step = max(1, _SLICE_BYTES // max(vec[0].numel() * 8, 1))
            for s in range(0, len(items), step):
                part_items = items[s : s + step]
                rows = torch.tensor([r for _, _, r, _ in part_items], device=vec.device)
                w = torch.tensor([c for _, _, _, c in part_items], dtype=torch.float64)
                slots = torch.tensor([b * shape[1] + i for b, i, _, _ in part_items])
                part = vec.index_select(0, rows).to(device).double()
                part.mul_(w.to(device).view(-1, *([1] * (part.dim() - 1))))
                flat.index_add_(0, slots.to(device), part)
        return acc.float()

    def clear(self) -> None:
        self.chunks.clear()
