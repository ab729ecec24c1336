"""Settings of a packaged application: the model to load and ``MEDATTR_*`` variables.

A MONAI Application Package (MAP) is configured through its environment and the SDK's
standard arguments (``-i``, ``-o``, ``-m``) only, so the example app reads medattr's settings
from these variables:

=====================  ==============================================================
``MEDATTR_MODEL``      model when ``-m`` is not given: a path, or ``builtin:NAME``
``MEDATTR_METHOD``     ``ig`` (default), ``smoothgrad``, ``split-ig``, ...
``MEDATTR_BASELINE``   ``blur`` (default), ``zero``, ``constant``, ...
``MEDATTR_N_STEPS``    path points (default 32), or ``auto`` (see ``MEDATTR_COMPLETENESS_RTOL``)
``MEDATTR_FORMATS``    comma-separated outputs (default ``dicom-rgb,dicom-pm,dicom-seg``)
``MEDATTR_DEVICE``     ``auto`` (default), ``cpu``, ``cuda``, ``cuda:N``
``MEDATTR_RESAMPLE``   ``1`` to interpolate irregular series instead of refusing them
``MEDATTR_ON_ERROR``   ``raise`` (default) or ``skip`` for series that cannot be read
``MEDATTR_OPTIONS``    a JSON object of further ExplainConfig fields, e.g. ``{"target": 1}``
=====================  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medattr.errors import InputError, ModelError

__all__ = ["ENV_PREFIX", "find_model", "resolve_model", "settings_from_env"]

ENV_PREFIX = "MEDATTR_"
MODEL_SUFFIXES = (".ts", ".pt", ".pth", ".zip")


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`~medattr.deploy.SeriesExplainer` from ``MEDATTR_*``.

    Every :class:`~medattr.ExplainConfig` setting is ``MEDATTR_<NAME>`` (``MEDATTR_N_STEPS``,
    ``MEDATTR_BLUR_SIGMA_MM``, a plug-in's own …), converted and validated as the command line
    does; ``MEDATTR_RESAMPLE`` and ``MEDATTR_ON_ERROR`` choose how series are read. Only
    variables that are set appear in the result, so the class defaults apply otherwise.

    Raises
    ------
    InputError
        Naming the variable, for a value of the wrong kind.

    Examples
    --------
    >>> settings_from_env({"MEDATTR_N_STEPS": "16", "MEDATTR_FORMATS": "dicom-pm, png"})
    {'n_steps': 16, 'formats': ('dicom-pm', 'png')}
    """
    from medattr.explain.arguments import settings_from_environment
    from medattr.registry import Setting

    env = os.environ if environ is None else environ
    out = settings_from_environment(env, extra=("on_error",))
    resample = env.get(ENV_PREFIX + "RESAMPLE")
    if resample is not None:
        try:
            out["resample"] = Setting("resample", False, "", type=bool).convert(resample)
        except InputError:
            raise InputError(f"{ENV_PREFIX}RESAMPLE must be 1 or 0, got {resample!r}") from None
    return out


def find_model(path: str | os.PathLike[str]) -> Path:
    """The model inside ``path``: the file, the bundle, or the one model in a models folder.

    A MAP keeps its models under a folder with one sub-folder per model
    (``models/<name>/model.ts``); a folder that is not itself a MONAI bundle is searched two
    levels deep for exactly one bundle or TorchScript file.

    Raises
    ------
    ModelError
        If ``path`` does not exist, or holds no model or several.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError("model not found", p)
    if p.is_file() or _is_bundle(p):
        return p
    found: list[Path] = []
    for child in sorted(p.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir() and _is_bundle(child):
            found.append(child)
        elif child.is_dir():
            found += [
                f for f in sorted(child.iterdir()) if f.is_file() and f.suffix in MODEL_SUFFIXES
            ]
        elif child.suffix in MODEL_SUFFIXES:
            found.append(child)
    if len(found) != 1:
        what = "no model" if not found else f"{len(found)} models"
        listing = "".join(f"\n  - {f}" for f in found)
        raise ModelError(
            f"{what} (TorchScript {'/'.join(MODEL_SUFFIXES)} or MONAI bundle) found in this "
            f"folder; pass the model itself{listing}",
            p,
        )
    return found[0]


def _is_bundle(p: Path) -> bool:
    return (p / "configs").is_dir() or (p / "models" / "model.ts").is_file()


def resolve_model(
    cli_model: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> str:
    """The model an application should load.

    In order: the ``-m`` argument; ``MEDATTR_MODEL`` (a path or ``builtin:NAME``); the SDK's
    ``HOLOSCAN_MODEL_PATH`` (``/opt/holoscan/models`` in a MAP) if it exists.

    Raises
    ------
    ModelError
        If none is given, or the one given holds no single model.
    """
    env = os.environ if environ is None else environ
    if cli_model:
        return str(find_model(cli_model))
    named = env.get(ENV_PREFIX + "MODEL", "").strip()
    if named:
        return named if named.startswith("builtin:") else str(find_model(named))
    packaged = env.get("HOLOSCAN_MODEL_PATH", "").strip()
    if packaged and Path(packaged).exists():
        return str(find_model(packaged))
    raise ModelError(
        "no model given: pass -m PATH (TorchScript file or MONAI bundle folder), or set "
        f"{ENV_PREFIX}MODEL to a path or builtin:NAME"
    )
