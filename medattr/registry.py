"""Registries: one per plug-in point, mapping a name to a class and what the class declares.

medattr has four plug-in points: baselines (:mod:`medattr.baselines`), attribution methods
(:mod:`medattr.attribution`), output writers (:mod:`medattr.io`) and model loaders
(:mod:`medattr.models`). Each keeps one :class:`Registry`; a class joins it with the registry's
decorator and is then accepted everywhere a name is: :class:`~medattr.ExplainConfig`, the
``medattr`` command line (its choices, options and help come from here), the MONAI bundle, the
cohort runner and the benchmark.

A registered class declares

- ``settings``: a tuple of :class:`Setting` (name, default, help, type and check). The values
  live in :class:`~medattr.ExplainConfig` under those names (``--blur-sigma-mm`` on the
  command line for the setting ``blur_sigma_mm``), are validated once when the configuration is
  built, and are recorded in the manifest and hashed into the cohort fingerprint;
- optionally ``assets(settings, model)``: the files its output depends on (weights), so the
  manifest records their SHA-256 and a resumed cohort recomputes a study when they change.

Third-party packages add entries without touching medattr through the entry-point groups
``medattr.baselines``, ``medattr.methods``, ``medattr.writers`` and ``medattr.models``
(``name = "package.module:Class"``), imported when that name is first looked up. medattr's own
entries register themselves with the decorator in the modules of the registry's ``scan`` list,
imported on the first lookup: a new built-in is one new module in such a package.

Examples
--------
>>> from medattr.registry import Registry, Setting
>>> shapes = Registry("shape", "example.shapes")
>>> @shapes.register("disc")
... class Disc:
...     settings = (Setting("radius_mm", 5.0, "disc radius", type=float, minimum=0.0),)
>>> shapes.names(), shapes.get("disc").__name__
(('disc',), 'Disc')
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from medattr.errors import InputError

__all__ = ["Registry", "Setting", "UnknownNameError", "declared_settings", "parse_flag"]

log = logging.getLogger("medattr")

T = TypeVar("T")


class UnknownNameError(InputError):
    """A name that no registry entry answers to (the message lists the available ones)."""


@dataclass(frozen=True)
class Setting:
    """One setting a registered class declares.

    Parameters
    ----------
    name
        Its name in :class:`~medattr.ExplainConfig`, in configs and manifests
        (``snake_case``); the command line spells it ``--name-with-dashes``.
    default
        Value when none is given (``None`` allowed).
    help
        One sentence for ``--help`` and the docs.
    type
        Converter applied to every value given (``float``, ``int``, ``str``, ``bool`` or a
        callable raising ``ValueError``/``TypeError`` on bad input; a callable's ``expected``
        attribute, if any, says in words what it accepts). Lists: give ``nargs="+"``.
    choices
        Allowed values, if restricted.
    minimum, maximum
        Inclusive numeric bounds; ``exclusive_minimum`` makes the lower bound strict.
    nargs
        ``"+"`` for a list of values (a JSON list, or several words on the command line).
    metavar
        Placeholder in ``--help``.
    flag
        Command-line spelling when it is not ``--`` + the dashed name (e.g. ``--steps``).
    param
        Keyword of the class's ``__init__`` that receives the value (default: ``name``).
    optional
        ``None`` is accepted besides values of ``type``.
    asset
        The value names a file the output depends on (weights): records and fingerprints
        identify it by its contents (see the entry's ``assets``), not by its path.
    """

    name: str
    default: Any
    help: str
    type: Callable[[Any], Any] = str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    nargs: str | None = None
    metavar: str | None = None
    flag: str | None = None
    param: str | None = None
    optional: bool = False
    asset: bool = False

    @property
    def keyword(self) -> str:
        return self.param or self.name

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def convert(self, value: Any, label: str | None = None) -> Any:
        """``value`` checked and converted; an :class:`InputError` naming the setting (or
        ``label``, e.g. an environment variable) if bad."""
        label = label or self.name
        if value is None:
            if self.optional or self.default is None:
                return None
            raise InputError(f"{label} must not be empty (expected {self._expected()})")
        if self.nargs == "+":
            items = [value] if isinstance(value, str | int | float) else list(value)
            return [self._one(v, label) for v in items]
        return self._one(value, label)

    def _one(self, value: Any, label: str) -> Any:
        if self.type in (int, float) and isinstance(value, bool):
            raise InputError(f"{label} must be {self._expected()}, got {value!r}")
        if self.type is bool:
            out: Any = parse_flag(value, label)
        else:
            try:
                out = self.type(value)
            except (TypeError, ValueError, ArithmeticError) as exc:
                detail = str(exc) if isinstance(exc, InputError) else ""
                raise InputError(
                    f"{label} must be {self._expected()}, got {value!r}"
                    + (f" ({detail})" if detail else "")
                ) from None
            if self.type is int and isinstance(value, float) and value != out:
                raise InputError(f"{label} must be an integer, got {value!r}")
        if isinstance(out, float) and not math.isfinite(out):
            raise InputError(f"{label} must be a finite number, got {value!r}")
        if self.choices is not None and out not in self.choices:
            choices = ", ".join(repr(c) for c in self.choices)
            raise InputError(f"{label} must be one of {choices}; got {value!r}")
        numeric = isinstance(out, int | float)  # a type may also allow words ("auto")
        if (
            numeric
            and self.minimum is not None
            and (out < self.minimum or (self.exclusive_minimum and out == self.minimum))
        ):
            bound = ">" if self.exclusive_minimum else ">="
            raise InputError(f"{label} must be {bound} {self.minimum}, got {value!r}")
        if numeric and self.maximum is not None and out > self.maximum:
            raise InputError(f"{label} must be <= {self.maximum}, got {value!r}")
        return out

    def _expected(self) -> str:
        names: dict[Any, str] = {
            int: "an integer",
            float: "a number",
            str: "a string",
            bool: "true or false",
        }
        what = str(
            names.get(self.type)
            or getattr(self.type, "expected", None)
            or getattr(self.type, "__name__", "a value")
        )
        if self.type is int and self.minimum == 1:
            what = "a positive integer"
        return f"a list of {what}" if self.nargs == "+" else what


def parse_flag(value: Any, label: str) -> bool:
    """A boolean from a config, a command line or the environment: ``True``/``False``, ``1``/
    ``0``, or the strings ``true/false``, ``yes/no``, ``on/off``, ``1/0`` (``""`` is false).

    ``python -m monai.bundle run --split_paths false`` passes the *string* ``"false"``, which
    ``bool()`` would read as true.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off", ""):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"{label} must be true or false, got {value!r}")


def declared_settings(cls: Any) -> tuple[Setting, ...]:
    """The :class:`Setting` objects a class declares (``settings``), checked for form."""
    found = tuple(getattr(cls, "settings", ()) or ())
    for s in found:
        if not isinstance(s, Setting):
            raise TypeError(
                f"{getattr(cls, '__name__', cls)}.settings must hold Setting objects, got "
                f"{type(s).__name__}"
            )
    return found


class Registry(Generic[T]):
    """Name → class for one plug-in point.

    Parameters
    ----------
    kind
        What the entries are, for messages (``"baseline"``).
    group
        Entry-point group third-party packages use (``"medattr.baselines"``).
    scan
        Modules and packages (every module of a package) whose import registers medattr's own
        entries; imported on the first lookup.
    """

    def __init__(self, kind: str, group: str, scan: Sequence[str] = ()) -> None:
        self.kind = kind
        self.group = group
        self.scan = tuple(scan)
        self._lazy: dict[str, str] = {}
        self._entries: dict[str, type[T]] = {}
        self._plugins_loaded = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registering
    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make the class available under ``name``.

        The class gets ``registry_name = name``. Registering another class under a taken name
        is an error (the same class again, e.g. on a module reload, is accepted).
        """
        if not isinstance(name, str) or not name or name != name.strip() or ":" in name:
            raise ValueError(f"a {self.kind} name must be a non-empty word, got {name!r}")

        def decorate(cls: type[T]) -> type[T]:
            declared_settings(cls)
            with self._lock:
                old = self._entries.get(name)
                if old is not None and _qualname(old) != _qualname(cls):
                    raise ValueError(
                        f"{self.kind} {name!r} is registered already (by {_qualname(old)})"
                    )
                self._entries[name] = cls
                self._lazy.pop(name, None)
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def add(self, name: str, cls: type[T]) -> type[T]:
        """``register(name)(cls)`` for classes defined elsewhere."""
        return self.register(name)(cls)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and interactive sessions)."""
        with self._lock:
            self._entries.pop(name, None)
            self._lazy.pop(name, None)

    # ------------------------------------------------------------------ lookup
    def names(self) -> tuple[str, ...]:
        """Every available name, built-in and plug-in, in registration order."""
        self._load_plugins()
        return tuple(dict.fromkeys([*self._entries, *self._lazy]))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``.

        Raises
        ------
        UnknownNameError
            If no entry has that name; the message lists the available names.
        """
        self._load_plugins()
        with self._lock:
            if name not in self._entries and name in self._lazy:
                self._resolve(name, self._lazy[name])
            try:
                return self._entries[name]
            except KeyError:
                pass
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or '(none)'}"
        )

    def classes(self) -> dict[str, type[T]]:
        """Every entry, resolved (imports every lazy built-in and plug-in)."""
        return {name: self.get(name) for name in self.names()}

    def settings(self, names: Iterable[str] | None = None) -> dict[str, Setting]:
        """The settings declared by ``names`` (default: every entry), by setting name."""
        out: dict[str, Setting] = {}
        for name in self.names() if names is None else names:
            for s in declared_settings(self.get(name)):
                out.setdefault(s.name, s)
        return out

    def summary(self, name: str) -> str:
        """The first sentence of the entry's docstring (for ``--help``)."""
        doc = " ".join((self.get(name).__doc__ or "").strip().split("\n\n")[0].split())
        doc = re.sub(r":\w+:`([^`]*)`", r"\1", doc).replace("``", "").replace("`", "")
        return re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", doc)[0].rstrip(".:")

    # ------------------------------------------------------------------ plug-ins
    def _resolve(self, name: str, target: str) -> None:
        module, _, attr = target.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:
            self._lazy.pop(name, None)
            raise InputError(
                f"the {self.kind} {name!r} ({target}) cannot be imported: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if name not in self._entries:  # a module that registers itself on import needs no add
            self.add(name, obj)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        with self._lock:
            if self._plugins_loaded:
                return
            self._plugins_loaded = True
            for name in self.scan:
                _import_all(name)
            for ep in _entry_points(self.group):
                if ep.name in self._entries or ep.name in self._lazy:
                    log.warning(
                        "%s plug-in %r (%s) ignored: the name is taken",
                        self.kind,
                        ep.name,
                        ep.value,
                    )
                    continue
                self._lazy[ep.name] = ep.value

    def reload_plugins(self) -> None:
        """Look at the installed packages' entry points again (after installing one)."""
        with self._lock:
            self._plugins_loaded = False
        self._load_plugins()


def _import_all(name: str) -> None:
    """Import module ``name``, and every module inside it if it is a package."""
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", []), name + "."):
        importlib.import_module(info.name)


def _entry_points(group: str) -> Sequence[metadata.EntryPoint]:
    try:
        return list(metadata.entry_points(group=group))
    except Exception as exc:  # a broken distribution must not break medattr
        log.warning("cannot read entry points of %s: %s", group, exc)
        return []


def _qualname(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', repr(cls))}"
