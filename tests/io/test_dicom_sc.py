"""The RGB overlay series: one plane-positioned Secondary Capture per source slice."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medattr.io import AlgorithmInfo, read_dicom_series, write_dicom_rgb
from medattr.render import robust_limit, window_limits


def test_one_instance_per_slice_ascending_in_the_source_geometry(derived):
    ref = derived.volume.source.dicom
    datasets = [pydicom.dcmread(p) for p in derived.rgb]
    assert len(datasets) == derived.volume.spatial_shape[2]
    normal = np.cross(ref.affine_lps[:3, 0], ref.affine_lps[:3, 1])
    heights = []
    for k, ds in enumerate(datasets):
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert ds.InstanceNumber == k + 1
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


def test_source_window_option(derived, tmp_path):
    with pytest.raises(ValueError, match="window must be"):
        write_dicom_rgb(
            derived.volume,
            derived.attribution,
            tmp_path,
            algorithm=derived.algorithm,
            window="auto",
        )
    # the synthetic source has no WindowCenter: falls back to percentiles
    paths = write_dicom_rgb(
        derived.volume,
        derived.attribution,
        tmp_path / "w",
        algorithm=derived.algorithm,
        window="source",
    )
    np.testing.assert_array_equal(
        pydicom.dcmread(paths[0]).pixel_array, pydicom.dcmread(derived.rgb[0]).pixel_array
    )
