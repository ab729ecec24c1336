"""Atomic output: write to a temporary name in the destination directory, then rename.

A reader never sees a half-written file, and an interrupted run leaves only hidden
``.*.tmp`` files (removed on the error path) instead of truncated outputs. Directories are
staged the same way: built under a hidden name beside their destination, then renamed into
place (:func:`staged_directory`, :func:`partial_directory`, :func:`replace_directory`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_free_space",
    "human_size",
    "partial_directory",
    "probe_output_dir",
    "replace_directory",
    "staged_directory",
]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name so that writers which infer the format from
    the extension (``.nii.gz``, ``.png``) still do the right thing.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f"{suffix}.tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    if suffix:
        # some writers refuse names not ending in their extension: give them one
        final_tmp = tmp_path.with_name(tmp_path.name[: -len(".tmp")])
        tmp_path.rename(final_tmp)
        tmp_path = final_tmp
    try:
        yield tmp_path
        if tmp_path.is_file():
            os.chmod(tmp_path, _FILE_MODE)  # mkstemp made it private; outputs follow the umask
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_directory(
    out_dir: str | os.PathLike[str], last: tuple[str, ...] = ("manifest.json",)
) -> Iterator[Callable[[str], Path]]:
    """Stage several outputs, then move them into ``out_dir`` only if all were written.

    Yields ``stage(name) -> Path``, a path inside a hidden staging directory within
    ``out_dir``; the caller writes a file there, or creates a directory there (for outputs that
    are several files, such as a DICOM series). On success every staged entry is renamed into
    ``out_dir`` (each rename is atomic; a directory of the same name is replaced as a whole;
    the names in ``last`` (by default ``manifest.json``) go last, so an index never describes
    missing files). On
    failure the staging directory is removed and ``out_dir`` is left as it was, removed too if
    this call created it.
    """
    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = partial_directory(out, ".medattr-staging-")
    names: list[str] = []

    def stage(name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"staged output name must be a plain file name, got {name!r}")
        names.append(name)
        return staging / name

    try:
        yield stage
        ordered = sorted(set(names), key=lambda n: any(n.endswith(end) for end in last))
        for name in ordered:
            src = staging / name
            _relax_modes(src)
            if src.is_dir():
                replace_directory(src, out / name)
            elif src.exists():
                os.replace(src, out / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def partial_directory(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new hidden directory in ``parent`` (``prefix`` + random), with ordinary permissions.

    Build an output directory there, then :func:`replace_directory` it into place.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(path, _DIR_MODE)  # mkdtemp makes it private; outputs follow the umask
    return path


def replace_directory(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Move directory ``src`` onto ``dest`` (same file system), replacing an existing one.

    The old copy is first renamed to a hidden ``.<name>.old-*`` beside it and removed after the
    new one is in place, so ``dest`` is at every moment either the old or the new directory.
    """
    src, dest = Path(src), Path(dest)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _relax_modes(path: Path) -> None:
    """Give staged outputs ordinary permissions (mkstemp and mkdtemp make them private)."""
    if path.is_dir():
        os.chmod(path, _DIR_MODE)
        for sub in path.rglob("*"):
            os.chmod(sub, _DIR_MODE if sub.is_dir() else _FILE_MODE)
    elif path.is_file():
        os.chmod(path, _FILE_MODE)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything)."""
    p = path.absolute()
    while not os.path.lexists(p) and p.parent != p:
        p = p.parent
    return p


def probe_output_dir(out_dir: str | os.PathLike[str]) -> None:
    """Check that ``out_dir`` can be created and written, leaving nothing behind.

    The directory itself, or its closest existing ancestor, must be a directory in which a
    (hidden, immediately removed) probe file can be created.

    Raises
    ------
    InputError
        If ``out_dir`` or one of its ancestors is an existing file.
    ResourceError
        If the file system refuses (permissions, read-only, full), naming the path.
    """
    from medattr.errors import InputError, ResourceError

    out = Path(out_dir)
    base = _nearest_existing(out)
    if not base.is_dir():
        if base == out.absolute():
            raise InputError("the output path exists and is not a directory", out)
        raise InputError(
            f"the output directory cannot be created: {base} is a file, not a directory", out
        )
    where = (
        "the output directory is not writable"
        if base == out.absolute()
        else (f"the output directory cannot be created in {base}")
    )
    try:
        fd, probe = tempfile.mkstemp(prefix=".medattr-probe-", dir=base)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise ResourceError(f"{where} ({reason})", out) from exc
    os.close(fd)
    os.unlink(probe)


def check_free_space(out_dir: str | os.PathLike[str], needed: int) -> None:
    """Refuse (:class:`~medattr.errors.ResourceError`) when the file system of ``out_dir``
    (or its closest existing ancestor) has less than ``needed`` bytes free."""
    from medattr.errors import ResourceError

    base = _nearest_existing(Path(out_dir))
    try:
        free = shutil.disk_usage(base).free
    except OSError:
        return  # cannot tell: the writers will find out
    if free < needed:
        raise ResourceError(
            f"not enough free space for the outputs: about {human_size(needed)} needed, "
            f"{human_size(free)} free (free some space or choose another output directory)",
            out_dir,
        )


def human_size(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units, as messages about sizes print them)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover
