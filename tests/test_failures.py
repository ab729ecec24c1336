"""The one mapping of exceptions to who can fix them, case by case."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from medattr.errors import (
    DicomSeriesError,
    InputError,
    ModelError,
    ResourceError,
    TargetError,
    VolumeError,
)
from medattr.failures import EXIT_CODES, REPORT_HINT, Failure, classify, is_out_of_memory
from medattr.phi import forget_identifiers, remember


def _raised(make: object) -> BaseException:
    """The exception ``make()`` raises, with its traceback (as the CLI would catch it)."""
    try:
        make()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("nothing raised")


def _jit_error() -> BaseException:
    @torch.jit.script
    def refuse(x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1:
            raise ValueError("no inputs accepted")
        return x

    return _raised(lambda: refuse(torch.zeros(2)))


def _pydicom_error() -> BaseException:
    from pydicom.valuerep import DA

    return _raised(lambda: DA("19700101120000"))


def _os_error(number: int) -> OSError:
    return OSError(number, os.strerror(number), "/data/out/.medattr-staging-x/a.nii.gz")


CASES = [
    # (id, exception, kind, fragment of the message)
    ("input", InputError("not a NIfTI file", "a.nii"), "input", "a.nii: not a NIfTI file"),
    ("volume", VolumeError("empty axis", "a.nii"), "input", "empty axis"),
    ("series", DicomSeriesError("missing slices", "CT"), "input", "missing slices"),
    ("target", TargetError("one scalar per sample"), "input", "one scalar"),
    ("model", ModelError("model not found", "m.ts"), "model", "m.ts: model not found"),
    ("torchscript", _jit_error(), "model", "no inputs accepted"),
    ("nonfinite", FloatingPointError("non-finite gradients"), "model", "non-finite gradients"),
    ("resource", ResourceError("not writable", "/out"), "environment", "/out: not writable"),
    ("memory", MemoryError(), "environment", "out of memory"),
    ("cuda-oom", torch.cuda.OutOfMemoryError("CUDA out of memory"), "environment", "memory"),
    ("cpu-oom", RuntimeError("DefaultCPUAllocator: can't allocate memory"), "environment", "mem"),
    ("disk-full", _os_error(errno.ENOSPC), "environment", "No space left on device"),
    ("quota", _os_error(errno.EDQUOT), "environment", "quota"),
    ("file-too-large", _os_error(errno.EFBIG), "environment", "File too large"),
    ("permission", PermissionError(errno.EACCES, "denied", "/out"), "environment", "/out"),
    ("read-only", _os_error(errno.EROFS), "environment", "Read-only file system"),
    ("not-found", FileNotFoundError(errno.ENOENT, "gone", "/in.nii"), "environment", "/in.nii"),
    ("other-os", OSError("no errno"), "internal", "OSError"),
    ("bug", KeyError("k"), "internal", "KeyError"),
    ("runtime", RuntimeError("shape mismatch"), "internal", "shape mismatch"),
    ("interrupt", KeyboardInterrupt(), "interrupted", "interrupted"),
]


@pytest.mark.parametrize(("exc", "kind", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_exception_goes_to_who_can_fix_it(exc: BaseException, kind: str, says: str) -> None:
    failure = classify(exc)
    assert failure.kind == kind
    assert failure.exit_code == EXIT_CODES[kind]
    assert says.lower() in failure.message.lower()


def test_exit_codes_by_kind() -> None:
    assert EXIT_CODES == {
        "input": 2,
        "model": 2,
        "environment": 2,
        "interrupted": 130,
        "internal": 1,
    }


def test_internal_errors_carry_the_hint_to_report_them() -> None:
    line = classify(KeyError("x")).line()
    assert line.startswith("internal error: KeyError") and REPORT_HINT in line
    assert REPORT_HINT not in classify(InputError("bad")).line()
    assert classify(ModelError("bad", "m.ts")).line() == "model error: m.ts: bad"
    assert classify(KeyboardInterrupt()).line() == "interrupted"


def test_staging_names_do_not_leak_from_os_errors() -> None:
    # the CLI's writers wrap OSErrors with the output directory; a bare one names its file,
    # but the message is built from the error number, not the library's wording
    failure = classify(_os_error(errno.ENOSPC))
    assert "free some space" in failure.message


def test_header_library_messages_are_withheld() -> None:
    failure = classify(_pydicom_error())
    assert failure.kind == "internal"
    assert "19700101" not in failure.message
    assert "pydicom" in failure.message and "withheld" in failure.message


def test_remembered_identifiers_are_redacted_from_every_kind() -> None:
    remember(["Doe^Jane", "MRN-77"])
    try:
        for exc in (
            InputError("study of Doe^Jane"),
            ModelError("MRN-77 failed"),
            ResourceError("Doe Jane: disk"),
            RuntimeError("bug near MRN-77"),
        ):
            message = classify(exc).message
            assert "Jane" not in message and "MRN-77" not in message, message
    finally:
        forget_identifiers()


def test_out_of_memory_is_recognised() -> None:
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_failure_is_a_value() -> None:
    assert classify(InputError("x")) == Failure("input", 2, "x")
