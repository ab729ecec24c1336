"""``torch.export`` programs (``.pt2`` files from ``torch.export.save``)."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import torch

from medattr.errors import ModelError
from medattr.models._registry import Loaded, ModelLoader, register_loader

__all__ = ["ExportedProgramLoader"]

log = logging.getLogger("medattr")


@register_loader("export")
class ExportedProgramLoader(ModelLoader):
    """torch.export program (.pt2, from torch.export.save)."""

    description = "torch.export program (.pt2 from torch.export.save)"

    @classmethod
    def accepts(cls, path: Path) -> bool:
        if not path.is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/archive_format") for n in zf.namelist())

    def load(self, path: Path, device: torch.device, spec: Any = None) -> Loaded:
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelError(
                f"cannot be loaded as a torch.export program ({type(exc).__name__}: {exc})", path
            ) from exc
        module: torch.nn.Module = program.module().to(device)
        batch = _static_batch(program)
        if batch is not None:
            log.warning(
                "%s was exported with a fixed batch size of %d: path points run %d at a time "
                "(export with a dynamic batch dimension, torch.export.Dim, to batch them)",
                path.name,
                batch,
                batch,
            )
            module = _FixedBatch(module, batch)
        return Loaded(module, {}, path, extra={"static_batch": batch})


def _static_batch(program: Any) -> int | None:
    """The fixed batch size of the program's first input, or ``None`` if it is dynamic."""
    for node in program.graph.nodes:
        if node.op != "placeholder":
            continue
        if node.name not in program.graph_signature.user_inputs:
            continue
        val = node.meta.get("val")
        size = val.shape[0] if val is not None and len(val.shape) else None
        return int(size) if isinstance(size, int) else None
    return None


class _FixedBatch(torch.nn.Module):
    """Runs a fixed-batch program on any batch, ``batch`` inputs at a time."""

    def __init__(self, module: torch.nn.Module, batch: int) -> None:
        super().__init__()
        self.module = module
        self.batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == self.batch:
            return self.module(x)
        parts = []
        for i in range(0, x.shape[0], self.batch):
            chunk = x[i : i + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = torch.cat([chunk, chunk[-1:].expand(pad, *chunk.shape[1:])])
            out = self.module(chunk)
            parts.append(out[: self.batch - pad] if pad else out)
        return torch.cat(parts)
