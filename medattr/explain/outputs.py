"""Writing one explained study: every requested writer into a staged directory, the manifest
last, all renamed into place together (nothing partial is ever visible)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medattr._fs import staged_directory
from medattr.io.writers import get_writer

if TYPE_CHECKING:
    from medattr.explain.explainer import Explainer, StudyResult

__all__ = ["json_default", "merge_outputs", "write_outputs"]


def write_outputs(
    explainer: Explainer,
    result: StudyResult,
    out_dir: str | os.PathLike[str],
    *,
    extra_manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the configured writers on ``result`` into ``out_dir``; returns the manifest."""
    t = time.perf_counter()
    outputs: dict[str, Any] = {}
    with staged_directory(out_dir) as stage:
        for name in result.config.formats:
            t_writer = time.perf_counter()
            cls = get_writer(name)
            writer = cls.from_settings(result.config.settings_for(cls))
            merge_outputs(outputs, writer.write(result, stage))
            result.timings[f"write:{name}"] = time.perf_counter() - t_writer
        result.timings["write"] = time.perf_counter() - t
        manifest = explainer.manifest(result, outputs)
        if extra_manifest:
            manifest.update(extra_manifest)
        stage("manifest.json").write_text(json.dumps(manifest, indent=2, default=json_default))
    return manifest


def merge_outputs(outputs: dict[str, Any], new: dict[str, Any]) -> None:
    """Add one writer's ``outputs`` entries: lists under the same key are joined (sorted),
    mappings merged."""
    for key, value in new.items():
        old = outputs.get(key)
        if isinstance(old, list) and isinstance(value, list):
            outputs[key] = sorted({*old, *value})
        elif isinstance(old, dict) and isinstance(value, dict):
            outputs[key] = {**old, **value}
        else:
            outputs[key] = value


def json_default(o: Any) -> Any:
    """JSON for NumPy scalars and arrays, tensors and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray | torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
