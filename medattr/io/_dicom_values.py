"""Malformed but harmless header values: repaired or left empty, named by keyword only.

Modalities and converters sometimes store dates with a time appended (``19700101120000`` as
a DA), ISO separators (``1970-01-01``), times with colons (``10:15:00``), or person names
with too many component groups. They do not affect the pixels, but highdicom refuses to copy
them into a derived series, which lost the whole study. :func:`repair_header_values` checks
every top-level DA, TM, DT and PN attribute of the source headers (in memory; the files are
never touched): a valid value is kept as it is, a repairable one is repaired (the date part
kept, separators removed), anything else is left empty (these attributes are Type 2 or 3 in
the modules the writers copy). What was done is returned per attribute keyword, never with
the value, for the manifest's warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydicom import config
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import DA, DT, TM, validate_value

__all__ = ["REPAIRED_VRS", "check_value", "repair_header_values"]

REPAIRED_VRS = {"DA": "date", "TM": "time", "DT": "date-time", "PN": "person name"}
"""Value representations checked, with their names for messages."""

_DATE = re.compile(r"(\d{4})[-./]?(\d{2})[-./]?(\d{2})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,6})?)?")


def _valid(vr: str, value: str) -> bool:
    """Whether pydicom (hence highdicom) accepts ``value`` for ``vr``."""
    if not value:
        return True
    try:
        validate_value(vr, value, config.RAISE)
        if vr == "DA":
            DA(value)
        elif vr == "TM":
            TM(value)
        elif vr == "DT":
            DT(value)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def check_value(vr: str, value: str) -> tuple[str, str | None]:
    """``(value to keep, what was done)`` for one value of a DA/TM/DT/PN attribute; what was
    done is ``None`` when the value is valid as it is."""
    text = value.strip(" \x00")
    if _valid(vr, text):
        return text, None
    if vr == "DA":
        m = _DATE.match(text)
        if m and _valid("DA", "".join(m.groups())):
            rest = text[m.end() :].strip()
            return "".join(m.groups()), "kept its date part" if rest else "removed separators"
    elif vr == "TM":
        m = _TIME.fullmatch(text)
        if m:
            hh, mm, ss, frac = m.groups()
            fixed = f"{int(hh):02d}{mm}{ss or ''}{frac or ''}"
            if _valid("TM", fixed):
                return fixed, "removed separators"
    elif vr == "DT":
        m = _DATETIME.fullmatch(text)
        if m:
            fixed = "".join(g for g in m.groups()[:6] if g) + (m.group(7) or "")
            if _valid("DT", fixed):
                return fixed, "removed separators"
    return "", "left empty"


def _text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)  # str, PersonName, DA/TM/DT objects


def repair_header_values(datasets: Iterable[Dataset]) -> tuple[str, ...]:
    """Repair or empty, in place, the invalid top-level DA/TM/DT/PN values of ``datasets``.

    Returns one sentence per attribute changed (by keyword, never with its value), e.g.
    ``"source attribute PatientBirthDate is not a valid date (DA); kept its date part in the
    DICOM outputs"``.
    """
    notes: dict[str, str] = {}
    for ds in datasets:
        for tag in list(ds.keys()):
            try:
                elem = ds.get_item(tag)
            except Exception:  # an element pydicom cannot even parse is not copied either
                continue
            vr = str(getattr(elem, "VR", ""))
            if vr not in REPAIRED_VRS or elem is None:
                continue
            text = _text(elem.value)
            if not text:
                continue
            kept: list[str] = []
            done: list[str] = []
            for part in text.split("\\"):
                value, what = check_value(vr, part)
                kept.append(value)
                if what is not None:
                    done.append(what)
            if not done:
                continue
            new = "\\".join(kept) if any(kept) else ""
            ds[tag] = DataElement(tag, vr, new)
            keyword = keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
            action = "left empty" if "left empty" in done else done[0]
            notes[keyword] = (
                f"source attribute {keyword} is not a valid {REPAIRED_VRS[vr]} ({vr}); "
                f"{action} in the DICOM outputs"
            )
    return tuple(notes.values())
