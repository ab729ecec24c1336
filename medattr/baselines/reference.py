"""Reference banks for methods that average over many baselines (Expected Gradients): scans
of healthy subjects, given as files or generated (``builtin:mni``, ``builtin:phantom``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medattr.errors import InputError

__all__ = ["BUILTIN_REFERENCE_SETS", "reference_bank"]

BUILTIN_REFERENCE_SETS = ("builtin:mni", "builtin:phantom")
"""Generated healthy subjects, from seeds disjoint from the shipped models' training."""


def reference_bank(
    references: Sequence[str],
    preprocessor: Any,
    seed: int = 0,
    device: torch.device | str = "cpu",
    count: int = 8,
) -> torch.Tensor:
    """Reference volumes on the model grid, ``(R, C, *spatial)``.

    Parameters
    ----------
    references
        Paths (NIfTI / DICOM, on any grid: each is preprocessed like an input) or built-in
        sets (``builtin:mni`` / ``builtin:phantom``: ``count`` generated healthy subjects).
    preprocessor
        The :class:`~medattr.preprocess.Preprocessor` of the model.
    seed
        Chooses the generated subjects.
    """
    from medattr.io import read_volume

    refs: list[torch.Tensor] = []
    for ref in references:
        if ref.startswith("builtin:"):
            refs.extend(_builtin(ref, preprocessor, seed, count))
        else:
            refs.append(preprocessor(read_volume(ref)).image[0])
    if not refs:
        raise InputError("expected-gradients needs reference volumes (references=[...])")
    return torch.stack(refs).to(device)


def _builtin(name: str, pre: Any, seed: int, count: int) -> list[torch.Tensor]:
    kind = name.split(":", 1)[1]
    seeds = [900_000 + seed * 97 + k for k in range(count)]
    if kind == "phantom":
        from medattr.synthetic.phantoms import make_phantom

        return [pre(make_phantom(s, lesion=False).image).image[0] for s in seeds]
    if kind == "mni":
        from medattr.synthetic.mni import make_mni_study

        return [pre(make_mni_study(s, lesion=False).image).image[0] for s in seeds]
    raise InputError(
        f"unknown built-in reference set {name!r}; available: {', '.join(BUILTIN_REFERENCE_SETS)}"
    )
