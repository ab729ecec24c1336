"""The settings of an explanation run, defined once: :class:`ExplainConfig`.

A run's settings are the core ones below (method, baseline, target, engine, outputs) plus every
setting the registered entries declare (``blur_sigma_mm`` of the blur baseline, ``n_steps`` of
the path methods, ``seg_top_percent`` of the SEG writer, a plug-in's own …). All are validated
once, when the configuration is built or changed; the command line, the MONAI bundle, the
deployment settings and the manifest all read them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import torch

from medattr.attribution import METHODS, PathAttribution
from medattr.baselines import BASELINES, parse_name
from medattr.errors import InputError
from medattr.io.writers import WRITERS
from medattr.registry import Registry, Setting, UnknownNameError, declared_settings

__all__ = ["CORE_SETTINGS", "LIMITS", "ExplainConfig", "all_settings"]


_F = TypeVar("_F", bound=Callable[..., Any])


def _expects(text: str) -> Callable[[_F], _F]:
    """Say in words what a converter accepts (used in the messages refusing a value)."""

    def mark(fn: _F) -> _F:
        fn.expected = text  # type: ignore[attr-defined]
        return fn

    return mark


@_expects("a class index or 'predicted'")
def _target(value: Any) -> int | str:
    if isinstance(value, str):
        if value == "predicted":
            return value
        return int(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


@_expects("cpu, cuda, cuda:N or auto")
def _device(value: Any) -> str:
    name = str(value).strip()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(name)
    except RuntimeError as exc:  # torch's "Invalid device string": reported as a bad value
        raise ValueError(name) from exc
    return name


@_expects("a positive integer or 'auto'")
def _batch(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    out = int(value)
    if out < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return out


@_expects("a positive number of bytes or a size such as '8GB'")
def _budget(value: Any) -> int | str:
    from medattr.attribution._memory import parse_bytes

    parse_bytes(value)  # ValueError when unparsable
    return value if isinstance(value, str) else int(value)


@_expects("comma-separated output formats")
def _formats(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(str(v).strip() for v in items if str(v).strip())
    if not out:
        raise ValueError(value)
    return out


CORE_SETTINGS: tuple[Setting, ...] = (
    Setting("method", "ig", "attribution method"),
    Setting("baseline", "blur", "what 'absence of signal' is"),
    Setting(
        "target",
        None,
        "class index to explain, or 'predicted' (default: the model's default target)",
        type=_target,
        optional=True,
    ),
    Setting(
        "target_activation",
        "logit",
        "explain the raw logit or a probability",
        choices=("logit", "softmax", "sigmoid"),
        flag="--activation",
    ),
    Setting("seed", 0, "seed for every random choice", type=int),
    Setting("device", "cpu", "cpu, cuda, cuda:N, or auto (cuda if available)", type=_device),
    Setting(
        "amp",
        None,
        "autocast precision (gradient sums stay float32)",
        choices=("bf16", "fp16"),
        optional=True,
    ),
    Setting(
        "internal_batch_size",
        "auto",
        "path points per forward/backward pass; 'auto' plans from free memory and halves on "
        "out-of-memory",
        type=_batch,
        flag="--batch",
    ),
    Setting(
        "memory_budget",
        None,
        "upper bound for path chunks, e.g. 8GB",
        type=_budget,
        optional=True,
    ),
    Setting("progress", None, "progress bar on stderr", type=bool, optional=True),
    Setting(
        "distributed_paths",
        False,
        "under torchrun: every rank works on every study and the path points are split across "
        "ranks (one large volume on several GPUs); default: ranks share studies",
        type=bool,
    ),
    Setting(
        "formats",
        ("nifti", "png"),
        "outputs to write (comma-separated)",
        type=_formats,
        flag="--format",
    ),
    Setting(
        "display_mapping",
        "smooth",
        "how the attribution reaches the source grid in what a person looks at (PNG, DICOM RGB, "
        "Parametric Map, SEG): smooth (each model voxel's share spread over the source voxels "
        "it covers) or adjoint (exact transpose of the resampling: dots on a finer grid); the "
        "NIfTI and all numbers always use the adjoint",
        choices=("smooth", "adjoint"),
    ),
    Setting(
        "output",
        None,
        "for a model that returns a tuple or a dict: the index or key of the output to explain",
        optional=True,
        metavar="KEY|INDEX",
    ),
    Setting(
        "sliding_window",
        None,
        "apply the network by sliding windows of this size in voxels (one number or three), "
        "as MONAI's SlidingWindowInferer; default: the model's own inferer (a bundle's), else "
        "the whole volume at once",
        type=int,
        nargs="+",
        optional=True,
        metavar="ROI",
    ),
    Setting("sw_batch_size", 4, "sliding window: windows per batch", type=int, minimum=1),
    Setting(
        "sw_overlap",
        0.25,
        "sliding window: overlap of neighbouring windows",
        type=float,
        minimum=0.0,
        maximum=0.95,
    ),
    Setting(
        "sw_mode",
        "constant",
        "sliding window: blending of overlapping windows",
        choices=("constant", "gaussian"),
    ),
)
"""The settings every run has (method, baseline, target, engine, outputs)."""

_CORE = {s.name: s for s in CORE_SETTINGS}
_REGISTRIES: tuple[Registry[Any], ...] = (METHODS, BASELINES, WRITERS)

LIMITS: dict[str, int] = {
    "n_steps": 1024,
    "max_steps": 1024,
    "nt_samples": 256,
    "eg_samples": 4096,
    "cf_steps": 10_000,
}
"""Upper bounds of the settings that multiply the work (path points, noisy copies, reference
draws, optimisation steps), whoever declares them. Beyond them a run costs hours and memory
for no measurable gain in completeness (the quadrature converges long before 1024 points), and
a typo such as ``--steps 1000000000`` is refused at once instead of allocating until it
fails."""


def _bounded(setting: Setting) -> Setting:
    limit = LIMITS.get(setting.name)
    if limit is None or (setting.maximum is not None and setting.maximum <= limit):
        return setting
    return replace(setting, maximum=limit)


def all_settings() -> dict[str, Setting]:
    """The core settings and every setting a registered method, baseline or writer declares
    (with the :data:`LIMITS` applied)."""
    out = dict(_CORE)
    for registry in _REGISTRIES:
        for name, setting in registry.settings().items():
            out.setdefault(name, _bounded(setting))
    return out


class ExplainConfig:
    """Settings of one explanation run (JSON-able; the CLI and bundle configs map onto it).

    Core settings (attributes): ``method``, ``baseline`` (a registered name, or ``file:PATH``),
    ``target`` (class index, ``"predicted"`` or ``None`` for the model's default),
    ``target_activation``, ``seed``, ``device``, ``amp``, ``internal_batch_size``,
    ``memory_budget``, ``progress``, ``distributed_paths`` and ``formats``. Every setting a
    registered entry declares is accepted too, as a keyword and read back as an attribute
    (``ExplainConfig(baseline="blur", blur_sigma_mm=8).blur_sigma_mm``); ``medattr explain
    --help`` lists them all. Values are validated when given: a bad one raises an
    :class:`~medattr.errors.InputError` naming the setting.

    Examples
    --------
    >>> cfg = ExplainConfig(method="ig", baseline="blur", blur_sigma_mm=8, n_steps=64)
    >>> cfg.n_steps, cfg.blur_sigma_mm, cfg.quadrature
    (64, 8.0, 'gausslegendre')
    >>> cfg.replace(n_steps=16).n_steps
    16
    """

    method: str
    baseline: str
    target: int | str | None
    target_activation: str
    seed: int
    device: str
    amp: str | None
    internal_batch_size: int | str
    memory_budget: int | str | None
    progress: bool | None
    distributed_paths: bool
    formats: tuple[str, ...]
    display_mapping: str
    output: str | None
    sliding_window: list[int] | None
    sw_batch_size: int
    sw_overlap: float
    sw_mode: str

    def __init__(self, **values: Any) -> None:
        object.__setattr__(self, "_values", {})
        known = all_settings()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        for name, value in values.items():
            self._values[name] = known[name].convert(value)
        self._check()

    # ---------------------------------------------------------------- access
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        setting = _CORE.get(name) or all_settings().get(name)
        if setting is None:
            raise AttributeError(f"ExplainConfig has no setting {name!r}")
        return _copy_default(setting.default)

    def __setattr__(self, name: str, value: Any) -> None:
        setting = _CORE.get(name) or all_settings().get(name)
        if setting is None:
            raise AttributeError(f"ExplainConfig has no setting {name!r}")
        old = dict(self._values)
        self._values[name] = setting.convert(value)
        try:
            self._check()
        except Exception:
            object.__setattr__(self, "_values", old)
            raise

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            return default

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExplainConfig) and self.values() == other.values()

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"ExplainConfig({given})"

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._values)

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(state))

    def replace(self, **changes: Any) -> ExplainConfig:
        """A copy with some settings changed (validated)."""
        return ExplainConfig(**{**self._values, **changes})

    @property
    def given(self) -> dict[str, Any]:
        """The settings given explicitly (the rest take their defaults)."""
        return dict(self._values)

    # ---------------------------------------------------------------- entries
    def method_class(self) -> type[PathAttribution]:
        return METHODS.get(self.method)

    def entry_classes(self) -> list[Any]:
        """The registered classes this run uses: its method, baseline (when the method takes
        one) and writers."""
        method = self.method_class()
        out: list[Any] = [method]
        if method.baseline_kind == "single":
            out.append(BASELINES.get(parse_name(self.baseline)[0]))
        out += [WRITERS.get(f) for f in self.formats]
        return out

    def used_settings(self) -> dict[str, Setting]:
        """The core settings and those of the entries this run uses, by name."""
        out = dict(_CORE)
        for cls in self.entry_classes():
            for s in declared_settings(cls):
                out.setdefault(s.name, s)
        return out

    def settings_for(self, cls: Any) -> dict[str, Any]:
        """Values of the settings ``cls`` declares, by setting name."""
        return {s.name: getattr(self, s.name) for s in declared_settings(cls)}

    def values(self) -> dict[str, Any]:
        """Every setting this run uses, with its value (defaults filled in)."""
        return {name: getattr(self, name) for name in self.used_settings()}

    def to_dict(self) -> dict[str, Any]:
        """:meth:`values` as JSON-able data (``ExplainConfig(**to_dict())`` gives it back)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.values().items()}

    # ---------------------------------------------------------------- checks
    def _check(self) -> None:
        names = METHODS.names()
        if self.method not in names:
            raise InputError(f"method must be one of {', '.join(names)}; got {self.method!r}")
        base, argument = parse_name(self.baseline)
        try:
            cls = BASELINES.get(base)
        except UnknownNameError:
            choices = ", ".join(
                f"{n}:{BASELINES.get(n).argument}" if BASELINES.get(n).argument else n
                for n in BASELINES.names()
            )
            raise InputError(f"baseline must be one of {choices}; got {self.baseline!r}") from None
        if cls.argument and not argument:
            raise InputError(f"baseline {base!r} needs an argument: {base}:{cls.argument}")
        if argument is not None and not cls.argument:
            raise InputError(f"baseline {base!r} takes no argument; got {self.baseline!r}")
        unknown = [f for f in self.formats if f not in WRITERS.names()]
        if unknown:
            raise InputError(
                f"unknown output format(s) {', '.join(unknown)}; choose from "
                f"{', '.join(WRITERS.names())}"
            )
        method = self.method_class()
        if self.distributed_paths and not method.supports_distributed:
            raise InputError(
                f"{self.method} cannot split its path points across processes (it needs the "
                "whole path in order); run it without distributed path splitting"
            )
        method.check_settings(self.settings_for(method), self.method)


def _copy_default(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
