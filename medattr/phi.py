"""Keeping patient identifiers out of everything that leaves the process.

Every message medattr lets out passes one of these gates: log records through
:class:`RedactingFilter` (the command line installs it on its stderr and log-file handlers;
embedders can install it on theirs with :func:`install`), error messages through
:func:`exception_text` (which :func:`medattr.failures.classify` uses), manifests and cohort
summaries through :func:`redact_json`. Two mechanisms work together:

1. **Identifiers seen.** The DICOM reader hands every header it reads to
   :func:`remember_identifiers`, which keeps the values of the identifying attributes
   (:data:`IDENTIFYING_KEYWORDS`: names, IDs, birth date, accession number, …);
   :func:`redact` replaces each of them, wherever it appears, by ``<redacted>``.
2. **Third-party text.** pydicom, highdicom, nibabel and the other libraries that parse
   headers quote offending values in their exceptions and warnings (``Unable to convert
   '19700101120000' to 'DA' object``). Their exception messages are withheld (only the type and
   the library are shown), and their log records lose every quoted value and long digit run.

Examples
--------
>>> from pydicom.dataset import Dataset
>>> ds = Dataset()
>>> ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-0042"
>>> remember_identifiers(ds)
>>> redact("study of Doe^Jane (MRN-0042)")
'study of <redacted> (<redacted>)'
>>> forget_identifiers()
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from pydicom.multival import MultiValue

__all__ = [
    "HEADER_LIBRARIES",
    "IDENTIFYING_KEYWORDS",
    "REDACTED",
    "RedactingFilter",
    "exception_origin",
    "exception_text",
    "forget_identifiers",
    "install",
    "redact",
    "redact_json",
    "remember",
    "remember_identifiers",
    "safe_traceback",
    "third_party_text",
]

REDACTED = "<redacted>"

IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MilitaryRank",
    "MedicalRecordLocator",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "RequestingPhysician",
)
"""DICOM attributes whose values identify a patient (after the PS3.15 basic profile)."""

HEADER_LIBRARIES = (
    "pydicom",
    "highdicom",
    "nibabel",
    "SimpleITK",
    "gdcm",
    "pylibjpeg",
    "openjpeg",
    "libjpeg",
    "jpeg_ls",
    "pynetdicom",
    "dicomweb_client",
)
"""Packages that parse headers: their exception messages are withheld, never shown raw."""

_MIN_LENGTH = 3  # shorter values ("O", "M") would redact ordinary words
_CAPACITY = 4096  # most recent values kept (a cohort of thousands of studies stays fast)
_QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|b'[^'\n]{0,200}'")
_DIGITS = re.compile(r"(?<![\w.])\d{6,}(?![\w.])")
_MACHINE = re.compile(r"[0-9a-fA-F]{16,}|\d+(?:\.\d+){2,}")
"""Machine-made tokens no identifier is redacted inside: hex digests (SHA-256 of files,
fingerprints) and dotted numeric UIDs. Redacting a short remembered ID inside them would only
corrupt them (a record whose fingerprint changed is never resumed)."""

_lock = threading.Lock()
_values: OrderedDict[str, None] = OrderedDict()
_pattern: re.Pattern[str] | None = None


# ----------------------------------------------------------------------------- remembering
def _variants(value: str) -> set[str]:
    """The spellings under which an identifier may appear in text."""
    v = value.strip(" \x00")
    out = {v}
    if "^" in v:  # person names: Doe^Jane, Doe Jane, Doe, Jane
        parts = [p for p in v.replace("=", "^").split("^") if p.strip()]
        out |= {" ".join(parts), ", ".join(parts)}
    m = re.match(r"(\d{4})(\d{2})(\d{2})", v)
    if m:  # dates, also the date part of a malformed date-time
        out |= {m.group(0), f"{m.group(1)}-{m.group(2)}-{m.group(3)}"}
    return {s for s in out if len(s.strip()) >= _MIN_LENGTH}


def remember(values: Iterable[str]) -> None:
    """Redact these values (and their common spellings) from now on."""
    global _pattern
    with _lock:
        for value in values:
            for v in _variants(str(value)):
                _values[v] = None
                _values.move_to_end(v)
        while len(_values) > _CAPACITY:
            _values.popitem(last=False)
        _pattern = None


def _decoded(raw: Any) -> list[str]:
    if isinstance(raw, bytes):
        texts = {raw.decode("latin-1")}
        try:
            texts.add(raw.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        out: list[str] = []
        for t in texts:
            out += t.split("\\")
        return out
    if isinstance(raw, list | tuple | MultiValue):
        return [str(v) for v in raw]
    return str(raw).split("\\")  # str, PersonName, numbers


def remember_identifiers(dataset: Any) -> None:
    """Remember the identifying attributes of a pydicom ``Dataset`` (raw values are read as
    stored, without converting them, so a malformed value triggers no warning)."""
    from pydicom.datadict import tag_for_keyword

    found: list[str] = []
    for keyword in IDENTIFYING_KEYWORDS:
        tag = tag_for_keyword(keyword)
        if tag is None or tag not in dataset:
            continue
        try:
            elem = dataset.get_item(tag)
        except Exception:  # an unreadable element cannot be quoted either
            continue
        value = getattr(elem, "value", None)
        if value is None or getattr(elem, "VR", "") == "SQ":
            continue
        found += _decoded(value)
    if found:
        remember(found)


def forget_identifiers() -> None:
    """Forget every remembered value (tests; a long-running service between patients)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def redact(text: str) -> str:
    """``text`` with every remembered identifier replaced by ``<redacted>``."""
    global _pattern
    if not text:
        return text
    with _lock:
        if not _values:
            return text
        if _pattern is None:
            ordered = sorted(_values, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)
        pattern = _pattern
    machine = [m.span() for m in _MACHINE.finditer(text)]

    def replace(m: re.Match[str]) -> str:
        start, end = m.span()
        if any(s <= start and end <= e for s, e in machine):
            return m.group(0)
        # a whole token only: "1234" is not redacted inside "91234", nor "Jane" in "Janet"
        if start > 0 and _same_kind(text[start - 1], text[start]):
            return m.group(0)
        if end < len(text) and _same_kind(text[end - 1], text[end]):
            return m.group(0)
        return REDACTED

    return pattern.sub(replace, text)


def _same_kind(a: str, b: str) -> bool:
    """Both digits or both letters: a match ending between them would split a token."""
    return (a.isdigit() and b.isdigit()) or (a.isalpha() and b.isalpha())


def redact_json(data: Any) -> Any:
    """A copy of JSON-like ``data`` with :func:`redact` applied to every string (and key)."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(k) if isinstance(k, str) else k: redact_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redact_json(v) for v in data]
    return data


# ----------------------------------------------------------------------------- exceptions
def third_party_text(text: str, limit: int = 300) -> str:
    """Text from a library that may quote header values: quoted values and long digit runs
    replaced by ``<value>``, identifiers redacted, shortened to ``limit`` characters."""
    out = _DIGITS.sub("<value>", _QUOTED.sub("<value>", str(text)))
    out = redact(" ".join(out.split()))
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _package(module: str | None) -> str:
    return (module or "").split(".", 1)[0]


def exception_origin(exc: BaseException) -> str | None:
    """The header-parsing library (:data:`HEADER_LIBRARIES`) an exception was raised in, if
    any: the innermost frame of its traceback that belongs to one, else its type's module."""
    tb: TracebackType | None = exc.__traceback__
    found = None
    while tb is not None:
        pkg = _package(tb.tb_frame.f_globals.get("__name__"))
        if pkg in HEADER_LIBRARIES:
            found = pkg
        tb = tb.tb_next
    if found is None and _package(type(exc).__module__) in HEADER_LIBRARIES:
        found = _package(type(exc).__module__)
    return found


def exception_text(exc: BaseException) -> str:
    """What may be shown of ``exc``: medattr's own messages (built from vetted values) and other
    code's are redacted (and, but for medattr's, prefixed with the type); a header-parsing
    library's message (:data:`HEADER_LIBRARIES`) is withheld."""
    from medattr.errors import MedattrError

    if isinstance(exc, MedattrError):
        return redact(str(exc))
    origin = exception_origin(exc)
    if origin is not None:
        return f"{type(exc).__name__} in {origin} (message withheld: it may quote header values)"
    message = " ".join(redact(str(exc)).split())
    if len(message) > 500:
        message = message[:497] + "..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def safe_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` (and its causes) with every message made safe."""
    parts: list[str] = []
    seen: set[int] = set()
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    for i, e in enumerate(reversed(chain)):
        if i:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(redact(line) for line in traceback.format_tb(e.__traceback__))
        text = exception_text(e)
        parts.append(text if text.startswith(type(e).__name__) else f"{type(e).__name__}: {text}")
        parts.append("\n")
    return "".join(parts).rstrip("\n")


# ----------------------------------------------------------------------------- logging
class RedactingFilter(logging.Filter):
    """A handler filter that makes every record safe before it is formatted.

    medattr's own records are redacted; third-party records (highdicom, pydicom, warnings
    captured by ``logging.captureWarnings``) additionally lose quoted values; tracebacks are
    rendered with :func:`safe_traceback`. ``third_party_level`` drops third-party records below
    it (``logging.WARNING`` keeps a command line quiet).
    """

    def __init__(self, third_party_level: int = logging.NOTSET) -> None:
        super().__init__()
        self.third_party_level = third_party_level

    def filter(self, record: logging.LogRecord) -> bool:
        own = record.name == "medattr" or record.name.startswith("medattr.")
        if not own and record.levelno < self.third_party_level:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show the template only
            message = str(record.msg)
        record.msg = redact(message) if own else third_party_text(message, limit=2000)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = safe_traceback(record.exc_info[1])
        return True


def install(handler: logging.Handler, third_party_level: int = logging.NOTSET) -> None:
    """Add a :class:`RedactingFilter` to ``handler`` (once)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter(third_party_level))
