"""Exceptions raised by medattr.

Every error caused by what a user supplied (a file, an argument, a model) derives from
:class:`InputError`, itself a :class:`ValueError`; one the machine causes (a directory that
cannot be written, a full disk, too little memory) is a :class:`ResourceError`. The CLI maps
both to exit status 2 (see :func:`medattr.failures.classify`, the one mapping of every
exception to who can fix it). Messages name the file and the problem and never carry patient
identifiers.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "DicomSeriesError",
    "InputError",
    "MedattrError",
    "ModelError",
    "ResourceError",
    "TargetError",
    "VolumeError",
]


class MedattrError(Exception):
    """Base class of every exception medattr raises on purpose."""


class InputError(MedattrError, ValueError):
    """Something the user supplied is unusable.

    Parameters
    ----------
    message
        What is wrong, in words a user can act on.
    path
        The file or directory concerned, if any; it prefixes the message.
    """

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class VolumeError(InputError):
    """An image volume cannot be read or is not what was expected (shape, values)."""


class DicomSeriesError(VolumeError):
    """A DICOM series is inconsistent (gaps, duplicates, tilt, mixed series, no pixels)."""


class ModelError(InputError):
    """A model cannot be loaded, or its output does not fit the requested target."""


class TargetError(InputError):
    """A target does not select one scalar per sample from the model output."""


class ResourceError(MedattrError):
    """The machine stops the run: a directory cannot be created or written, the disk is full,
    memory is short. Not the input's fault and not a bug: the environment must change.

    Parameters
    ----------
    message
        What is wrong and what to do, in words a user can act on.
    path
        The file or directory concerned, if any; it prefixes the message.
    """

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)
