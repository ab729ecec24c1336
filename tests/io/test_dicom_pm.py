"""The float Parametric Maps: displayable values, value mapping back to attribution units,
frame order, window, anatomy, references, and the map of the evidence against the target."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medattr.errors import InputError
from medattr.io import display_scale, write_dicom_parametric_map
from medattr.render import robust_limit


def _slope(path) -> float:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    rwvm = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert float(rwvm.RealWorldValueIntercept) == 0.0
    return float(rwvm.RealWorldValueSlope)


def test_stored_values_are_scaled_and_the_mapping_restores_attribution(derived, synth):
    ref = derived.volume.source.dicom
    lim = robust_limit(derived.attribution)
    assert display_scale(derived.attribution) == lim  # the RGB overlay's colour scale
    positions, frames = synth.frames_with_positions(derived.pm)
    assert frames.dtype == np.float32
    assert frames.shape == (12, 40, 48)
    assert _slope(derived.pm) == pytest.approx(lim, rel=1e-12)
    restored = np.zeros_like(derived.attribution)
    for pos, frame in zip(positions, frames, strict=True):
        k = synth.grid_index(ref, pos)
        np.testing.assert_array_equal(frame, derived.attribution[:, :, k].T / np.float32(lim))
        restored[:, :, k] = frame.T * _slope(derived.pm)
    np.testing.assert_allclose(restored, derived.attribution, rtol=1e-6, atol=0)
    # displayable: the strong evidence near 1 (OHIF shows 0..1 after its x100)
    assert np.percentile(np.abs(frames), 99.5) <= 1.0 < np.abs(frames).max()


def test_negative_map_holds_the_evidence_against_as_magnitudes(derived, synth):
    ref = derived.volume.source.dicom
    lim = robust_limit(derived.attribution)
    positions, frames = synth.frames_with_positions(derived.pm_negative)
    assert frames.min() == 0.0 and frames.max() > 0.5  # the hot_attribution has a negative blob
    slope = _slope(derived.pm_negative)
    assert slope == pytest.approx(-lim, rel=1e-12)
    restored = np.zeros_like(derived.attribution)
    for pos, frame in zip(positions, frames, strict=True):
        restored[:, :, synth.grid_index(ref, pos)] = frame.T * slope
    expected = np.minimum(derived.attribution, 0.0)
    np.testing.assert_allclose(restored, expected, rtol=1e-6, atol=1e-12)
    ds = pydicom.dcmread(derived.pm_negative, stop_before_pixels=True)
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert shared.RealWorldValueMappingSequence[0].LUTLabel == "ATTRIBUTION NEG"
    voi = shared.FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (0.5, 1.0)
    assert ds.SeriesNumber == 9904 and "against" in ds.SeriesDescription
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == ref.series_instance_uid


def test_scale_options(derived, tmp_path):
    paths = write_dicom_parametric_map(
        derived.volume,
        derived.attribution,
        tmp_path,
        algorithm=derived.algorithm,
        scale=0.25,
        negative_map=False,
    )
    assert [p.name for p in paths] == ["attribution_pm.dcm"]
    assert _slope(paths[0]) == 0.25
    frames = pydicom.dcmread(paths[0]).pixel_array
    assert float(np.abs(frames).max()) == pytest.approx(np.abs(derived.attribution).max() / 0.25)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(InputError, match="scale must be a positive finite number"):
            write_dicom_parametric_map(
                derived.volume,
                derived.attribution,
                tmp_path,
                algorithm=derived.algorithm,
                scale=bad,
            )
    with pytest.raises(InputError, match="scale_percentile"):
        write_dicom_parametric_map(
            derived.volume,
            derived.attribution,
            tmp_path,
            algorithm=derived.algorithm,
            scale_percentile=0,
        )


def test_frames_ascend_along_the_normal_with_dimension_indices(derived):
    ds = pydicom.dcmread(derived.pm)
    orient = np.array(
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient,
        float,
    )
    normal = np.cross(orient[:3], orient[3:])
    per = ds.PerFrameFunctionalGroupsSequence
    heights = [
        float(np.dot(np.array(f.PlanePositionSequence[0].ImagePositionPatient, float), normal))
        for f in per
    ]
    assert np.all(np.diff(heights) > 0)
    assert [int(f.FrameContentSequence[0].DimensionIndexValues) for f in per] == list(
        range(1, len(per) + 1)
    )


def test_frame_anatomy_value_mapping_and_window(derived):
    ds = pydicom.dcmread(derived.pm)
    shared = ds.SharedFunctionalGroupsSequence[0]
    anatomy = shared.FrameAnatomySequence[0]
    region = anatomy.AnatomicRegionSequence[0]
    assert (region.CodeValue, region.CodingSchemeDesignator) == ("816094009", "SCT")  # CHEST
    assert anatomy.FrameLaterality == "U"
    rwvm = shared.RealWorldValueMappingSequence[0]
    assert rwvm.LUTLabel == "ATTRIBUTION"
    assert rwvm.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    stored = pydicom.dcmread(derived.pm).pixel_array
    assert rwvm.DoubleFloatRealWorldValueFirstValueMapped == stored.min()
    assert rwvm.DoubleFloatRealWorldValueLastValueMapped == stored.max()
    assert "integrated_gradients attribution" in rwvm.LUTExplanation
    voi = shared.FrameVOILUTSequence[0]
    assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (0.0, 2.0)  # [-1, 1]
    assert voi.VOILUTFunction == "LINEAR"
    assert voi.WindowCenterWidthExplanation.startswith("signed")
    assert ds.ContentDescription.endswith("NOT FOR DIAGNOSTIC USE")
    assert str(ds.ContentCreatorName) == "medattr^"


def test_references_the_source_series_and_slices(derived):
    ds = pydicom.dcmread(derived.pm)
    ref = derived.volume.source.dicom
    [series] = ds.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == ref.series_instance_uid
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} == {
        s.sop_instance_uid for s in ref.slices
    }
    by_position = {np.round(s.position, 3).tobytes(): s.sop_instance_uid for s in ref.slices}
    for item in ds.PerFrameFunctionalGroupsSequence:
        pos = np.round(np.array(item.PlanePositionSequence[0].ImagePositionPatient, float), 3)
        src = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert src.ReferencedSOPInstanceUID == by_position[pos.tobytes()]
