"""The float Parametric Map: values, frame order, value mapping, window, anatomy, references."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medattr.render import robust_limit


def test_values_round_trip_exactly_on_the_source_grid(derived, synth):
    ref = derived.volume.source.dicom
    positions, frames = synth.frames_with_positions(derived.pm)
    assert frames.dtype == np.float32
    assert frames.shape == (12, 40, 48)
    for pos, frame in zip(positions, frames, strict=True):
        k = synth.grid_index(ref, pos)
        np.testing.assert_array_equal(frame, derived.attribution[:, :, k].T)


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
    assert (rwvm.RealWorldValueSlope, rwvm.RealWorldValueIntercept) == (1.0, 0.0)
    assert rwvm.DoubleFloatRealWorldValueFirstValueMapped <= derived.attribution.min()
    assert rwvm.DoubleFloatRealWorldValueLastValueMapped >= derived.attribution.max()
    voi = shared.FrameVOILUTSequence[0]
    assert float(voi.WindowCenter) == 0.0
    assert float(voi.WindowWidth) == pytest.approx(2 * robust_limit(derived.attribution), rel=1e-6)
    assert voi.VOILUTFunction == "LINEAR_EXACT"
    assert voi.WindowCenterWidthExplanation == "symmetric about zero"
    assert ds.ContentDescription.endswith("NOT FOR DIAGNOSTIC USE")


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
