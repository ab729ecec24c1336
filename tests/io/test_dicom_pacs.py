"""Round trips through a real PACS (Orthanc, started on loopback ports) and its web viewer.

The source series and medattr's three outputs are sent by C-STORE (pynetdicom) or by
STOW-RS (dicomweb-client), found again by QIDO-RS in one study and fetched by WADO-RS with
their pixel data unchanged. The overlay series is then opened in Orthanc's web viewer in
headless Chromium and the screenshot checked for the heatmap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medattr.io import AlgorithmInfo, read_dicom_series, write_dicom_rgb
from tests.io.conftest import CHROMIUM_FLAGS

pytestmark = pytest.mark.integration

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _paths(derived) -> dict[str, list[Path]]:
    return {
        "source": derived.source,
        "rgb": derived.rgb,
        "pm": [derived.pm],
        "pm_negative": [derived.pm_negative],
        "seg": [derived.seg],
    }


def _c_store(orthanc, paths: list[Path]) -> None:
    from pynetdicom import AE

    datasets = [pydicom.dcmread(p) for p in paths]
    ae = AE(ae_title="MEDATTR")
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title="ORTHANC")
    assert assoc.is_established, "Orthanc refused the association"
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            assert status is not None and status.Status == 0x0000, status
    finally:
        assoc.release()


def _stow(orthanc, paths: list[Path]) -> None:
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=f"{orthanc.url}/dicom-web")
    response = client.store_instances([pydicom.dcmread(p) for p in paths])
    stored = response.get("ReferencedSOPSequence", [])  # the STOW-RS response dataset
    assert len(stored) == len(paths)
    assert not response.get("FailedSOPSequence")


def _check_study(orthanc, derived) -> None:
    """QIDO-RS finds the five series in the source study; WADO-RS returns identical pixels."""
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=f"{orthanc.url}/dicom-web")
    study_uid = derived.volume.source.dicom.study_instance_uid
    found = {
        Dataset.from_json(s).SeriesInstanceUID: Dataset.from_json(s)
        for s in client.search_for_series(study_instance_uid=study_uid)
    }
    expected = {
        kind: pydicom.dcmread(paths[0]).SeriesInstanceUID for kind, paths in _paths(derived).items()
    }
    assert set(found) == set(expected.values())
    assert found[expected["source"]].Modality == "CT"
    assert found[expected["seg"]].Modality == "SEG"
    assert len(orthanc.get("/studies")) == 1
    for kind, paths in _paths(derived).items():
        assert int(found[expected[kind]].NumberOfSeriesRelatedInstances) == len(paths)
        for path in paths if kind != "source" else paths[:2]:
            local = pydicom.dcmread(path)
            remote = client.retrieve_instance(
                study_uid, local.SeriesInstanceUID, local.SOPInstanceUID
            )
            keyword = next(k for k in PIXEL_KEYWORDS if k in local)
            assert remote[keyword].value == local[keyword].value, f"{kind}: {path.name}"
            assert remote.StudyInstanceUID == study_uid
            assert remote.FrameOfReferenceUID == local.FrameOfReferenceUID


def test_c_store_then_qido_and_wado(orthanc, derived, synth):
    synth.module("pynetdicom")
    synth.module("dicomweb_client")
    _c_store(orthanc, [p for paths in _paths(derived).values() for p in paths])
    _check_study(orthanc, derived)


def test_stow_rs_then_qido_and_wado(orthanc, derived, synth):
    synth.module("dicomweb_client")
    for paths in _paths(derived).values():
        _stow(orthanc, paths)
    _check_study(orthanc, derived)


def test_store_from_an_unknown_caller_is_refused(orthanc, derived, synth):
    """The test PACS only accepts C-STORE from its registered loopback AET."""
    synth.module("pynetdicom")
    from pynetdicom import AE

    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(pydicom.uid.CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", orthanc.dicom_port, ae_title="ORTHANC")
    if assoc.is_established:
        status = assoc.send_c_store(pydicom.dcmread(derived.source[0]))
        assoc.release()
        assert status is None or status.get("Status", 0xC000) != 0x0000
    assert orthanc.get("/instances") == []


def _screenshot(url: str, out: Path, profile: Path, synth) -> np.ndarray:
    from PIL import Image

    chromium = None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            chromium = shutil.which(name)
            break
    if chromium is None:
        chromium = synth.tool("chromium")
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=900,700",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert out.exists(), "Chromium wrote no screenshot"
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _reddish(img: np.ndarray) -> int:
    """Strongly red pixels in the image area (the viewer's own text sits at the edges)."""
    h, w = img.shape[:2]
    core = img[int(0.15 * h) : int(0.85 * h), int(0.1 * w) : int(0.9 * w)]
    return int(np.sum((core[..., 0] - core[..., 2] > 60) & (core[..., 0] - core[..., 1] > 60)))


def test_overlay_shows_in_the_web_viewer(orthanc, tmp_path, synth):
    from scipy import ndimage

    # 1.25 mm pixels, 3 mm slices from the lesion's level up: the viewer opens the lowest
    rows, cols, sp = 112, 128, 1.25
    origin = [-(cols - 1) / 2 * sp, -(rows - 1) / 2 * sp, synth.lesion_lps[2] - 3.0]
    spec = synth.SeriesSpec(rows=rows, cols=cols, n=6, spacing=(sp, sp), step=3.0, origin=origin)
    synth.write_series(tmp_path / "src", spec, description="Phantom chest")
    vol = read_dicom_series(tmp_path / "src")
    # an attribution column through every slice, so the first slice the viewer opens shows it
    seed = np.zeros(vol.spatial_shape[:2], np.float32)
    lesion_ijk = np.linalg.solve(vol.affine, np.append(synth.lesion_lps * [-1, -1, 1], 1))
    seed[int(lesion_ijk[0]), int(lesion_ijk[1])] = 1.0
    blob = ndimage.gaussian_filter(seed, 6.0)
    attr = np.repeat((blob / blob.max())[..., None], vol.spatial_shape[2], axis=2)
    rgb = write_dicom_rgb(
        vol,
        attr,
        tmp_path / "out",
        window="50/600",  # -250 to 350 HU
        algorithm=AlgorithmInfo("integrated_gradients", "zero"),
    )
    _c_store(orthanc, sorted((tmp_path / "src").iterdir()) + rgb)
    viewer = f"{orthanc.url}/web-viewer/app/viewer.html?series="
    overlay_id = orthanc.series_id(pydicom.dcmread(rgb[0]).SeriesInstanceUID)
    source_id = orthanc.series_id(vol.source.dicom.series_instance_uid)
    shot = _screenshot(viewer + overlay_id, tmp_path / "overlay.png", tmp_path / "p1", synth)
    plain = _screenshot(viewer + source_id, tmp_path / "source.png", tmp_path / "p2", synth)
    assert shot.std() > 20 and plain.std() > 20  # the viewer drew an image
    assert _reddish(plain) == 0
    assert _reddish(shot) > 1000
    target = os.environ.get("MEDATTR_SCREENSHOT_DIR")
    if target:  # refresh the picture in the docs: MEDATTR_SCREENSHOT_DIR=docs/images
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "overlay.png", Path(target) / "orthanc_web_viewer_overlay.png")
