"""What all DICOM outputs share: provenance, identity, checks on the inputs, atomic writing."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from medattr.errors import InputError
from medattr.io import (
    AlgorithmInfo,
    read_dicom_series,
    write_dicom_parametric_map,
    write_dicom_rgb,
    write_dicom_seg,
    write_nifti,
)
from medattr.io.dicom_derived import NOT_FOR_DIAGNOSIS, series_description

WRITERS = [write_dicom_rgb, write_dicom_parametric_map, write_dicom_seg]

STUDY_ATTRIBUTES = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "ReferringPhysicianName",
]


def _outputs(derived) -> list[pydicom.Dataset]:
    paths = [*derived.rgb, derived.pm, derived.pm_negative, derived.seg]
    return [pydicom.dcmread(p) for p in paths]


def test_algorithm_info_validates_and_describes():
    info = AlgorithmInfo("integrated_gradients", "zero", "class 1")
    assert info.parameters() == {
        "method": "integrated_gradients",
        "baseline": "zero",
        "target": "class 1",
    }
    assert "integrated_gradients" in info.summary() and NOT_FOR_DIAGNOSIS in info.summary()
    with pytest.raises(InputError, match=r"AlgorithmInfo\.method"):
        AlgorithmInfo("", "zero")


@pytest.mark.parametrize("method", ["ig", "expected_gradients_with_a_very_long_name" * 3])
def test_series_description_fits_and_warns(method):
    text = series_description("RGB overlay", AlgorithmInfo(method, "zero"))
    assert len(text) <= 64 and text.endswith(NOT_FOR_DIAGNOSIS)


def test_outputs_are_new_series_in_the_source_study(derived):
    source = pydicom.dcmread(derived.source[0])
    outputs = _outputs(derived)
    series = {ds.SeriesInstanceUID for ds in outputs}
    assert len(series) == 4 and source.SeriesInstanceUID not in series
    sops = [ds.SOPInstanceUID for ds in outputs]
    assert len(set(sops)) == len(sops)
    for ds in outputs:
        for uid in (ds.SeriesInstanceUID, ds.SOPInstanceUID):
            assert UID(uid).is_valid
        assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
        assert ds.ImageType[0] == "DERIVED"
        assert ds.SeriesDescription.endswith(NOT_FOR_DIAGNOSIS)
        assert "integrated_gradients" in ds.SeriesDescription
        for kw in STUDY_ATTRIBUTES:  # copied, never invented
            assert kw in ds, kw
            assert ds[kw].value == source[kw].value, kw


def test_outputs_record_the_algorithm(derived):
    for ds in _outputs(derived):
        items = [e for e in ds.ContributingEquipmentSequence if e.Manufacturer == "medattr"]
        assert len(items) == 1
        text = items[0].ContributionDescription
        assert derived.algorithm.version in text
        for value in ("integrated_gradients", "blur(4mm)", "class 1 logit"):
            assert value in text


def test_nifti_input_gets_no_dicom_outputs(derived, tmp_path):
    from medattr.io import read_nifti

    v = derived.volume
    nii = read_nifti(write_nifti(tmp_path / "v.nii.gz", v.array, v.affine))
    for writer in WRITERS:
        with pytest.raises(InputError, match="needs a volume read from a DICOM series"):
            writer(nii, derived.attribution, tmp_path / "out", algorithm=derived.algorithm)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("writer", WRITERS)
def test_bad_attribution_is_refused(derived, tmp_path, writer):
    v, a = derived.volume, derived.attribution
    with pytest.raises(InputError, match="attribution has shape"):
        writer(v, a[:-1], tmp_path / "o", algorithm=derived.algorithm)
    bad = a.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        writer(v, bad, tmp_path / "o", algorithm=derived.algorithm)
    moved = v.with_array(v.array)
    moved.affine = moved.affine.copy()
    moved.affine[0, 3] += 1.0
    with pytest.raises(InputError, match="affine differs"):
        writer(moved, a, tmp_path / "o", algorithm=derived.algorithm)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("writer", WRITERS)
def test_failure_leaves_nothing_partial(derived, tmp_path, writer, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    calls = {"n": 0}
    original = pydicom.Dataset.save_as

    def flaky(self, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 3 or writer is not write_dicom_rgb:
            raise OSError("disk full")
        return original(self, *args, **kw)

    monkeypatch.setattr(pydicom.Dataset, "save_as", flaky)
    with pytest.raises(OSError, match="disk full"):
        writer(derived.volume, derived.attribution, out, algorithm=derived.algorithm)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_rewriting_replaces_the_previous_series(tmp_path, synth):
    alg = AlgorithmInfo("ig", "zero")
    synth.write_series(tmp_path / "long", synth.SeriesSpec(n=6))
    synth.write_series(tmp_path / "short", synth.SeriesSpec(n=3))
    out = tmp_path / "out"
    for name in ("long", "short"):
        vol = read_dicom_series(tmp_path / name)
        attr = synth.hot_attribution(vol.spatial_shape)
        rgb = write_dicom_rgb(vol, attr, out, algorithm=alg)
        write_dicom_parametric_map(vol, attr, out, algorithm=alg)
    names = sorted(p.name for p in out.iterdir())
    pm_names = ["attribution_pm.dcm", "attribution_pm_negative.dcm"]
    assert names == sorted([p.name for p in rgb] + pm_names)
    assert len({pydicom.dcmread(p).SeriesInstanceUID for p in rgb}) == 1
    # a run without the negative map leaves no map of an earlier run behind
    write_dicom_parametric_map(vol, attr, out, algorithm=alg, negative_map=False)
    assert not (out / "attribution_pm_negative.dcm").exists()


def test_lossy_source_compression_is_inherited_by_every_output(tmp_path, synth):
    """Once lossy, always lossy (PS3.3 C.7.6.1.1.5): the RGB series, the maps and the SEG."""
    paths = synth.write_series(tmp_path / "src", synth.SeriesSpec(n=4))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = [8.5]
        ds.LossyImageCompressionMethod = ["ISO_10918_1"]
        ds.save_as(path, enforce_file_format=True)
    vol = read_dicom_series(tmp_path / "src")
    attr = synth.hot_attribution(vol.spatial_shape)
    alg = AlgorithmInfo("ig", "zero")
    out = tmp_path / "out"
    written = [
        *write_dicom_rgb(vol, attr, out, algorithm=alg),
        *write_dicom_parametric_map(vol, attr, out, algorithm=alg),
        *write_dicom_seg(vol, attr, out, algorithm=alg),
    ]
    for path in written:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.LossyImageCompression == "01", path.name
        assert float(ds.LossyImageCompressionRatio) == 8.5, path.name
        assert ds.LossyImageCompressionMethod == "ISO_10918_1", path.name
    # and a lossless source gives "00" with neither ratio nor method
    plain = read_dicom_series(
        synth.write_series(tmp_path / "plain", synth.SeriesSpec(n=4))[0].parent
    )
    for path in write_dicom_rgb(plain, attr, tmp_path / "o2", algorithm=alg)[:1]:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.LossyImageCompression == "00" and "LossyImageCompressionRatio" not in ds
