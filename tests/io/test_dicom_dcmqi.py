"""Round trips through dcmqi, the converter 3D Slicer uses for Parametric Maps and SEG.

``paramap2itkimage`` and ``segimage2itkimage`` turn medattr's objects back into volumes: the
map's stored values come back bit for bit on the source grid (and its Real World Value slope,
which dcmqi reports, turns them into the attribution), the SEG comes back with the source's
full shape (empty slices included) and the segment's recommended colour.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

from medattr.io import (
    AlgorithmInfo,
    read_dicom_series,
    top_percent_mask,
    write_dicom_parametric_map,
    write_dicom_seg,
)
from medattr.io.dicom import LPS_TO_RAS

pytestmark = pytest.mark.integration


def _dcmqi(name: str, synth) -> str:
    dcmqi = synth.module("dcmqi")
    path = Path(dcmqi.__file__).parent / "bin" / name
    if not path.is_file():
        synth.missing(f"dcmqi has no {name}")
    return str(path)


def _convert(tool: str, dicom: Path, out: Path) -> tuple[list[Path], dict]:
    out.mkdir(parents=True)
    proc = subprocess.run(
        [tool, "--inputDICOM", str(dicom), "--outputDirectory", str(out), "-t", "nii"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = json.loads((out / "meta.json").read_text())
    return sorted(out.glob("*.nii.gz")), meta


def _on_source_grid(image: sitk.Image, volume) -> np.ndarray:
    """The dcmqi volume as an (I, J, K) array, after checking it has the source's geometry."""
    lps = LPS_TO_RAS @ volume.affine  # RAS -> LPS: flip x and y
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing())
    np.testing.assert_allclose(direction * spacing, lps[:3, :3], atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), lps[:3, 3], atol=1e-3)
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (K, J, I) -> (I, J, K)


@pytest.fixture(scope="module", params=["axial", "oblique", "ct5n"])
def written(request, tmp_path_factory, synth, ct5n) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp(f"dcmqi_{request.param}")
    if request.param == "axial":
        synth.write_series(tmp / "src", synth.SeriesSpec(n=12))  # numbered against z
        src = tmp / "src"
    elif request.param == "oblique":
        th = np.deg2rad(30.0)
        spec = synth.SeriesSpec(orientation=[np.cos(th), 0, -np.sin(th), 0, 1, 0], n=9, step=4.0)
        synth.write_series(tmp / "src", spec, instance_order="shuffled")
        src = tmp / "src"
    else:
        src = ct5n
    volume = read_dicom_series(src)
    attribution = synth.hot_attribution(volume.spatial_shape)
    alg = AlgorithmInfo("integrated_gradients", "zero", "class 1")
    out = tmp / "out"
    pm, negative = write_dicom_parametric_map(volume, attribution, out, algorithm=alg)
    [seg] = write_dicom_seg(volume, attribution, out, algorithm=alg, top_percent=0.5)
    return SimpleNamespace(
        name=request.param,
        tmp=tmp,
        volume=volume,
        attribution=attribution,
        pm=pm,
        negative=negative,
        seg=seg,
    )


def test_parametric_maps_round_trip_exactly(written, synth):
    tool = _dcmqi("paramap2itkimage", synth)
    expected = {
        written.pm: written.attribution,
        written.negative: np.minimum(written.attribution, 0.0),
    }
    for index, (path, attribution) in enumerate(expected.items()):
        [nifti], meta = _convert(tool, path, written.tmp / f"pm{index}")
        stored = _on_source_grid(sitk.ReadImage(str(nifti)), written.volume)
        assert stored.shape == written.volume.spatial_shape
        slope = float(meta["RealWorldValueSlope"])
        # bit for bit what medattr stored: the attribution divided by the slope, in float32
        np.testing.assert_array_equal(stored, attribution / np.float32(slope))
        np.testing.assert_allclose(stored * slope, attribution, rtol=1e-6, atol=1e-12)
        assert meta["MeasurementUnitsCode"]["CodeValue"] == "1"


def test_segmentation_round_trips_exactly_on_the_full_grid(written, synth):
    [nifti], meta = _convert(_dcmqi("segimage2itkimage", synth), written.seg, written.tmp / "seg")
    mask = _on_source_grid(sitk.ReadImage(str(nifti)), written.volume)
    expected = top_percent_mask(written.attribution, 0.5)
    assert mask.shape == written.volume.spatial_shape  # not cropped to the touched slices
    touched = int(expected.any(axis=(0, 1)).sum())
    assert touched < mask.shape[2] or written.name == "ct5n"  # empty slices kept
    np.testing.assert_array_equal(mask.astype(bool), expected)
    [[segment]] = meta["segmentAttributes"]
    assert segment["recommendedDisplayRGBValue"] == [215, 48, 39]
    assert segment["SegmentAlgorithmName"] == "medattr"
    assert meta["ContentCreatorName"] == "medattr^"
