"""The RGB overlay series: one plane-positioned Secondary Capture per source slice."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medattr.errors import InputError
from medattr.io import AlgorithmInfo, read_dicom_series, write_dicom_rgb
from medattr.render import robust_limit, window_limits


def test_one_instance_per_slice_ascending_in_the_source_geometry(derived):
    ref = derived.volume.source.dicom
    datasets = [pydicom.dcmread(p) for p in derived.rgb]
    assert len(datasets) == derived.volume.spatial_shape[2]
    normal = np.cross(ref.affine_lps[:3, 0], ref.affine_lps[:3, 1])
    heights = []
    source_numbers = {
        d.SOPInstanceUID: d.InstanceNumber for d in map(pydicom.dcmread, derived.source)
    }
    for k, ds in enumerate(datasets):
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        # image n of the source is image n of the overlay (the fixture numbers against z)
        assert ds.InstanceNumber == source_numbers[ref.slices[k].sop_instance_uid] == 12 - k
        assert derived.rgb[k].name == f"overlay_rgb_{12 - k:04d}.dcm"
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert (ds.Rows, ds.Columns) == (40, 48)
        np.testing.assert_allclose(
            [float(x) for x in ds.ImagePositionPatient], ref.slices[k].position, atol=1e-4
        )
        np.testing.assert_allclose(
            [float(x) for x in ds.ImageOrientationPatient], [1, 0, 0, 0, 1, 0], atol=1e-6
        )
        assert [float(x) for x in ds.PixelSpacing] == [3.0, 3.0]
        assert float(ds.SliceThickness) == 5.0
        assert ds.BurnedInAnnotation == "NO"
        src = ds.SourceImageSequence[0]
        assert src.ReferencedSOPInstanceUID == ref.slices[k].sop_instance_uid
        heights.append(float(np.dot([float(x) for x in ds.ImagePositionPatient], normal)))
    assert heights == sorted(heights)
    assert datasets[0].PatientOrientation == ["L", "P"]


def test_pixels_are_the_blend_of_anatomy_and_attribution(derived):
    vol, attr = derived.volume, derived.attribution
    lo, hi = window_limits(vol.array[0])
    lim = robust_limit(attr)  # one colour scale for the whole series
    k_hot = int(np.argmax(attr.max(axis=(0, 1))))
    k_cold = int(np.argmin(attr.min(axis=(0, 1))))
    for k in (k_hot, k_cold):
        rgb = pydicom.dcmread(derived.rgb[k]).pixel_array.astype(int)  # (rows, cols, 3)
        anatomy = vol.array[0, :, :, k].T
        attr_k = attr[:, :, k].T
        quiet = np.abs(attr_k) < 0.099 * lim  # below the blend threshold: gray anatomy
        gray = np.round(np.clip((anatomy - lo) / (hi - lo), 0, 1) * 255)
        assert quiet.sum() > 0.5 * quiet.size
        assert np.all(rgb[quiet, 0] == rgb[quiet, 1]) and np.all(rgb[quiet, 1] == rgb[quiet, 2])
        np.testing.assert_allclose(rgb[quiet, 0], gray[quiet], atol=1)
    rgb_hot = pydicom.dcmread(derived.rgb[k_hot]).pixel_array.astype(int)
    hot = attr[:, :, k_hot].T >= lim
    assert hot.any() and np.all(rgb_hot[hot, 0] > rgb_hot[hot, 2] + 20)  # red: for the target
    rgb_cold = pydicom.dcmread(derived.rgb[k_cold]).pixel_array.astype(int)
    cold = attr[:, :, k_cold].T <= -0.8 * lim
    assert cold.any() and np.all(rgb_cold[cold, 2] > rgb_cold[cold, 0] + 20)  # blue: against


def test_oblique_series_positions_follow_the_source(tmp_path, synth):
    th = np.deg2rad(25.0)
    spec = synth.SeriesSpec(orientation=[1, 0, 0, 0, np.cos(th), np.sin(th)], n=5, step=4.0)
    synth.write_series(tmp_path / "src", spec, instance_order="shuffled")
    vol = read_dicom_series(tmp_path / "src")
    paths = write_dicom_rgb(
        vol,
        np.zeros(vol.spatial_shape, np.float32),
        tmp_path / "out",
        algorithm=AlgorithmInfo("ig", "zero"),
    )
    for path, position in zip(paths, spec.positions, strict=True):
        ds = pydicom.dcmread(path)
        np.testing.assert_allclose([float(x) for x in ds.ImagePositionPatient], position, atol=1e-3)
        np.testing.assert_allclose(
            [float(x) for x in ds.ImageOrientationPatient], spec.orientation, atol=1e-5
        )


def _gray_window(path, anatomy: np.ndarray, quiet: np.ndarray) -> tuple[float, float]:
    """The (low, high) window a gray RGB slice was rendered with, fitted to its anatomy."""
    rgb = pydicom.dcmread(path).pixel_array.astype(float)[..., 0]
    inside = quiet & (rgb > 2) & (rgb < 253)  # unclipped gray pixels
    slope, intercept = np.polyfit(anatomy[inside], rgb[inside], 1)
    return -intercept / slope, (255.0 - intercept) / slope


def test_anatomy_window_comes_from_the_source_by_default(tmp_path, synth):
    paths = synth.write_series(tmp_path / "src", synth.SeriesSpec(n=4))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.WindowCenter, ds.WindowWidth = [40, 350], [400, 1500]  # the first is the default
        ds.save_as(path, enforce_file_format=True)
    vol = read_dicom_series(tmp_path / "src")
    attr = np.zeros(vol.spatial_shape, np.float32)
    anatomy = vol.array[0, :, :, 1].T
    quiet = np.ones_like(anatomy, bool)
    alg = AlgorithmInfo("ig", "zero")
    cases = {
        "source": (-160.0, 240.0),  # 40/400, not the percentiles
        None: (-160.0, 240.0),
        "lung": (-1350.0, 150.0),  # -600/1500
        "-100/300": (-250.0, 50.0),
        (300.0, 1000.0): (-200.0, 800.0),
    }
    for window, (lo, hi) in cases.items():
        out = tmp_path / f"out{len(str(window))}"
        written = write_dicom_rgb(vol, attr, out, algorithm=alg, window=window)
        got = _gray_window(written[1], anatomy, quiet)
        np.testing.assert_allclose(got, (lo, hi), atol=0.01 * (hi - lo), err_msg=str(window))
        assert f"{(lo + hi) / 2:g}/{hi - lo:g}" in pydicom.dcmread(written[1]).DerivationDescription
    # "percentile" reproduces the old 0.5-99.5 percentile window
    written = write_dicom_rgb(vol, attr, tmp_path / "pct", algorithm=alg, window="percentile")
    got = _gray_window(written[1], anatomy, quiet)
    lo, hi = window_limits(vol.array[0])
    np.testing.assert_allclose(got, (lo, hi), atol=0.01 * (hi - lo))


def test_bad_window_is_refused_before_writing(derived, tmp_path):
    for bad in ("auto", "40/-400", (1.0,), "abc/def"):
        with pytest.raises(InputError, match="window"):
            write_dicom_rgb(
                derived.volume,
                derived.attribution,
                tmp_path / "bad",
                algorithm=derived.algorithm,
                window=bad,
            )
    assert not (tmp_path / "bad").exists()


def test_without_a_source_window_the_percentiles_are_used(derived, tmp_path):
    paths = write_dicom_rgb(
        derived.volume, derived.attribution, tmp_path / "w", algorithm=derived.algorithm
    )
    np.testing.assert_array_equal(
        pydicom.dcmread(paths[0]).pixel_array, pydicom.dcmread(derived.rgb[0]).pixel_array
    )
    assert "(percentile)" in pydicom.dcmread(paths[0]).DerivationDescription


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_instance_numbers_run_like_the_source_on_a_resampled_grid(tmp_path, synth, order):
    spec = synth.SeriesSpec(n=7)
    positions = [p for k, p in enumerate(spec.positions) if k != 3]  # a gap: resampled
    synth.write_series(
        tmp_path / "src", synth.SeriesSpec(n=6, positions=positions), instance_order=order
    )
    vol = read_dicom_series(tmp_path / "src", resample=True)
    paths = write_dicom_rgb(
        vol,
        np.zeros(vol.spatial_shape, np.float32),
        tmp_path / "out",
        algorithm=AlgorithmInfo("ig", "zero"),
    )
    numbers = [pydicom.dcmread(p).InstanceNumber for p in paths]  # ascending along z
    expected = list(range(1, len(paths) + 1))
    assert numbers == (expected if order == "ascending" else expected[::-1])


def test_instance_numbers_follow_an_enhanced_sources_frames(tmp_path, synth):
    spec = synth.SeriesSpec(n=5)
    synth.write_enhanced(tmp_path / "enh" / "ct.dcm", spec, descending=True)
    vol = read_dicom_series(tmp_path / "enh")
    paths = write_dicom_rgb(
        vol,
        np.zeros(vol.spatial_shape, np.float32),
        tmp_path / "out",
        algorithm=AlgorithmInfo("ig", "zero"),
    )
    assert [pydicom.dcmread(p).InstanceNumber for p in paths] == [5, 4, 3, 2, 1]
