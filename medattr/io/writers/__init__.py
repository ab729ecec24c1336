"""Output writers, one registered class per ``--format`` name.

A writer turns an explained study (:class:`StudyOutput`: the source volume, the attribution and
baseline on the source grid, the numbers) into files staged in the output directory. Built-in:
``nifti`` and the DICOM writers here, ``png`` in :mod:`medattr.render`. A new writer is one
class decorated with :func:`register_writer` (see ``docs/extending.md``)::

    @medattr.io.register_writer("my-format")
    class MyWriter(Writer):
        def write(self, result, stage): ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from medattr.registry import Registry

if TYPE_CHECKING:
    from medattr.registry import Setting
    from medattr.volume import Volume

__all__ = [
    "WRITERS",
    "Stage",
    "StudyOutput",
    "Writer",
    "get_writer",
    "register_writer",
    "writer_names",
]

Stage = Callable[[str], Path]
"""``stage(name) -> path`` in the hidden staging directory (see
:func:`medattr.io.staged_directory`): write a file there, or create a directory there."""


class StudyOutput(Protocol):
    """What a writer gets: an explained study (the explainer's ``StudyResult``).

    ``attribution`` is the exact (adjoint) mapping to the source grid, for numbers;
    ``display`` is what a person should see (the smooth mapping unless configured otherwise).
    """

    volume: Volume
    attribution: np.ndarray

    @property
    def display(self) -> np.ndarray: ...

    baseline_source: np.ndarray | None
    anatomy: np.ndarray
    explanation: Any
    baseline_info: dict[str, Any]
    config: Any
    channels: list[Any]


class Writer:
    """Base of the output writers.

    Subclasses declare ``settings`` (:class:`~medattr.registry.Setting`, received by
    ``__init__`` under their ``param`` keyword), set ``needs_dicom`` when the output belongs in
    the source DICOM study, and implement :meth:`write`.
    """

    settings: ClassVar[tuple[Setting, ...]] = ()
    needs_dicom: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Writer:
        """Build from the declared settings' values (by setting name)."""
        return cls(**{s.keyword: settings[s.name] for s in cls.settings if s.name in settings})

    def write(self, result: StudyOutput, stage: Stage) -> dict[str, Any]:
        """Write the outputs of ``result`` through ``stage``; returns the manifest's
        ``outputs`` entries (file names relative to the output directory). Lists under the
        same key from several writers are merged (``dicom_files``)."""
        raise NotImplementedError


WRITERS: Registry[Writer] = Registry(
    "output format", "medattr.writers", scan=("medattr.io.writers", "medattr.render")
)
"""Every output writer by ``--format`` name."""

register_writer = WRITERS.register


def writer_names() -> tuple[str, ...]:
    """Every available ``--format`` name (built-in and plug-in)."""
    return WRITERS.names()


def get_writer(name: str) -> type[Writer]:
    """The writer class of format ``name`` (an :class:`~medattr.registry.UnknownNameError`,
    listing the available formats, if none is)."""
    return WRITERS.get(name)
