"""Reading DICOM series: order, geometry, rescale, multi-frame, compression, bad series."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

from medattr.errors import DicomSeriesError, InputError
from medattr.io import list_dicom_series, read_dicom_series, read_volume
from medattr.io.dicom import LPS_TO_RAS, DicomReference

TESTDATA = Path(pydicom.__file__).parent / "data" / "test_files"


def _expected(vol, synth) -> np.ndarray:
    """The phantom sampled at every voxel centre of ``vol`` through its (RAS) affine."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in vol.spatial_shape], indexing="ij"), -1)
    ras = ijk @ vol.affine[:3, :3].T + vol.affine[:3, 3]
    return synth.phantom_lps(ras * np.array([-1.0, -1.0, 1.0]))


def _oblique(synth, **kw):
    th, ph = np.deg2rad(20.0), np.deg2rad(35.0)
    u = [np.cos(th), np.sin(th), 0.0]
    v = [-np.sin(th) * np.cos(ph), np.cos(th) * np.cos(ph), np.sin(ph)]
    return synth.SeriesSpec(orientation=[*u, *v], step=4.0, n=14, **kw)


def _all_messages(exc: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    return str(exc) + "\n" + "\n".join(r.getMessage() for r in caplog.records)


# --- real series -----------------------------------------------------------------------------


def test_ct5n_sorted_by_position_not_instance_number(ct5n):
    vol = read_dicom_series(ct5n)
    files = sorted(ct5n.iterdir())
    headers = [pydicom.dcmread(f) for f in files]
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    numbers = [int(h.InstanceNumber) for h in headers]
    # the premise: InstanceNumber runs against z in this series
    assert np.corrcoef(z, numbers)[0, 1] < -0.99
    assert vol.array.shape == (1, 16, 16, 5)
    by_z = sorted(headers, key=lambda h: float(h.ImagePositionPatient[2]))
    for k, h in enumerate(by_z):
        hu = h.pixel_array * float(h.RescaleSlope) + float(h.RescaleIntercept)
        np.testing.assert_array_equal(vol.array[0, :, :, k], hu.T)
    # voxel (0, 0, 0) is the first pixel of the lowest slice; k runs up (+S)
    lps0 = (LPS_TO_RAS @ vol.affine @ [0, 0, 0, 1])[:3]
    np.testing.assert_allclose(lps0, [float(x) for x in by_z[0].ImagePositionPatient], atol=1e-6)
    assert vol.affine[2, 2] == pytest.approx(2.5)
    assert vol.source.format == "dicom" and vol.source.name == "CT_series5"
    assert [s.position[2] for s in vol.source.dicom.slices] == sorted(z)


def test_ct5n_affine_matches_simpleitk(ct5n, synth):
    sitk = synth.module("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct5n)))
    img = reader.Execute()
    vol = read_dicom_series(ct5n)
    arr = sitk.GetArrayFromImage(img)  # (K, J, I)
    for idx in [(0, 0, 0), (15, 3, 4), (7, 11, 2)]:
        lps_itk = np.array(img.TransformIndexToPhysicalPoint(idx))
        lps_ours = (LPS_TO_RAS @ vol.affine @ [*idx, 1])[:3]
        np.testing.assert_allclose(lps_ours, lps_itk, atol=1e-4)
        assert vol.array[0][idx] == pytest.approx(float(arr[idx[2], idx[1], idx[0]]))


# --- synthetic series ------------------------------------------------------------------------


def test_axial_series_voxels_match_phantom_and_rescale(axial_series, synth):
    vol = read_dicom_series(axial_series)
    assert vol.array.dtype == np.float32
    # stored = round((HU + 1000) / 0.5): the rescale is undone to within half a step
    np.testing.assert_allclose(vol.array[0], _expected(vol, synth), atol=0.25 + 1e-6)
    assert vol.spacing == pytest.approx((3.0, 3.0, 5.0))


@pytest.mark.parametrize("order", ["descending", "shuffled", "ascending"])
def test_oblique_series_geometry(tmp_path, synth, order):
    synth.write_series(tmp_path / "obl", _oblique(synth), instance_order=order)
    vol = read_dicom_series(tmp_path / "obl")
    np.testing.assert_allclose(vol.array[0], _expected(vol, synth), atol=0.501)
    # the voxel at the lesion centre, found through the inverse affine, is lesion
    ras = np.append(synth.lesion_lps * [-1, -1, 1], 1.0)
    ijk = np.round(np.linalg.solve(vol.affine, ras)[:3]).astype(int)
    assert vol.array[0][tuple(ijk)] == 250.0


def test_enhanced_multiframe_descending_frames(tmp_path, synth):
    spec = _oblique(synth)
    synth.write_enhanced(tmp_path / "mf" / "enhanced.dcm", spec, descending=True)
    synth.write_series(tmp_path / "sf", spec)
    mf = read_dicom_series(tmp_path / "mf")
    sf = read_dicom_series(tmp_path / "sf")
    np.testing.assert_allclose(mf.affine, sf.affine, atol=1e-4)
    # enhanced file: slope 0.5, intercept -1000 per frame (functional groups)
    np.testing.assert_allclose(mf.array, sf.array, atol=0.501)
    ref = mf.source.dicom
    assert len(ref.datasets) == 1
    # frames were stored top-down; the slices reference them bottom-up
    assert [s.frame_number for s in ref.slices] == list(range(spec.n, 0, -1))


def test_legacy_converted_enhanced_ct(tmp_path, synth):
    import highdicom as hd

    paths = synth.write_series(tmp_path / "sf", synth.SeriesSpec(n=5), slope=0.5, intercept=-1000.0)
    legacy = hd.legacy.LegacyConvertedEnhancedCTImage(
        [pydicom.dcmread(p) for p in paths],
        series_instance_uid=generate_uid(),
        series_number=8,
        sop_instance_uid=generate_uid(),
        instance_number=1,
    )
    (tmp_path / "lc").mkdir()
    legacy.save_as(tmp_path / "lc" / "legacy.dcm")
    converted, single = read_dicom_series(tmp_path / "lc"), read_dicom_series(tmp_path / "sf")
    np.testing.assert_array_equal(converted.array, single.array)
    np.testing.assert_allclose(converted.affine, single.affine, atol=1e-6)


@pytest.mark.parametrize(
    "tsyntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=["rle", "jpeg2000", "jpegls"]
)
def test_compressed_series_decode_identically(tmp_path, synth, tsyntax):
    spec = synth.SeriesSpec(n=4)
    synth.write_series(tmp_path / "raw", spec)
    synth.write_series(tmp_path / "enc", spec, transfer_syntax=tsyntax)
    assert pydicom.dcmread(next((tmp_path / "enc").iterdir())).file_meta.TransferSyntaxUID == (
        tsyntax
    )
    np.testing.assert_array_equal(
        read_dicom_series(tmp_path / "enc").array, read_dicom_series(tmp_path / "raw").array
    )


@pytest.mark.parametrize(
    "name", ["MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm"]
)
def test_third_party_compressed_single_files(name):
    ref = read_dicom_series([TESTDATA / "MR_small.dcm"])
    vol = read_dicom_series([TESTDATA / name])
    assert vol.array.shape == (1, 64, 64, 1)
    np.testing.assert_array_equal(vol.array, ref.array)


def test_12bit_jpeg_extended_decodes(tmp_path, synth):
    """Lossy 12-bit JPEG (common in older CT archives) needs pylibjpeg-libjpeg."""
    try:
        import libjpeg  # noqa: F401  (pylibjpeg-libjpeg)
    except ImportError:
        synth.missing("pylibjpeg-libjpeg not installed (pip install medattr[libjpeg])")
    ds = pydicom.dcmread(TESTDATA / "JPGExtended.dcm")
    ds.ImagePositionPatient = [0.0, 0.0, 0.0]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = generate_uid()
    (tmp_path / "j").mkdir()
    ds.save_as(tmp_path / "j" / "jpeg12.dcm")
    vol = read_dicom_series(tmp_path / "j")
    expected = pydicom.dcmread(tmp_path / "j" / "jpeg12.dcm").pixel_array.astype(np.float32)
    assert expected.max() > 255  # really 12-bit data
    np.testing.assert_array_equal(vol.array[0, :, :, 0], expected.T)


def test_undecodable_pixel_data_is_named(tmp_path, synth):
    from pydicom.encaps import encapsulate, generate_frames

    paths = synth.write_series(tmp_path / "bad", synth.SeriesSpec(n=3), transfer_syntax=RLELossless)
    ds = pydicom.dcmread(paths[1])
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[0:4] = (200).to_bytes(4, "little")  # the RLE header now claims 200 segments
    ds.PixelData = encapsulate([bytes(frame)])
    ds.save_as(paths[1])
    with pytest.raises(
        DicomSeriesError,
        match=r"slice001\.dcm: pixel data cannot be decoded, "
        r"transfer syntax RLE Lossless",
    ):
        read_dicom_series(tmp_path / "bad")


def test_source_list_of_files_and_single_file(axial_series, caplog):
    files = sorted(axial_series.iterdir())
    vol = read_dicom_series(files[::-1])
    assert vol.spatial_shape == (48, 40, 12)
    caplog.set_level(logging.WARNING, logger="medattr")
    one = read_dicom_series(files[0])
    assert one.spatial_shape == (48, 40, 1)
    assert one.spacing[2] == pytest.approx(5.0)  # from SliceThickness
    assert any("single 2D slice" in r.getMessage() for r in caplog.records)


def test_reference_keeps_what_writers_need(axial_series):
    vol = read_dicom_series(axial_series)
    ref = vol.source.dicom
    assert isinstance(ref, DicomReference)
    first = pydicom.dcmread(next(axial_series.iterdir()))
    assert ref.study_instance_uid == first.StudyInstanceUID
    assert ref.series_instance_uid == first.SeriesInstanceUID
    assert ref.frame_of_reference_uid == first.FrameOfReferenceUID
    assert len(ref.slices) == len(ref.datasets) == 12
    assert all("PixelData" not in ds for ds in ref.datasets)
    z = [s.position[2] for s in ref.slices]
    assert z == sorted(z)
    np.testing.assert_allclose(ref.affine_ras, vol.affine)


def test_dicomdir_file_reads_its_directory(tmp_path):
    import shutil

    shutil.copytree(TESTDATA / "dicomdirtests", tmp_path / "media")
    vol = read_dicom_series(tmp_path / "media" / "DICOMDIR", series_description="SmartScore")
    assert vol.source.name == "CT_series5"


def test_read_volume_dispatches(axial_series, tmp_path):
    from medattr.io import write_nifti

    vol = read_volume(axial_series)
    assert vol.source.format == "dicom"
    nii = write_nifti(tmp_path / "v.nii.gz", vol.array, vol.affine)
    assert read_volume(nii).source.format == "nifti"
    with pytest.raises(InputError, match="NIfTI"):
        read_volume(nii, series_uid="1.2.3")
    with pytest.raises(InputError, match="not found"):
        read_volume(tmp_path / "missing")


# --- choosing a series -----------------------------------------------------------------------


@pytest.fixture
def two_series(tmp_path, synth) -> Path:
    study = generate_uid()
    synth.write_series(
        tmp_path / "study" / "a",
        synth.SeriesSpec(n=4),
        study_uid=study,
        series_number=2,
        description="Thorax axial 5mm",
    )
    synth.write_series(
        tmp_path / "study" / "b",
        synth.SeriesSpec(n=5),
        study_uid=study,
        series_number=4,
        description="Thorax bone kernel",
    )
    return tmp_path / "study"


def test_several_series_need_a_choice(two_series, synth, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DicomSeriesError) as err:
        read_dicom_series(two_series)
    msg = str(err.value)
    assert "2 image series" in msg and "series 2" in msg and "series 4" in msg
    assert "Thorax bone kernel" in msg and "SeriesInstanceUID=" in msg
    text = _all_messages(err.value, caplog)
    for value in synth.patient.values():
        assert value not in text


def test_choose_by_description_and_uid(two_series):
    summaries = list_dicom_series(two_series)
    assert [(s.series_number, s.n_files, s.readable) for s in summaries] == [
        (2, 4, True),
        (4, 5, True),
    ]
    assert "Thorax axial" in str(summaries[0])
    vol = read_dicom_series(two_series, series_description="bone")
    assert vol.spatial_shape[2] == 5
    vol = read_dicom_series(two_series, series_uid=summaries[0].series_instance_uid)
    assert vol.spatial_shape[2] == 4
    with pytest.raises(DicomSeriesError, match="2 image series whose SeriesDescription"):
        read_dicom_series(two_series, series_description="thorax")
    with pytest.raises(DicomSeriesError, match=r"no series with SeriesInstanceUID 1\.2\.3"):
        read_dicom_series(two_series, series_uid="1.2.3")


def test_mixed_series_in_one_file_list_is_refused(two_series):
    files = sorted(two_series.rglob("*.dcm"))
    with pytest.raises(DicomSeriesError, match="2 image series found"):
        read_dicom_series(files)


def test_non_image_series_are_listed_not_read(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "sr.dcm").write_bytes((TESTDATA / "test-SR.dcm").read_bytes())
    (tmp_path / "d" / "README.txt").write_text("not DICOM")
    [summary] = list_dicom_series(tmp_path / "d")
    assert not summary.readable and "no pixel data" in summary.problem
    with pytest.raises(DicomSeriesError, match="no image series to read"):
        read_dicom_series(tmp_path / "d")


# --- bad series ------------------------------------------------------------------------------


def test_ct2_gap_is_refused_then_resampled(caplog):
    ct2 = TESTDATA / "dicomdirtests" / "77654033" / "CT2"
    with pytest.raises(DicomSeriesError, match=r"missing slices.*202\.500 mm") as err:
        read_dicom_series(ct2)
    assert str(ct2) in str(err.value) and "--resample" in str(err.value)
    caplog.set_level(logging.WARNING)
    vol = read_dicom_series(ct2, resample=True)
    assert vol.spacing[2] == pytest.approx(1.25)
    assert vol.spatial_shape[2] == round((105.519997 - -99.480003) / 1.25) + 1
    assert vol.source.dicom.resampled
    assert any("202.50 mm gap" in r.getMessage() for r in caplog.records)
    # the slices that exist are reproduced exactly on the grid
    src = pydicom.dcmread(ct2 / "17166")
    k = round((float(src.ImagePositionPatient[2]) - -99.480003) / 1.25)
    hu = src.pixel_array * float(src.RescaleSlope) + float(src.RescaleIntercept)
    np.testing.assert_allclose(vol.array[0, :, :, k], hu.T, atol=1e-3)


def _spec_with(synth, positions):
    return synth.SeriesSpec(n=len(positions), positions=positions)


def test_missing_slice_refused_and_resampled(tmp_path, synth):
    spec = synth.SeriesSpec(n=8)
    kept = [p for k, p in enumerate(spec.positions) if k != 4]
    synth.write_series(tmp_path / "gap", _spec_with(synth, kept))
    with pytest.raises(DicomSeriesError, match=r"missing slices: 1 gap.*10\.000 mm"):
        read_dicom_series(tmp_path / "gap")
    vol = read_dicom_series(tmp_path / "gap", resample=True)
    assert vol.spatial_shape == (48, 40, 8)
    full = synth.write_series(tmp_path / "full", spec)
    regular = read_dicom_series(full[0].parent)
    np.testing.assert_allclose(vol.affine, regular.affine, atol=1e-6)
    # away from the interpolated slice the resampled volume equals the regular one
    np.testing.assert_allclose(
        vol.array[..., [0, 1, 2, 3, 5, 6, 7]], regular.array[..., [0, 1, 2, 3, 5, 6, 7]], atol=1e-3
    )
    mid = 0.5 * (regular.array[..., 3] + regular.array[..., 5])
    np.testing.assert_allclose(vol.array[..., 4], mid, atol=1e-3)


def test_duplicate_positions_refused_and_averaged(tmp_path, synth):
    spec = synth.SeriesSpec(n=6)
    paths = synth.write_series(tmp_path / "dup", spec)
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = 99
    ds.save_as(tmp_path / "dup" / "copy.dcm")
    with pytest.raises(DicomSeriesError, match="1 duplicate slice position"):
        read_dicom_series(tmp_path / "dup")
    vol = read_dicom_series(tmp_path / "dup", resample=True)
    assert vol.spatial_shape == (48, 40, 6)
    paths[2].parent.joinpath("copy.dcm").unlink()
    np.testing.assert_allclose(vol.array, read_dicom_series(tmp_path / "dup").array, atol=1e-4)


def test_uneven_spacing_refused(tmp_path, synth):
    spec = synth.SeriesSpec(n=6)
    positions = [p + (1.5 * spec.normal if k >= 3 else 0) for k, p in enumerate(spec.positions)]
    synth.write_series(tmp_path / "uneven", _spec_with(synth, positions))
    with pytest.raises(DicomSeriesError, match=r"gap\(s\) differ from the typical 5\.000 mm"):
        read_dicom_series(tmp_path / "uneven")


def test_gantry_tilt_refused_and_resampled(tmp_path, synth):
    spec = synth.SeriesSpec(n=10)
    shear = np.array([0.0, 1.0, 0.0]) * np.tan(np.deg2rad(15.0)) * spec.step
    positions = [p + k * shear for k, p in enumerate(spec.positions)]
    synth.write_series(tmp_path / "tilt", _spec_with(synth, positions))
    with pytest.raises(DicomSeriesError, match="gantry tilt or sheared stack"):
        read_dicom_series(tmp_path / "tilt")
    vol = read_dicom_series(tmp_path / "tilt", resample=True)
    # after resampling onto an orthogonal grid the anatomy is where the phantom says, except
    # where interpolation meets the edges of shapes (and the shifted-in border)
    err = np.abs(vol.array[0] - _expected(vol, synth))
    assert np.median(err) < 1.0
    assert np.mean(err > 50) < 0.06
    np.testing.assert_allclose(
        np.cross(vol.affine[:3, 0], vol.affine[:3, 1]) @ vol.affine[:3, 2], 9.0 * 5.0, rtol=1e-6
    )  # k axis orthogonal to the slices


def test_mixed_orientation_and_size_refused(tmp_path, synth):
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    synth.write_series(
        tmp_path / "mix" / "ax",
        synth.SeriesSpec(n=6),
        study_uid=study,
        series_uid=series,
        for_uid=frame,
    )
    synth.write_series(
        tmp_path / "mix" / "cor",
        synth.SeriesSpec(n=2, orientation=(1, 0, 0, 0, 0, -1), rows=30),
        study_uid=study,
        series_uid=series,
        for_uid=frame,
    )
    with pytest.raises(DicomSeriesError) as err:
        read_dicom_series(tmp_path / "mix")
    assert "mixed slice orientations: 6 slice(s) axial" in str(err.value)
    assert "mixed image sizes" in str(err.value)
    vol = read_dicom_series(tmp_path / "mix", resample=True)  # the coronal pair is left out
    assert vol.spatial_shape == (48, 40, 6)
    np.testing.assert_allclose(vol.array[0], _expected(vol, synth), atol=0.25 + 1e-6)


@pytest.mark.parametrize("cut", [-100, 900, 1000], ids=["in-pixels", "in-header", "at-1000"])
def test_truncated_file_is_named(tmp_path, synth, cut):
    paths = synth.write_series(tmp_path / "trunc", synth.SeriesSpec(n=4))
    paths[1].write_bytes(paths[1].read_bytes()[:cut])
    with pytest.raises(DicomSeriesError, match=r"slice001\.dcm .*(truncated|cut short)"):
        read_dicom_series(tmp_path / "trunc")


def test_stray_trailing_bytes_are_tolerated(tmp_path, synth):
    paths = synth.write_series(tmp_path / "pad", synth.SeriesSpec(n=3))
    paths[0].write_bytes(paths[0].read_bytes() + b"\x00\x00")
    assert read_dicom_series(tmp_path / "pad").spatial_shape == (48, 40, 3)


def test_pydicom_truncated_file_is_refused(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "mr.dcm").write_bytes((TESTDATA / "MR_truncated.dcm").read_bytes())
    with pytest.raises(DicomSeriesError, match=r"mr\.dcm is a truncated or corrupt"):
        read_dicom_series(tmp_path / "t")


def test_file_without_pixel_data_is_named(tmp_path, synth):
    paths = synth.write_series(tmp_path / "nopix", synth.SeriesSpec(n=4))
    ds = pydicom.dcmread(paths[2])
    del ds.PixelData
    ds.save_as(paths[2])
    with pytest.raises(DicomSeriesError, match=r"slice002\.dcm has no pixel data"):
        read_dicom_series(tmp_path / "nopix")


def test_errors_and_logs_carry_no_patient_identifiers(tmp_path, synth, caplog):
    caplog.set_level(logging.DEBUG, logger="medattr")
    spec = synth.SeriesSpec(n=6)
    synth.write_series(tmp_path / "gap", _spec_with(synth, spec.positions[:2] + spec.positions[3:]))
    with pytest.raises(DicomSeriesError) as err:
        read_dicom_series(tmp_path / "gap")
    read_dicom_series(tmp_path / "gap", resample=True)
    text = _all_messages(err.value, caplog)
    assert "missing slices" in text and "resampling" in text
    for value in synth.patient.values():
        assert value not in text


def test_input_directory_is_not_modified(axial_series):
    before = {p: p.read_bytes() for p in axial_series.iterdir()}
    read_dicom_series(axial_series)
    assert {p: p.read_bytes() for p in axial_series.iterdir()} == before
