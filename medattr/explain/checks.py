"""What the explainer checks before any baseline or attribution work.

:meth:`Explainer.run <medattr.explain.Explainer.run>` probes the output directory and its
free space before reading; :meth:`Explainer.explain <medattr.explain.Explainer.explain>`
checks the volume (:func:`check_volume`), the prepared input (:func:`check_prepared`), the
model's output (``Explainer.check_model``) and one forward and backward pass on two path
points (:func:`check_path_point`: the model takes a batch, its gradient is finite, and one
point fits in the memory the planner may use) — all before the baseline is made. Each
problem is an :class:`~medattr.errors.InputError`, :class:`~medattr.errors.ModelError` or
:class:`~medattr.errors.ResourceError` naming the file or option and what to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch

from medattr._fs import human_size
from medattr.attribution import PathAttribution
from medattr.attribution.probe import measure_point, usable_bytes
from medattr.errors import InputError, ModelError, ResourceError, VolumeError
from medattr.failures import is_out_of_memory
from medattr.models import ModelSpec
from medattr.phi import exception_origin, exception_text, redact
from medattr.preprocess import Preprocessed
from medattr.targets import BoundTarget
from medattr.volume import Volume

__all__ = [
    "BYTES_PER_VOXEL",
    "check_path_point",
    "check_prepared",
    "check_volume",
    "describe_model_failure",
    "output_bytes",
]

log = logging.getLogger("medattr")

BYTES_PER_VOXEL = {"nifti": 8.0, "dicom-rgb": 3.0, "dicom-pm": 4.0, "dicom-seg": 1.0}
"""Upper bound of the output bytes per source voxel of each format (uncompressed); other
formats (PNG) are counted as a fixed 4 MiB."""


def output_bytes(volume: Volume, formats: Sequence[str]) -> int:
    """An upper bound of what the outputs of ``volume`` in ``formats`` take on disk."""
    voxels = float(np.prod(volume.spatial_shape))
    per_voxel = sum(BYTES_PER_VOXEL.get(f, 0.0) for f in formats)
    return int(voxels * per_voxel + 4 * 2**20 * (1 + len(formats)))


def _where(volume: Volume) -> str | None:
    return volume.source.path if volume.source is not None else None


def check_volume(volume: Volume) -> None:
    """Refuse a volume with an empty axis, non-finite voxels, or one value everywhere.

    A constant volume (a blank export) holds nothing to explain: every baseline derived from
    it equals it, the attribution is zero everywhere and the completeness ratio is 0/0.
    """
    shape = tuple(int(n) for n in volume.array.shape)
    if any(n < 1 for n in shape):
        raise VolumeError(f"the image has an empty axis (shape {shape[1:]})", _where(volume))
    lo, hi = float(volume.array.min()), float(volume.array.max())  # NaN propagates
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise VolumeError("the image contains NaN or infinite voxels", _where(volume))
    if lo == hi:
        raise VolumeError(
            f"the image is constant (every voxel is {lo:g}): there is nothing to explain; "
            "check the export",
            _where(volume),
        )


def check_prepared(pre: Preprocessed, volume: Volume, spec: ModelSpec) -> None:
    """Refuse a prepared input that is constant where the source has voxels: the model's
    intensity mapping flattened it (every voxel outside its window), or the volume does not
    overlap the model grid."""
    valid = pre.valid.expand_as(pre.image)
    values = pre.image[valid]
    if values.numel() == 0:
        raise InputError(
            "the volume does not overlap the model's input grid after preprocessing",
            _where(volume),
        )
    if float(values.min()) == float(values.max()):
        it = spec.intensity
        window = (
            f" [{it.a_min:g}, {it.a_max:g}]"
            if it is not None and it.mode == "range" and it.a_min is not None
            else ""
        )
        raise InputError(
            f"the input is constant after the model's intensity window{window}: every voxel "
            "lies outside it, so there is nothing to explain (is this the modality and the "
            "units the model was trained on?)",
            _where(volume),
        )


def check_path_point(
    method: PathAttribution,
    x: torch.Tensor,
    bound: BoundTarget,
    model_path: str | os.PathLike[str] | None,
) -> int:
    """One forward and backward pass on two path points at the input, with ``method``'s
    engine settings; returns the measured bytes per point.

    Raises
    ------
    ModelError
        If the model fails on a batch of points (it ran on one), or its gradient at the input
        is NaN or infinite.
    InputError
        If one point needs more than the memory budget (``--memory-budget``) allows.
    ResourceError
        If one point does not fit in the memory free on the device.
    """
    engine = method.engine()
    try:
        per_point = measure_point(engine, x, bound)
    except FloatingPointError as exc:
        raise ModelError(
            "the model's gradient at the prepared input is NaN or infinite; it cannot be "
            "attributed (is it differentiable there?)",
            model_path,
        ) from exc
    except Exception as exc:
        if is_out_of_memory(exc):
            raise ResourceError(
                f"one path point (a forward and backward pass on {x.device}) does not fit in "
                "the memory free; try --amp bf16, a smaller model grid, or a device with more "
                "memory"
            ) from exc
        fixed = engine.internal_batch_size
        if isinstance(fixed, int) and fixed < 2:
            raise ModelError(
                "the model fails in a forward and backward pass on the prepared input: "
                f"{describe_model_failure(exc)}",
                model_path,
            ) from exc
        raise ModelError(
            "the model fails on a batch of 2 path points (it ran on one input): "
            f"{describe_model_failure(exc)}; attribution evaluates several points per pass: "
            "export the model with a dynamic batch dimension, or use --batch 1",
            model_path,
        ) from exc
    usable = usable_bytes(engine, x.device)
    if per_point > usable:
        budget = engine.memory_budget
        if budget is not None:
            raise InputError(
                f"one path point needs {human_size(per_point)} (measured: a forward and backward "
                f"pass on the prepared input) but --memory-budget {human_size(budget)} leaves "
                f"{human_size(usable)} for path points; raise --memory-budget, or try --amp bf16"
            )
        raise ResourceError(
            f"one path point needs {human_size(per_point)} (measured: a forward and backward "
            f"pass on the prepared input) but only {human_size(usable)} is free on {x.device}; "
            "try --amp bf16, a smaller model grid, or a device with more memory"
        )
    log.debug("one path point: %s (planner may use %s)", human_size(per_point), human_size(usable))
    return per_point


def describe_model_failure(exc: BaseException) -> str:
    """What a model's exception says, made safe: the last line of its message (TorchScript
    errors carry a listing of the scripted code before it), redacted; a header-parsing
    library's message is withheld."""
    if exception_origin(exc) is not None:
        return exception_text(exc)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    last = redact(lines[-1]) if lines else ""
    if len(last) > 300:
        last = last[:297] + "..."
    kind = "TorchScript error" if isinstance(exc, torch.jit.Error) else type(exc).__name__
    return f"{kind}: {last}" if last else kind
