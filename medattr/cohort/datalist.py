"""Cohort inputs: a datalist, a list or a directory turned into studies with stable ids.

Private to :mod:`medattr.cohort` (which re-exports :class:`CohortEntry` and
:func:`load_cohort`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from medattr.errors import InputError
from medattr.io.nifti import is_nifti_path, nifti_stem

__all__ = ["READ_OPTION_KEYS", "CohortEntry", "StudyIdMode", "load_cohort"]

log = logging.getLogger("medattr.cohort")

READ_OPTION_KEYS = ("series_uid", "series_description", "resample")
"""Datalist entry keys passed to :func:`medattr.io.read_volume` for that study."""

_STANDARD_SECTIONS = ("training", "validation", "test")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 80


class StudyIdMode(str, Enum):
    """How a study id is made when the entry carries none.

    ``hash``: ``s-`` and 12 hex digits of the SHA-256 of the image path as written in the
    datalist (and the entry's series choice); stable when the data moves, and free of anything
    a file name might reveal. ``stem``: the file or directory name, made filesystem-safe; use it
    only when names carry no patient identifiers.
    """

    HASH = "hash"
    STEM = "stem"


@dataclass
class CohortEntry:
    """One study of a cohort.

    Attributes
    ----------
    index
        Position in the cohort (after duplicates were dropped).
    study_id
        Unique, filesystem-safe name of the study's output directory.
    image
        Resolved input: a NIfTI file, a DICOM directory or file, or a list of DICOM files.
    source
        The image path as written in the datalist (what the summary shows).
    read_options
        ``series_uid`` / ``series_description`` / ``resample`` for this study.
    label
        The entry's ``label``, when it has one (kept for the summary).
    """

    index: int
    study_id: str
    image: str | list[str]
    source: str
    read_options: dict[str, Any] = field(default_factory=dict)
    label: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A MONAI-dataset item (``image`` key first) that :meth:`from_dict` reads back."""
        return {
            "image": self.image,
            "study_id": self.study_id,
            "index": self.index,
            "source": self.source,
            "read_options": dict(self.read_options),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CohortEntry:
        missing = [k for k in ("image", "study_id", "index", "source") if k not in data]
        if missing:
            raise InputError(
                f"a cohort item needs the keys image, study_id, index and source (made by "
                f"load_cohort); this one lacks {', '.join(missing)}"
            )
        return cls(
            index=int(data["index"]),
            study_id=str(data["study_id"]),
            image=data["image"],
            source=str(data["source"]),
            read_options=dict(data.get("read_options") or {}),
            label=data.get("label"),
        )


def load_cohort(
    source: str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    *,
    section: str | Sequence[str] = "test",
    base_dir: str | os.PathLike[str] | None = None,
    image_key: str = "image",
    id_key: str = "id",
    study_ids: str | StudyIdMode = StudyIdMode.HASH,
    read_options: Mapping[str, Any] | None = None,
) -> list[CohortEntry]:
    """Read the studies of a cohort.

    Parameters
    ----------
    source
        A MONAI datalist JSON file (``{"training": [...], "validation": [...], "test": [...]}``,
        entries ``{"image": path, ...}`` or plain paths), a JSON list of entries, a directory
        (its ``datalist.json`` if present, else every NIfTI file in it and every subdirectory,
        each a DICOM study), or the same as Python objects.
    section
        Datalist section(s) to run: a name, comma-separated names, a list, or ``"all"``
        (every list in the datalist, in file order). Ignored for lists and directories.
    base_dir
        Base of relative paths; default: the datalist's directory (as MONAI's
        ``load_decathlon_datalist``), or the working directory for Python objects.
    image_key
        Entry key holding the image path.
    id_key
        Entry key holding an explicit study id (made filesystem-safe); entries without it get
        an id from ``study_ids``.
    study_ids
        ``"hash"`` or ``"stem"``, see :class:`StudyIdMode`.
    read_options
        Defaults for ``series_uid`` / ``series_description`` / ``resample``; entry keys of the
        same names override them per study.

    Returns
    -------
    list of CohortEntry
        In datalist order; an entry repeating an earlier one (same image and series choice) is
        dropped with a warning, so every study runs once.

    Raises
    ------
    InputError
        If the datalist cannot be read, a section is missing, an entry has no image, or two
        different entries claim the same explicit id.

    Examples
    --------
    >>> entries = load_cohort(["a.nii.gz", "b.nii.gz"], base_dir="/data")
    >>> [e.image for e in entries], entries[0].study_id.startswith("s-")
    (['/data/a.nii.gz', '/data/b.nii.gz'], True)
    """
    mode = _parse_mode(study_ids)
    origin: Path | None = None
    if isinstance(source, str | os.PathLike):
        origin = Path(source)
        raw, default_base = _read_source(origin, section)
    elif isinstance(source, Mapping):
        raw, default_base = _sections(dict(source), section, None), Path.cwd()
    else:
        raw, default_base = list(source), Path.cwd()
    base = Path(base_dir) if base_dir is not None else default_base
    defaults = dict(read_options or {})
    unknown = set(defaults) - set(READ_OPTION_KEYS)
    if unknown:
        raise InputError(
            f"unknown read option(s) {', '.join(sorted(unknown))}; expected "
            f"{', '.join(READ_OPTION_KEYS)}"
        )
    entries: list[CohortEntry] = []
    seen: dict[str, int] = {}
    explicit: dict[str, str] = {}
    keys: list[str] = []
    given_ids: set[int] = set()
    where = str(origin) if origin is not None else None
    for n, item in enumerate(raw):
        written, options, label, given_id = _parse_item(item, n, image_key, id_key, where)
        options = {**defaults, **options}
        key = json.dumps([written, options], sort_keys=True, default=str)
        if key in seen:
            log.warning(
                "entry %d repeats entry %d (same image and series); it runs once", n, seen[key]
            )
            continue
        seen[key] = n
        image = _resolve(written, base)
        if given_id is not None:
            sid = _safe_id(given_id)
            if not sid:
                raise InputError(
                    f"entry {n}: {id_key!r} {given_id!r} has no usable characters", where
                )
            if sid in explicit and explicit[sid] != key:
                raise InputError(
                    f"entry {n}: study id {sid!r} is already used by another entry; ids must be "
                    f"unique",
                    where,
                )
            explicit[sid] = key
            given_ids.add(len(entries))
        elif mode is StudyIdMode.HASH:
            sid = "s-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
        else:
            sid = _stem_id(written) or "study"
        keys.append(key)
        entries.append(CohortEntry(len(entries), sid, image, _display(written), options, label))
    _disambiguate(entries, keys, given_ids)
    if not entries:
        raise InputError("the cohort holds no studies", where)
    return entries


def _parse_mode(mode: str | StudyIdMode) -> StudyIdMode:
    try:
        return StudyIdMode(mode)
    except ValueError:
        raise InputError(f"study_ids must be 'hash' or 'stem', got {mode!r}") from None


def _read_source(path: Path, section: str | Sequence[str]) -> tuple[list[Any], Path]:
    if path.is_dir():
        if (path / "datalist.json").is_file():
            return _read_source(path / "datalist.json", section)
        return _scan_directory(path), path
    if not path.exists():
        raise InputError("datalist not found", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot be read ({exc})", path) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"is not valid JSON ({exc})", path) from exc
    if isinstance(data, list):
        return data, path.parent
    if isinstance(data, dict):
        return _sections(data, section, path), path.parent
    raise InputError(f"a datalist must be a JSON object or list, got {type(data).__name__}", path)


def _sections(data: dict[str, Any], section: str | Sequence[str], path: Path | None) -> list[Any]:
    lists = [
        k
        for k, v in data.items()
        if isinstance(v, list) and all(isinstance(i, str | dict) for i in v)
    ]
    if isinstance(section, str):
        names = lists if section == "all" else [s.strip() for s in section.split(",") if s.strip()]
    else:
        names = list(section)
    missing = [s for s in names if s not in lists]
    if missing or not names:
        raise InputError(
            f"datalist section(s) {', '.join(missing) or '(none)'} not found; it has "
            f"{', '.join(lists) or 'no lists'} (choose with section=..., or 'all')",
            path,
        )
    return [item for name in names for item in data[name]]


def _scan_directory(path: Path) -> list[Any]:
    items: list[Any] = []
    ignored = 0
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        if child.is_dir() or (child.is_file() and is_nifti_path(child)):
            items.append(child.name)
        else:
            ignored += 1
    if ignored:
        log.info("%d file(s) in %s are neither NIfTI nor a study directory; ignored", ignored, path)
    return items


def _parse_item(
    item: Any, n: int, image_key: str, id_key: str, where: str | None
) -> tuple[str | list[str], dict[str, Any], int | None, str | None]:
    if isinstance(item, str | os.PathLike):
        return str(item), {}, None, None
    if not isinstance(item, Mapping):
        raise InputError(
            f"entry {n} must be a path or an object with {image_key!r}, got {type(item).__name__}",
            where,
        )
    image = item.get(image_key)
    if isinstance(image, list) and image and all(isinstance(v, str) for v in image):
        written: str | list[str] = [str(v) for v in image]
    elif isinstance(image, str) and image:
        written = image
    else:
        raise InputError(f"entry {n} has no {image_key!r} path", where)
    options = {k: item[k] for k in READ_OPTION_KEYS if item.get(k) is not None}
    label = item.get("label")
    label = int(label) if isinstance(label, int | float) and not isinstance(label, bool) else None
    given = item.get(id_key)
    return written, options, label, (str(given) if given is not None else None)


def _resolve(written: str | list[str], base: Path) -> str | list[str]:
    if isinstance(written, list):
        return [str(_resolve(w, base)) for w in written]
    p = Path(os.path.expanduser(written))
    return str(p if p.is_absolute() else (base / p))


def _display(written: str | list[str]) -> str:
    if isinstance(written, list):
        return f"{written[0]} (+{len(written) - 1} files)" if len(written) > 1 else written[0]
    return written


def _safe_id(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._-")[:_MAX_ID]


def _stem_id(written: str | list[str]) -> str:
    first = written[0] if isinstance(written, list) else written
    p = Path(first.rstrip("/\\"))
    name = nifti_stem(p) if is_nifti_path(p) else p.name
    return _safe_id(name)


def _disambiguate(entries: list[CohortEntry], keys: list[str], given: set[int]) -> None:
    """Append a short hash to derived ids that collide with another id (explicit ids stay)."""
    count: dict[str, int] = {}
    for e in entries:
        count[e.study_id] = count.get(e.study_id, 0) + 1
    for e in entries:
        if e.index in given or count[e.study_id] < 2:
            continue
        digest = hashlib.sha256(keys[e.index].encode("utf-8")).hexdigest()[:6]
        e.study_id = f"{e.study_id[: _MAX_ID - 7]}-{digest}"
