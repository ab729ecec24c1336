"""The SEG of the strongest attribution: selection rule, BINARY and FRACTIONAL, description."""

from __future__ import annotations

import logging
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest

from medattr.errors import InputError
from medattr.io import AlgorithmInfo, top_percent_mask, write_dicom_seg


def test_top_percent_mask_rule():
    a = np.arange(-50, 50, dtype=np.float32).reshape(4, 5, 5)
    assert int(top_percent_mask(a, 5).sum()) == 5
    assert top_percent_mask(a, 5)[a >= 45].all()
    assert top_percent_mask(a, 5, "negative")[a <= -46].all()
    assert int(top_percent_mask(a, 5, "absolute").sum()) == 5
    # only positive scores can be selected: asking for 80 % gives the 49 positive voxels
    assert int(top_percent_mask(a, 80).sum()) == 49
    ties = np.ones((10, 10, 1))
    assert int(top_percent_mask(ties, 1).sum()) == 100  # ties at the threshold are kept
    assert not top_percent_mask(-np.ones((3, 3, 3)), 10).any()
    for bad in (0, -1, 101, "5"):
        with pytest.raises(InputError, match="top_percent"):
            top_percent_mask(a, bad)


def test_binary_segment_matches_the_rule_on_the_source_grid(derived, synth):
    ref = derived.volume.source.dicom
    expected = top_percent_mask(derived.attribution, 1.0)
    assert 0 < expected.sum() <= np.ceil(0.01 * expected.size)
    positions, frames = synth.frames_with_positions(derived.seg)
    got = np.zeros_like(expected)
    for pos, frame in zip(positions, frames, strict=True):
        got[:, :, synth.grid_index(ref, pos)] = frame.T.astype(bool)
    np.testing.assert_array_equal(got, expected)
    heights = [p[2] for p in positions]  # axial: the normal is +z
    assert heights == sorted(heights)


def test_segment_description_identifies_the_algorithm(derived):
    seg = hd.seg.segread(derived.seg)
    assert seg.SegmentationType == "BINARY"
    [segment] = seg.SegmentSequence
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentLabel == "top 1% positive attribution"
    alg = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert alg.AlgorithmName == "medattr" and alg.AlgorithmVersion == derived.algorithm.version
    assert "integrated_gradients" in alg.AlgorithmParameters
    assert "blur(4mm)" in alg.AlgorithmParameters
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "309825002"


def test_fractional_segment_holds_normalised_strength(derived, tmp_path, synth):
    [path] = write_dicom_seg(
        derived.volume,
        derived.attribution,
        tmp_path,
        algorithm=derived.algorithm,
        top_percent=2.0,
        segmentation_type="fractional",
    )
    ds = pydicom.dcmread(path)
    assert ds.SegmentationType == "FRACTIONAL"
    ref = derived.volume.source.dicom
    mask = top_percent_mask(derived.attribution, 2.0)
    expected = np.where(mask, derived.attribution / derived.attribution[mask].max(), 0.0)
    positions, frames = synth.frames_with_positions(path)
    got = np.zeros(mask.shape)
    for pos, frame in zip(positions, frames, strict=True):
        got[:, :, synth.grid_index(ref, pos)] = frame.T / float(ds.MaximumFractionalValue)
    np.testing.assert_allclose(got, expected, atol=0.5 / 255 + 1e-6)


def test_empty_segmentation_is_written_with_a_warning(derived, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="medattr")
    zeros = np.zeros(derived.volume.spatial_shape, np.float32)
    [path] = write_dicom_seg(derived.volume, zeros, tmp_path, algorithm=AlgorithmInfo("ig", "x"))
    assert not pydicom.dcmread(path).pixel_array.any()
    assert any("segmentation is empty" in r.getMessage() for r in caplog.records)


def test_bad_segmentation_type(derived, tmp_path):
    with pytest.raises(InputError, match="segmentation_type"):
        write_dicom_seg(
            derived.volume,
            derived.attribution,
            tmp_path,
            algorithm=derived.algorithm,
            segmentation_type="LABELMAP",
        )


def test_segment_covers_the_full_source_grid(derived):
    """One frame per source slice, empty ones kept: dcmqi and Slicer then return the source's
    shape instead of the few slices the segment touches."""
    ds = pydicom.dcmread(derived.seg)
    k = derived.volume.spatial_shape[2]
    touched = int(top_percent_mask(derived.attribution, 1.0).any(axis=(0, 1)).sum())
    assert touched < k  # the fixture's segment leaves slices empty
    assert int(ds.NumberOfFrames) == k
    frames = ds.pixel_array.reshape(k, -1)
    assert int((frames.sum(axis=1) == 0).sum()) == k - touched


@pytest.mark.parametrize(
    ("sign", "rgb"), [("positive", (215, 48, 39)), ("negative", (33, 102, 172))]
)
def test_recommended_display_colour_and_creator(derived, tmp_path, sign, rgb):
    [path] = write_dicom_seg(
        derived.volume, derived.attribution, tmp_path, algorithm=derived.algorithm, sign=sign
    )
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    lab = ds.SegmentSequence[0].RecommendedDisplayCIELabValue
    assert hd.color.CIELabColor.from_dicom_value(lab).to_rgb() == rgb
    assert str(ds.ContentCreatorName) == "medattr^"
    [custom] = write_dicom_seg(
        derived.volume,
        derived.attribution,
        tmp_path / "c",
        algorithm=derived.algorithm,
        display_color=(0, 255, 0),
    )
    lab = pydicom.dcmread(custom).SegmentSequence[0].RecommendedDisplayCIELabValue
    assert hd.color.CIELabColor.from_dicom_value(lab).to_rgb() == (0, 255, 0)
    with pytest.raises(InputError, match="display_color"):
        write_dicom_seg(
            derived.volume,
            derived.attribution,
            tmp_path / "bad",
            algorithm=derived.algorithm,
            display_color=(0, 300, 0),
        )


def test_a_baseline_mask_is_a_second_segment(derived, tmp_path, synth):
    """The anomaly mask of the mask-and-infill baselines: segment 2 (green), exactly the mask
    on the source grid; valid for dciodvfy; an empty mask is left out."""
    shape = derived.volume.spatial_shape
    anomaly = np.zeros(shape, bool)
    anomaly[2:6, 3:8, 1:3] = True
    [path] = write_dicom_seg(
        derived.volume,
        derived.attribution,
        tmp_path,
        algorithm=derived.algorithm,
        extra_segments={"anomaly_mask": anomaly},
    )
    seg = hd.seg.segread(path)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == [
        "top 1% positive attribution",
        "anomaly mask",
    ]
    lab = seg.SegmentSequence[1].RecommendedDisplayCIELabValue
    assert hd.color.CIELabColor.from_dicom_value(lab).to_rgb() == (77, 175, 74)
    ref = derived.volume.source.dicom
    got = {1: np.zeros(shape, bool), 2: np.zeros(shape, bool)}
    positions, frames = synth.frames_with_positions(path)
    numbers = [
        int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for f in seg.PerFrameFunctionalGroupsSequence
    ]
    for pos, frame, number in zip(positions, frames, numbers, strict=True):
        got[number][:, :, synth.grid_index(ref, pos)] |= frame.T.astype(bool)
    np.testing.assert_array_equal(got[2], anomaly)
    np.testing.assert_array_equal(got[1], top_percent_mask(derived.attribution, 1.0))
    proc = subprocess.run(
        [synth.tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120
    )
    assert not [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]
    [plain] = write_dicom_seg(
        derived.volume,
        derived.attribution,
        tmp_path / "empty",
        algorithm=derived.algorithm,
        extra_segments={"anomaly_mask": np.zeros(shape, bool)},
    )
    assert len(hd.seg.segread(plain).SegmentSequence) == 1
