"""``medattr explain`` on DICOM series: outputs in the source study, and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medattr.cli import main


def _explain(src: Path, model: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "explain",
            str(src),
            "--model",
            str(model),
            "--out",
            str(out),
            "--steps",
            "4",
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )


def test_every_format_lands_in_the_source_study(
    ct5n: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fmt = "nifti,png,dicom-rgb,dicom-pm,dicom-seg"
    assert _explain(ct5n, tiny_model, out, "--format", fmt, "--seg-top-percent", "5") == 0
    m = json.loads((out / "manifest.json").read_text())
    ddir = out / m["outputs"]["dicom_dir"]
    files = sorted(ddir.iterdir())
    assert [p.name for p in files] == sorted(m["outputs"]["dicom_files"])
    source = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(ct5n.iterdir())]
    study = {d.StudyInstanceUID for d in source}
    frame = {d.FrameOfReferenceUID for d in source}
    outputs = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    assert {d.StudyInstanceUID for d in outputs} == study
    assert {d.FrameOfReferenceUID for d in outputs} == frame
    series = {d.SeriesInstanceUID for d in outputs}
    # RGB overlay, signed map, map of the evidence against, SEG
    assert len(series) == 4 and not series & {d.SeriesInstanceUID for d in source}
    kinds = {d.SOPClassUID.name for d in outputs}
    assert any("Secondary Capture" in k for k in kinds)
    assert any("Parametric Map" in k for k in kinds) and any("Segmentation" in k for k in kinds)
    assert sum("Secondary Capture" in d.SOPClassUID.name for d in outputs) == len(source)
    # the NIfTI output has the geometry medattr read from the series
    attr = nib.load(str(out / m["outputs"]["attribution_nifti"]))
    assert attr.shape == tuple(m["input"]["shape"])
    np.testing.assert_allclose(attr.affine, np.asarray(m["input"]["affine_ras"]), atol=1e-4)
    assert m["input"]["format"] == "dicom"


def test_a_series_with_a_gap_is_refused_and_nothing_written(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pydicom.data import get_testdata_file

    ct2 = Path(get_testdata_file("dicomdirtests/77654033/CT2/17136"))
    src = tmp_path / "ct2"
    shutil.copytree(ct2.parent, src)
    out = tmp_path / "out"
    assert _explain(src, tiny_model, out) == 2
    err = capsys.readouterr().err
    assert str(src) in err and "gap" in err.lower()
    assert not out.exists()


def test_dicom_formats_need_a_dicom_input(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), str(path))
    out = tmp_path / "out"
    assert _explain(path, tiny_model, out, "--format", "nifti,dicom-seg") == 2
    assert "need a DICOM input" in capsys.readouterr().err
    assert not out.exists()


def test_several_series_need_a_choice(
    series_factory,
    tiny_model: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    series_factory("mixed/a", series_number=3, description="Axial A")
    b = series_factory("mixed/b", series_number=4, description="Axial B")
    root = tmp_path / "mixed"
    out = tmp_path / "out"
    assert _explain(root, tiny_model, out) == 2
    err = capsys.readouterr().err
    assert "Axial A" in err and "Axial B" in err
    assert not out.exists()
    uid = pydicom.dcmread(b[0], stop_before_pixels=True).SeriesInstanceUID
    assert _explain(root, tiny_model, out, "--series-uid", uid) == 0
    assert _explain(root, tiny_model, tmp_path / "out2", "--series-description", "axial b") == 0
