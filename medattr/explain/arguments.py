"""Front ends of :class:`ExplainConfig`: command-line options and ``MEDATTR_*`` environment
variables, both generated from the settings (names, defaults, help) declared once.

A setting ``blur_sigma_mm`` is ``--blur-sigma-mm`` on the command line and
``MEDATTR_BLUR_SIGMA_MM`` in the environment; its value is converted and validated by
:class:`ExplainConfig`, so every front end refuses the same bad values with the same message.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any

from medattr.attribution import METHODS
from medattr.baselines import BASELINES
from medattr.errors import InputError
from medattr.explain.config import ExplainConfig, all_settings
from medattr.io.writers import WRITERS
from medattr.registry import Setting

__all__ = [
    "ENV_PREFIX",
    "add_config_arguments",
    "config_from_arguments",
    "settings_from_environment",
]

ENV_PREFIX = "MEDATTR_"

_GROUPS = {
    "method": "method",
    "baseline": "baseline",
    "target": "method",
    "target_activation": "method",
    "seed": "baseline",
    "device": "compute",
    "amp": "compute",
    "internal_batch_size": "compute",
    "memory_budget": "compute",
    "progress": "compute",
    "distributed_paths": "compute",
    "formats": "output",
    "display_mapping": "output",
    "output": "model",
    "sliding_window": "model",
    "sw_batch_size": "model",
    "sw_overlap": "model",
    "sw_mode": "model",
}
_CLI_DEFAULTS = {"device": "auto", "progress": True}
"""Where the command line's default differs from the API's (a terminal user wants a bar and
the GPU when there is one)."""


def _choices_help(registry: Any, lead: str) -> str:
    items = []
    for name in registry.names():
        cls = registry.get(name)
        label = f"{name}:{cls.argument}" if getattr(cls, "argument", None) else name
        summary = registry.summary(name)
        items.append(f"{label} ({summary})" if summary else label)
    return f"{lead}: " + "; ".join(items)


def _help(setting: Setting, default: Any) -> str:
    text = setting.help
    if setting.name == "method":
        text = _choices_help(METHODS, "attribution method")
    elif setting.name == "baseline":
        text = _choices_help(BASELINES, "what 'absence of signal' is")
    elif setting.name == "formats":
        text = _choices_help(WRITERS, "comma-separated outputs") + (
            "; DICOM outputs need DICOM input and are new series of the source study in "
            "DIR/<name>_dicom/"
        )
    shown = ",".join(default) if isinstance(default, tuple | list) and default else default
    return f"{text} (default: {shown})"


def _owner_group(name: str) -> str:
    if name in _GROUPS:
        return _GROUPS[name]
    if name in METHODS.settings():
        return "method"
    if name in BASELINES.settings():
        return "baseline"
    return "output"


def add_config_arguments(
    parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()
) -> dict[str, argparse._ArgumentGroup]:
    """Add one option per :class:`ExplainConfig` setting (core and registered) to ``parser``,
    in groups ``method``, ``baseline``, ``compute`` and ``output``; returns the groups.

    Options that are not given stay unset, so the configuration's defaults apply.
    """
    groups = {name: parser.add_argument_group(name) for name in _GROUPS.values()}
    for name, setting in all_settings().items():
        if name in exclude:
            continue
        default = _CLI_DEFAULTS.get(name, setting.default)
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": default if name in _CLI_DEFAULTS else argparse.SUPPRESS,
            "help": _help(setting, default),
        }
        if setting.type is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            if setting.nargs:
                kwargs["nargs"] = setting.nargs
            if setting.choices is not None:
                kwargs["choices"] = setting.choices
            if setting.name == "method":
                kwargs["choices"] = METHODS.names()
            kwargs["metavar"] = setting.metavar or (
                "|".join(BASELINES.names()) if name == "baseline" else None
            )
            if kwargs["metavar"] is None:
                del kwargs["metavar"]
        groups[_owner_group(name)].add_argument(setting.cli_flag, **kwargs)
    return groups


def config_from_arguments(args: argparse.Namespace, **overrides: Any) -> ExplainConfig:
    """The :class:`ExplainConfig` of the options given (``overrides`` win)."""
    known = all_settings()
    given = {k: v for k, v in vars(args).items() if k in known}
    for name, value in given.items():  # refused values are named by their option
        if name not in overrides:
            known[name].convert(value, known[name].cli_flag)
    return ExplainConfig(**{**given, **overrides})


def settings_from_environment(
    environ: Mapping[str, str] | None = None, *, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``ExplainConfig`` keywords from ``MEDATTR_<SETTING>`` variables (converted and
    validated), plus ``MEDATTR_OPTIONS``, a JSON object of further settings.

    Only variables that are set appear in the result. ``extra`` names further variables
    (without the prefix, lower case) returned as strings.

    Raises
    ------
    InputError
        Naming the variable, for a value of the wrong kind.
    """
    env = os.environ if environ is None else environ
    known = all_settings()
    out: dict[str, Any] = {}
    for name, setting in known.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is None or not raw.strip():
            continue
        value: Any = raw.strip()
        if setting.nargs == "+":
            value = [v.strip() for v in value.split(",") if v.strip()]
        out[name] = setting.convert(value, ENV_PREFIX + name.upper())
    for name in extra:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw.strip():
            out[name] = raw.strip()
    options = env.get(ENV_PREFIX + "OPTIONS")
    if options is not None and options.strip():
        try:
            parsed = json.loads(options)
        except json.JSONDecodeError as exc:
            raise InputError(f"{ENV_PREFIX}OPTIONS is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise InputError(
                f"{ENV_PREFIX}OPTIONS must be a JSON object, got {type(parsed).__name__}"
            )
        out["options"] = parsed
    return out
