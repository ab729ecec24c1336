"""Bad NIfTI inputs: each is refused before any work with exit 2 and a message naming the file."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from tests.reliability.conftest import HEADER_TEXT, Case, write_nifti_study

reliability = pytest.mark.reliability


def _lying_header(path: Path, shape: tuple[int, int, int], data_bytes: int = 1024) -> Path:
    """A NIfTI file whose header declares ``shape`` float32 voxels but holds ``data_bytes``."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    hdr["vox_offset"] = 352
    hdr["descrip"] = HEADER_TEXT.encode()
    raw = hdr.binaryblock + b"\x00" * 4 + bytes(data_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def _with_header(path: Path, data: np.ndarray, **fields: object) -> Path:
    """``data`` saved with header ``fields`` set verbatim (affine taken from the header)."""
    header = nib.Nifti1Image(data, np.diag([9.0, 9.0, 10.0, 1.0])).header.copy()
    header["descrip"] = HEADER_TEXT.encode()
    for key, value in fields.items():
        header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, None, header=header), str(path))
    return path


def _explain_traced(case: Case, src: Path, model: Path, out: Path) -> tuple[Any, int]:
    """``case.explain`` and the peak of Python-traced allocations while it ran (bytes)."""
    tracemalloc.start()
    try:
        outcome = case.explain(src, model, out)
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@reliability(
    "NIfTI",
    "header declares 2 GiB of voxels, the file holds 1 KiB (.nii) — issue 12",
    "exit 2 naming the file and the size mismatch; < 64 MiB allocated",
)
def test_header_larger_than_file_is_refused_before_allocating(
    case: Case, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _lying_header(tmp_path / "inputs" / "liar.nii", (1024, 1024, 512))
    case.track(src, tiny_model)
    case.spy_on_work(monkeypatch)
    outcome, peak = _explain_traced(case, src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "header", "2.0 GiB")
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated"


@reliability(
    "NIfTI",
    "header declares 2 GiB, the gzip file holds 1 KiB (.nii.gz) — issue 12",
    "exit 2 naming the file and the size mismatch; < 64 MiB allocated",
)
def test_gzip_header_larger_than_file_is_refused_before_allocating(
    case: Case, tiny_model: Path, tmp_path: Path
) -> None:
    src = _lying_header(tmp_path / "inputs" / "liar.nii.gz", (1024, 1024, 512))
    case.track(src, tiny_model)
    outcome, peak = _explain_traced(case, src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "header", "2.0 GiB")
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB allocated"


@reliability(
    "NIfTI",
    "header declares 16 GiB, the file holds 1 KiB — issue 12",
    "exit 2 naming the file and the declared size (was: a bare MemoryError)",
)
def test_sixteen_gigabyte_claim_is_an_input_error(
    case: Case, tiny_model: Path, tmp_path: Path
) -> None:
    src = _lying_header(tmp_path / "inputs" / "huge.nii", (2048, 2048, 1024))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "16.0 GiB")


@reliability(
    "NIfTI", "file cut in the middle of its voxel data", "exit 2 naming the file: truncated"
)
def test_truncated_file(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "inputs" / "cut.nii"
    write_nifti_study(src)
    src.write_bytes(src.read_bytes()[: 352 + 12 * 12 * 10 * 2])
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "truncated")


@reliability("NIfTI", "not a NIfTI file (text with a .nii.gz name)", "exit 2 naming the file")
def test_not_a_nifti_file(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "inputs" / "notes.nii.gz"
    src.parent.mkdir(parents=True)
    src.write_text(f"patient {HEADER_TEXT}\n")
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "not a readable NIfTI")


@reliability(
    "NIfTI",
    "an axis of length zero — issue 12",
    "exit 2 naming the file and the empty axis, not blamed on the model",
)
def test_zero_length_axis(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = _with_header(tmp_path / "inputs" / "empty.nii.gz", np.zeros((0, 12, 10), np.float32))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "empty axis")
    assert "model" not in outcome.error_line().lower()


def _affine_file(path: Path, srow: np.ndarray) -> Path:
    data = np.random.default_rng(0).uniform(-200, 300, (12, 12, 10)).astype(np.float32)
    return _with_header(
        path,
        data,
        qform_code=0,
        sform_code=1,
        srow_x=srow[0],
        srow_y=srow[1],
        srow_z=srow[2],
    )


@reliability(
    "NIfTI",
    "an all-zero (singular) affine — issue 12",
    "exit 2 naming the file and the affine",
)
def test_singular_affine_names_the_file(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = _affine_file(tmp_path / "inputs" / "flat.nii.gz", np.zeros((3, 4)))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "affine")


@reliability("NIfTI", "NaN in the affine", "exit 2 naming the file and the affine")
def test_nan_affine_names_the_file(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    srow = np.array([[9.0, 0, 0, 0], [0, 9.0, 0, 0], [0, 0, np.nan, 0]])
    src = _affine_file(tmp_path / "inputs" / "nan_affine.nii.gz", srow)
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "affine")


@reliability(
    "NIfTI",
    "an RGB colour image — issue 12",
    "exit 2: 'colour images are not supported'",
)
def test_rgb_nifti(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    rgb = np.zeros((12, 12, 10), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    src = _with_header(tmp_path / "inputs" / "rgb.nii.gz", rgb)
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "colour images are not supported")


@reliability("NIfTI", "complex-valued voxels", "exit 2: complex images are not supported")
def test_complex_nifti(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = _with_header(tmp_path / "inputs" / "complex.nii.gz", np.ones((12, 12, 10), np.complex64))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "complex")


@reliability(
    "NIfTI",
    "a 4D series of three volumes for a one-channel model",
    "exit 2: the model expects 1 channel, the volume has 3 (the last axis is read as channels)",
)
def test_four_dimensional(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(0).uniform(-200, 300, (12, 12, 10, 3)).astype(np.float32)
    src = _with_header(tmp_path / "inputs" / "dyn.nii.gz", data)
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "read as channels")


@reliability("NIfTI", "NaN voxels", "exit 2 naming the file and the NaN voxels")
def test_nan_voxels(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(0).uniform(-200, 300, (12, 12, 10)).astype(np.float32)
    data[3, 4, 5] = np.nan
    src = write_nifti_study(tmp_path / "inputs" / "nan.nii.gz", data)
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "NaN")


@reliability(
    "NIfTI",
    "an all-constant volume — issue 12",
    "exit 2 naming the file: constant, nothing to explain (refused, see 'Constant volumes')",
)
def test_constant_volume(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = write_nifti_study(tmp_path / "inputs" / "blank.nii.gz", np.full((12, 12, 10), 40.0))
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "constant")


@reliability(
    "NIfTI",
    "every voxel outside the model's intensity window (an MR volume for a CT model)",
    "exit 2 naming the file and the window: constant after the model's intensity mapping",
)
def test_volume_outside_the_model_window(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    data = np.random.default_rng(0).uniform(2000, 3000, (12, 12, 10)).astype(np.float32)
    src = write_nifti_study(tmp_path / "inputs" / "mr.nii.gz", data)
    case.track(src, tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "intensity window")


@reliability("NIfTI", "input file does not exist", "exit 2 naming the file: not found")
def test_missing_input(case: Case, tiny_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "inputs" / "absent.nii.gz"
    case.track(tiny_model)
    outcome = case.explain(src, tiny_model, tmp_path / "out")
    case.fails(outcome, 2, str(src), "not found")


@reliability(
    "NIfTI",
    "a good study with identifiers in its header (descrip, aux_file)",
    "exit 0; outputs written; no identifier in any message, log or manifest",
)
def test_good_study_with_identifiers_in_its_header(
    case: Case, tiny_model: Path, study: Path, tmp_path: Path
) -> None:
    case.track(study, tiny_model)
    out = tmp_path / "out"
    outcome = case.explain(study, tiny_model, out, "--format", "nifti,png")
    case.succeeds(outcome, note="attribution, baseline, PNGs and manifest written")
    assert (out / "study_attr.nii.gz").is_file() and (out / "manifest.json").is_file()
    assert nib.load(str(out / "study_attr.nii.gz")).header["descrip"].item() != HEADER_TEXT.encode()
