from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medattr.errors import VolumeError
from medattr.io import read_nifti, staged_directory, write_nifti

OBLIQUE = np.array(
    [
        [0.0, -2.9, 0.6, 40.0],
        [3.0, 0.0, 0.0, -25.0],
        [0.0, 0.5, 4.8, 10.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def test_round_trip_keeps_an_oblique_anisotropic_affine(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(7, 9, 5)).astype(np.float32)
    src = tmp_path / "src.nii.gz"
    nib.save(nib.Nifti1Image(data, OBLIQUE), str(src))
    vol = read_nifti(src)
    assert vol.array.shape == (1, 7, 9, 5)
    assert vol.spacing == pytest.approx((3.0, float(np.hypot(2.9, 0.5)), float(np.hypot(0.6, 4.8))))
    out = write_nifti(tmp_path / "out.nii.gz", vol.array[0] * 2, vol.affine, like=vol)
    back = nib.load(str(out))
    assert np.array_equal(back.affine, nib.load(str(src)).affine)  # bit-identical
    assert back.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(back.dataobj), data * 2)
    # without a template the affine survives to float32 precision (sform storage)
    plain = nib.load(str(write_nifti(tmp_path / "plain.nii", data, OBLIQUE)))
    np.testing.assert_allclose(plain.affine, OBLIQUE, atol=1e-5)


def test_reader_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(VolumeError, match="file not found"):
        read_nifti(tmp_path / "nope.nii.gz")
    six = tmp_path / "6d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2, 2, 2), np.float32), np.eye(4)), str(six))
    with pytest.raises(VolumeError, match=r"expected a 3D volume.*\(3, 3, 3, 2, 2, 2\)"):
        read_nifti(six)
    nan = tmp_path / "nan.nii"
    arr = np.zeros((3, 3, 3), np.float32)
    arr[1, 1, 1] = np.inf
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(nan))
    with pytest.raises(VolumeError, match="NaN or infinite") as info:
        read_nifti(nan)
    assert str(nan) in str(info.value)
    assert read_nifti(nan, allow_nonfinite=True).array.shape == (1, 3, 3, 3)
    single = tmp_path / "single.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), str(single))
    assert read_nifti(single).spatial_shape == (3, 4, 5)


def test_input_is_never_modified(tmp_path: Path) -> None:
    src = tmp_path / "src.nii"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4)), str(src))
    before = (src.read_bytes(), os.stat(src).st_mtime_ns)
    vol = read_nifti(src)
    vol.array += 5
    assert (src.read_bytes(), os.stat(src).st_mtime_ns) == before


def test_staged_directory_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_directory(out) as stage:
        stage("a.txt").write_text("half")
        raise RuntimeError("boom")
    assert not out.exists()
    existing = tmp_path / "keep"
    existing.mkdir()
    (existing / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staged_directory(existing) as stage:
        stage("new.txt").write_text("x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in existing.iterdir()) == ["old.txt"]
    with staged_directory(existing) as stage:
        stage("new.txt").write_text("x")
        stage("manifest.json").write_text("{}")
    assert sorted(p.name for p in existing.iterdir()) == ["manifest.json", "new.txt", "old.txt"]


def test_outputs_follow_the_umask_not_mkstemp(tmp_path: Path) -> None:
    out = write_nifti(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.float32), np.eye(4))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    with staged_directory(tmp_path / "s") as stage:
        d = stage("series")
        d.mkdir()
        (d / "x.dcm").write_bytes(b"x")
    assert (tmp_path / "s" / "series").stat().st_mode & 0o777 == 0o777 & ~umask


def _header_only(path: Path, shape: tuple[int, ...], data: bytes) -> Path:
    import gzip

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.float32)
    hdr.set_sform(np.eye(4), code=1)
    hdr["vox_offset"] = 352
    raw = hdr.binaryblock + b"\x00" * 4 + data
    path.write_bytes(gzip.compress(raw, compresslevel=1) if path.suffix == ".gz" else raw)
    return path


def test_declared_size_is_checked_before_the_voxels_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medattr.io.nifti as nifti

    # a plausible gzip ratio, more data than the stream-check threshold: counted, not read
    monkeypatch.setattr(nifti, "STREAM_CHECK_BYTES", 1024)
    noise = np.random.default_rng(0).bytes(64 * 64 * 32 * 4)  # incompressible
    short = _header_only(tmp_path / "short.nii.gz", (64, 64, 64), noise)
    read = []
    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", lambda *a, **k: read.append(1))
    with pytest.raises(VolumeError, match=r"declares 1.0 MiB .* holds only 512.0 KiB"):
        read_nifti(short)
    # deflate cannot reach this ratio: refused from the file size alone
    absurd = _header_only(tmp_path / "absurd.nii.gz", (1024, 1024, 1024), bytes(16))
    with pytest.raises(VolumeError, match=r"the compressed file \(.*\) cannot hold that much"):
        read_nifti(absurd)
    assert read == []


def test_a_complete_gzip_file_passes_the_stream_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medattr.io.nifti as nifti

    monkeypatch.setattr(nifti, "STREAM_CHECK_BYTES", 1024)
    data = np.arange(16 * 16 * 8, dtype=np.float32).reshape(16, 16, 8)
    path = tmp_path / "whole.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    np.testing.assert_array_equal(read_nifti(path).array[0], data)


def test_voxels_that_cannot_fit_in_memory_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medattr.io.nifti as nifti
    from medattr.errors import ResourceError

    path = tmp_path / "v.nii"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 16), np.float32), np.eye(4)), str(path))
    monkeypatch.setattr(nifti, "available_memory", lambda: 1000)
    with pytest.raises(ResourceError, match=r"needs about 16.0 KiB of memory, 1000 B is available"):
        read_nifti(path)
