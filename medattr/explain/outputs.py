"""Writing one explained study: every requested writer into a staged directory, the manifest
last, all renamed into place together (nothing partial is ever visible). The manifest passes
:func:`medattr.phi.redact_json`; a file system that refuses the outputs (full, read-only,
permissions) is a :class:`~medattr.errors.ResourceError` naming the output directory."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from medattr._fs import staged_directory
from medattr.errors import ResourceError
from medattr.failures import ENVIRONMENT_ERRNOS, describe_os_error
from medattr.io.writers import get_writer
from medattr.phi import redact_json

if TYPE_CHECKING:
    from medattr.explain.explainer import Explainer, StudyResult

__all__ = ["json_default", "merge_outputs", "write_outputs", "written_paths"]


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
    try:
        with staged_directory(out_dir) as stage:
            for name in result.config.formats:
                t_writer = time.perf_counter()
                cls = get_writer(name)
                writer = cls.from_settings(result.config.settings_for(cls))
                merge_outputs(outputs, writer.write(result, stage))
                result.timings[f"write:{name}"] = time.perf_counter() - t_writer
            result.timings["write"] = time.perf_counter() - t
            files, display = split_outputs(outputs)
            manifest = explainer.manifest(result, files)
            manifest["display"] = display
            if extra_manifest:
                manifest.update(extra_manifest)
            manifest = redact_json(manifest)
            text = json.dumps(manifest, indent=2, default=json_default)
            stage("manifest.json").write_text(text)
    except OSError as exc:
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        # the file name is a hidden staging name: say which directory, and why
        raise ResourceError(
            f"the outputs cannot be written: {describe_os_error(exc, '')}", out_dir
        ) from exc
    return manifest


def written_paths(manifest: dict[str, Any]) -> list[str]:
    """The outputs a manifest lists, relative to its directory (a DICOM folder once, as
    ``name/``), then ``manifest.json``."""
    out: list[str] = []
    for key, value in manifest.get("outputs", {}).items():
        if key == "dicom_files" or not isinstance(value, str):
            continue
        out.append(value + "/" if key == "dicom_dir" else value)
    return [*sorted(set(out)), "manifest.json"]


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


def split_outputs(outputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The writers' entries: file names (``outputs`` in the manifest) and how they show the
    attribution (``display``: the mapping each output used, windows, scales)."""
    files: dict[str, Any] = {}
    display: dict[str, Any] = {}
    for key, value in outputs.items():
        is_file = isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
        (files if is_file else display)[key] = value
    return files, display


def json_default(o: Any) -> Any:
    """JSON for NumPy scalars and arrays, tensors and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray | torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
