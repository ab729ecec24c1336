"""Who can fix it: the one mapping of every exception to a kind of failure and an exit status.

=============  ======  =====================================================================
kind           exit    what it covers
=============  ======  =====================================================================
input          2       a file, series, datalist or option that cannot be used
                       (:class:`~medattr.errors.InputError`)
model          2       the model: it cannot be loaded, fails or returns something else than
                       its contract promises, NaN or infinite outputs or gradients
                       (:class:`~medattr.errors.ModelError`, ``torch.jit.Error``,
                       ``FloatingPointError``)
environment    2       the machine: a directory that cannot be created or written, a full
                       disk, too little memory (:class:`~medattr.errors.ResourceError`,
                       ``OSError`` with such an errno, ``MemoryError``, out-of-memory)
interrupted    130     Ctrl-C
internal       1       anything else: a bug in medattr or a library; reported with a hint to
                       report it
=============  ======  =====================================================================

The message of every kind is safe to show (see :func:`medattr.phi.exception_text`): it names
the file or option and the problem, and carries no patient identifier.

Examples
--------
>>> from medattr.errors import InputError
>>> f = classify(InputError("header declares 2 GiB", "study.nii"))
>>> f.kind, f.exit_code, f.message
('input', 2, 'study.nii: header declares 2 GiB')
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from medattr.errors import InputError, ModelError, ResourceError
from medattr.phi import exception_text, redact

__all__ = [
    "ENVIRONMENT_ERRNOS",
    "EXIT_CODES",
    "REPORT_HINT",
    "Failure",
    "classify",
    "describe_os_error",
    "is_out_of_memory",
]

EXIT_CODES = {"input": 2, "model": 2, "environment": 2, "interrupted": 130, "internal": 1}
"""Exit status of each kind of failure."""

ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOSPC",
        "EDQUOT",
        "EFBIG",
        "EACCES",
        "EPERM",
        "EROFS",
        "EMFILE",
        "ENFILE",
        "EIO",
        "ENOMEM",
        "ENOTDIR",
        "EISDIR",
        "ENOENT",
        "EEXIST",
        "ENAMETOOLONG",
        "ELOOP",
        "EBUSY",
        "ETXTBSY",
    )
    if hasattr(errno, name)
)
"""``OSError`` numbers that mean the environment (file system, permissions, limits)."""

REPORT_HINT = (
    "this is a bug in medattr or a library it uses; please report it with the command, "
    "the medattr version and the output of the same command run with -v"
)

_LABELS = {
    "input": "error",
    "model": "model error",
    "environment": "environment error",
    "interrupted": "interrupted",
    "internal": "internal error",
}


@dataclass(frozen=True)
class Failure:
    """An exception classified.

    Attributes
    ----------
    kind
        ``"input"``, ``"model"``, ``"environment"``, ``"interrupted"`` or ``"internal"``.
    exit_code
        The command line's exit status for it.
    message
        What went wrong, safe to show (no patient identifiers, no raw third-party text).
    """

    kind: str
    exit_code: int
    message: str

    @property
    def label(self) -> str:
        """``"error"``, ``"model error"``, ``"environment error"``, ``"internal error"`` …"""
        return _LABELS[self.kind]

    def line(self) -> str:
        """One line for a user: the label, the message, and for internal errors the hint."""
        if self.kind == "interrupted":
            return "interrupted"
        tail = f" ({REPORT_HINT})" if self.kind == "internal" else ""
        return f"{self.label}: {self.message}{tail}"


def describe_os_error(exc: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """``PATH: strerror`` for an ``OSError`` (its own file name unless ``path`` is given), from
    the error number, not the library's wording."""
    where = str(path) if path is not None else (exc.filename or "")
    what = os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    hint = {
        errno.ENOSPC: "free some space or choose another output directory",
        errno.EDQUOT: "the disk quota is exhausted; free some space",
        errno.EFBIG: "a file size limit refused more data; raise the limit or use another disk",
        errno.EACCES: "check the permissions",
        errno.EPERM: "check the permissions",
        errno.EROFS: "the file system is read-only; choose another output directory",
    }.get(exc.errno or 0)
    text = f"{where}: {what}" if where else what
    return redact(f"{text} ({hint})" if hint else text)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for host and CUDA allocation failures (reported by PyTorch in several ways)."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return any(s in text for s in ("out of memory", "can't allocate memory"))
    return False


def _is_torchscript_error(exc: BaseException) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, torch.jit.Error)


def classify(exc: BaseException) -> Failure:
    """The kind, exit status and safe message of ``exc`` (see the module's table)."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", EXIT_CODES["interrupted"], "interrupted")
    if isinstance(exc, ModelError):
        return Failure("model", EXIT_CODES["model"], redact(str(exc)))
    if isinstance(exc, ResourceError):
        return Failure("environment", EXIT_CODES["environment"], redact(str(exc)))
    if isinstance(exc, InputError):
        return Failure("input", EXIT_CODES["input"], redact(str(exc)))
    if _is_torchscript_error(exc):
        last = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = redact(last[-1]) if last else type(exc).__name__
        return Failure("model", EXIT_CODES["model"], f"the TorchScript model raised: {detail}")
    if isinstance(exc, FloatingPointError):
        return Failure(
            "model",
            EXIT_CODES["model"],
            f"the model produced NaN or infinite values: {exception_text(exc)}",
        )
    if is_out_of_memory(exc):
        return Failure(
            "environment",
            EXIT_CODES["environment"],
            "out of memory: this input and these settings need more memory than is free; try "
            "--amp bf16, a smaller --batch or --memory-budget, or a machine with more memory",
        )
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        return Failure("environment", EXIT_CODES["environment"], describe_os_error(exc))
    return Failure("internal", EXIT_CODES["internal"], exception_text(exc))
