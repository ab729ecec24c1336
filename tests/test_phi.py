"""Identifiers remembered from DICOM headers never leave the process; third-party text that
can quote header values is reduced or withheld."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from medattr.phi import (
    REDACTED,
    RedactingFilter,
    exception_origin,
    exception_text,
    forget_identifiers,
    install,
    redact,
    redact_json,
    remember,
    remember_identifiers,
    safe_traceback,
    third_party_text,
)


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    forget_identifiers()
    yield
    forget_identifiers()


def test_names_ids_and_dates_are_redacted_in_their_usual_spellings() -> None:
    remember(["Doe^Jane", "MRN-0042", "19700101"])
    text = "Doe^Jane, Doe Jane, DOE JANE, MRN-0042, mrn-0042, 19700101, 1970-01-01, Jane"
    assert redact(text) == ", ".join([REDACTED] * 7) + ", Jane"


def test_the_date_part_of_a_malformed_date_is_remembered() -> None:
    remember(["19700101120000"])
    assert redact("born 19700101") == f"born {REDACTED}"


def test_short_values_are_not_remembered() -> None:
    remember(["O", "M", "AB"])
    assert redact("OMAB is fine") == "OMAB is fine"


def test_raw_header_values_are_remembered_without_converting_them() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-0042"
    ds.OtherPatientIDs = ["ALT-1", "ALT-2"]
    ds.add(DataElement(0x00100030, "DA", "19700101120000"))  # malformed PatientBirthDate
    ds.Modality = "CT"
    remember_identifiers(ds)
    assert redact("Doe^Jane MRN-0042 ALT-2 19700101 CT") == " ".join([REDACTED] * 4) + " CT"


def test_identifiers_from_a_file_read_as_stored(tmp_path: Path) -> None:
    from tests.io.conftest import PATIENT, SeriesSpec, write_series

    path = write_series(tmp_path / "s", SeriesSpec(rows=4, cols=4, n=1))[0]
    remember_identifiers(pydicom.dcmread(path, defer_size=2048))
    for key in ("PatientName", "PatientID", "PatientBirthDate"):
        assert redact(f"x {PATIENT[key]} y") == f"x {REDACTED} y"


def test_a_short_id_is_not_redacted_inside_hashes_uids_or_longer_tokens() -> None:
    """A cohort whose records lost part of their fingerprint to a patient ID "134" was never
    resumed: digests, UIDs and longer numbers are left whole; the ID itself still goes."""
    digest = "7224981c18134c5bbde58aba9b392cd27b1b495a542292b17e2436192987278f"
    remember(["134", "Doe^Jane"])
    kept = f"sha256 {digest}, uid 1.2.840.134.7, 91340 mm, Janet"
    assert redact(kept) == kept
    record = {"fingerprint": digest, "sha256": {"a.nii.gz": digest}}
    assert redact_json(record) == record
    assert redact("id 134, dob 134T12, Doe^Jane.") == (
        f"id {REDACTED}, dob {REDACTED}T12, {REDACTED}."
    )


def test_redact_json_walks_keys_and_values() -> None:
    remember(["MRN-0042"])
    data = {"MRN-0042": ["a MRN-0042", 3, {"k": "MRN-0042"}], "n": 1.5, "t": ("MRN-0042",)}
    assert redact_json(data) == {
        REDACTED: [f"a {REDACTED}", 3, {"k": REDACTED}],
        "n": 1.5,
        "t": [REDACTED],
    }


def test_third_party_text_loses_quoted_values_and_long_numbers() -> None:
    text = (
        "Invalid value for VR DA: '19700101120000' and \"Doe^Jane\" in 1234567, UID 1.2.840.10008"
    )
    out = third_party_text(text)
    assert "19700101" not in out and "Doe" not in out and "1234567" not in out
    assert "Invalid value for VR DA" in out and "1.2.840.10008" in out


BIRTH = "1970" + "0101"  # never spelled out in a source line a traceback shows


def _pydicom_error() -> BaseException:
    from pydicom.valuerep import DA

    try:
        DA(BIRTH + "120000")
    except ValueError as exc:
        return exc
    raise AssertionError("pydicom accepted a malformed date")


def test_header_library_exceptions_are_withheld() -> None:
    exc = _pydicom_error()
    assert exception_origin(exc) == "pydicom"
    text = exception_text(exc)
    assert "19700101" not in text and "withheld" in text and text.startswith("ValueError")
    assert exception_origin(ValueError("x")) is None


def test_other_exceptions_are_redacted_not_withheld() -> None:
    remember(["Doe^Jane"])
    assert exception_text(KeyError("Doe^Jane")) == f"KeyError: '{REDACTED}'"


def test_tracebacks_are_made_safe() -> None:
    exc = _pydicom_error()
    try:
        raise RuntimeError("writing failed") from exc
    except RuntimeError as outer:
        text = safe_traceback(outer)
    assert "Traceback" in text and "writing failed" in text and "withheld" in text
    assert "19700101" not in text


def test_the_filter_makes_every_record_safe() -> None:
    remember(["Doe^Jane"])
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    install(handler, third_party_level=logging.WARNING)
    install(handler)  # once only
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    own, other = logging.getLogger("medattr.test_phi"), logging.getLogger("highdicom.test_phi")
    for lg in (own, other):
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
    try:
        own.info("study of %s", "Doe^Jane")
        other.info("chatty: source UID 1.2.3")  # below WARNING: dropped
        other.warning("Invalid value for VR DA: '%s'", "19700101120000")
        try:
            raise _pydicom_error()
        except ValueError:
            own.exception("failed")
    finally:
        for lg in (own, other):
            lg.removeHandler(handler)
            lg.propagate = True
    assert records[0] == f"study of {REDACTED}"
    assert len(records) == 3 and "chatty" not in "".join(records)
    assert "19700101" not in records[1] and "<value>" in records[1]
    assert "Traceback" in records[2] and "withheld" in records[2] and "19700101" not in records[2]
