"""DICOM test fixtures: synthetic series sampled from an analytic phantom, and tool lookup.

The phantom is defined in patient coordinates (LPS, mm), so any series -- axial, oblique,
descending, multi-frame -- can be sampled from it and a reader's geometry checked voxel by
voxel against the formula. Input fixtures are written with plain pydicom; medattr's own
outputs are written by highdicom in the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

# Patient identifiers of the fixtures: tests check that none of them leaks into messages.
PATIENT = {
    "PatientName": "Synthetic^Phantom",
    "PatientID": "SYNTH-4711",
    "PatientBirthDate": "19700101",
    "PatientSex": "O",
}

#: Headless Chromium for the viewer tests: offline, no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def phantom_lps(points: np.ndarray) -> np.ndarray:
    """HU-like values of the analytic phantom at LPS points ``(..., 3)`` in mm.

    A body ellipsoid with a left-right ramp, a bright posterior "spine" cylinder and a
    lesion sphere at the patient's left, anterior, superior: no symmetry hides a flip.
    """
    p = np.asarray(points, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    body = (x / 70.0) ** 2 + (y / 55.0) ** 2 + (z / 60.0) ** 2 <= 1.0
    out = np.where(body, 40.0 + 0.5 * x, -1000.0)
    spine = ((x - 0.0) ** 2 + (y - 35.0) ** 2 <= 10.0**2) & body
    out = np.where(spine, 700.0, out)
    lesion = (x - 25.0) ** 2 + (y + 20.0) ** 2 + (z - 15.0) ** 2 <= 9.0**2
    return np.where(lesion, 250.0, out)


LESION_LPS = np.array([25.0, -20.0, 15.0])


def _base_dataset(
    sop_class: str,
    modality: str,
    study_uid: str,
    series_uid: str,
    for_uid: str,
    series_number: int,
    description: str,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    for k, v in PATIENT.items():
        setattr(ds, k, v)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240102"
    ds.SeriesTime = "101600"
    ds.AccessionNumber = "ACC-0042"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Phantom study"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.Manufacturer = "medattr tests"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "HFS"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def _frame_points(
    origin: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    rows: int,
    cols: int,
    spacing: tuple[float, float],
) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (
        origin[None, None, :]
        + c[..., None] * spacing[1] * u[None, None, :]
        + r[..., None] * spacing[0] * v[None, None, :]
    )


class SeriesSpec:
    """Geometry of a synthetic series; ``positions`` overrides the regular stack."""

    def __init__(
        self,
        rows: int = 40,
        cols: int = 48,
        n: int = 12,
        spacing: tuple[float, float] = (3.0, 3.0),
        step: float = 5.0,
        orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
        origin: Sequence[float] | None = None,
        positions: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.rows, self.cols, self.n = rows, cols, n
        self.spacing, self.step = spacing, step
        o = np.asarray(orientation, dtype=np.float64)
        self.u = o[:3] / np.linalg.norm(o[:3])
        self.v = o[3:] / np.linalg.norm(o[3:])
        self.normal = np.cross(self.u, self.v)
        if origin is None:  # centre the stack on the phantom
            origin = (
                -(cols - 1) / 2 * spacing[1] * self.u
                - (rows - 1) / 2 * spacing[0] * self.v
                - (n - 1) / 2 * step * self.normal
            )
        self.origin = np.asarray(origin, dtype=np.float64)
        if positions is None:
            positions = [self.origin + k * step * self.normal for k in range(n)]
        self.positions = [np.asarray(p, dtype=np.float64) for p in positions]

    @property
    def orientation(self) -> list[float]:
        return [float(x) for x in (*self.u, *self.v)]


def write_series(
    directory: Path,
    spec: SeriesSpec | None = None,
    *,
    study_uid: str | None = None,
    for_uid: str | None = None,
    series_uid: str | None = None,
    series_number: int = 3,
    description: str = "Phantom axial",
    slope: float = 1.0,
    intercept: float = -1024.0,
    instance_order: str = "descending",
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Single-frame CT slices of the phantom, one file each; returns the paths (slice order).

    ``instance_order="descending"`` numbers instances against the position order, so a
    reader sorting by InstanceNumber gets the volume upside down.
    """
    spec = spec or SeriesSpec()
    directory.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = for_uid or generate_uid()
    paths = []
    n = len(spec.positions)
    for k, pos in enumerate(spec.positions):
        ds = _base_dataset(
            CT_IMAGE, "CT", study_uid, series_uid, for_uid, series_number, description
        )
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = {"descending": n - k, "ascending": k + 1}.get(
            instance_order, 1 + ((7 * k) % n)
        )
        ds.ImagePositionPatient = [round(float(x), 4) for x in pos]
        ds.ImageOrientationPatient = [round(x, 6) for x in spec.orientation]
        ds.PixelSpacing = [spec.spacing[0], spec.spacing[1]]
        ds.SliceThickness = spec.step
        ds.KVP = "120"
        ds.AcquisitionNumber = 1
        ds.Rows, ds.Columns = spec.rows, spec.cols
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "HU"
        hu = phantom_lps(_frame_points(pos, spec.u, spec.v, spec.rows, spec.cols, spec.spacing))
        stored = np.round((hu - intercept) / slope).astype(np.int16)
        ds.PixelData = stored.tobytes()
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
        path = directory / f"slice{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_enhanced(
    path: Path,
    spec: SeriesSpec | None = None,
    *,
    descending: bool = True,
    slope: float = 0.5,
    intercept: float = -1000.0,
    series_number: int = 7,
    study_uid: str | None = None,
    for_uid: str | None = None,
) -> Path:
    """One Enhanced CT file holding the whole stack, frames stored in descending order."""
    spec = spec or SeriesSpec()
    order = (
        list(range(len(spec.positions)))[::-1] if descending else list(range(len(spec.positions)))
    )
    ds = _base_dataset(
        ENHANCED_CT,
        "CT",
        study_uid or generate_uid(),
        generate_uid(),
        for_uid or generate_uid(),
        series_number,
        "Phantom enhanced",
    )
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = "20240102", "101700"
    ds.AcquisitionDateTime = "20240102101700"
    ds.NumberOfFrames = len(order)
    ds.Rows, ds.Columns = spec.rows, spec.cols
    shared = Dataset()
    meas = Dataset()
    meas.PixelSpacing = [spec.spacing[0], spec.spacing[1]]
    meas.SliceThickness = spec.step
    shared.PixelMeasuresSequence = [meas]
    ori = Dataset()
    ori.ImageOrientationPatient = [round(x, 6) for x in spec.orientation]
    shared.PlaneOrientationSequence = [ori]
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, intercept, "HU"
    shared.PixelValueTransformationSequence = [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    frames = []
    for idx, k in enumerate(order):
        item = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [round(float(x), 4) for x in spec.positions[k]]
        item.PlanePositionSequence = [pos]
        content = Dataset()
        content.InStackPositionNumber = k + 1
        content.DimensionIndexValues = [idx + 1]
        item.FrameContentSequence = [content]
        per.append(item)
        hu = phantom_lps(
            _frame_points(spec.positions[k], spec.u, spec.v, spec.rows, spec.cols, spec.spacing)
        )
        frames.append(np.round((hu - intercept) / slope).astype(np.int16))
    ds.PerFrameFunctionalGroupsSequence = per
    ds.PixelData = np.stack(frames).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def tool(name: str, *, extra_dirs: Sequence[str] = ("/usr/sbin", "/usr/local/sbin")) -> str:
    """Path of a command-line tool; in CI a missing tool fails the test, elsewhere it skips."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs])
    found = shutil.which(name, path=path)
    if found:
        return found
    missing(f"{name} not installed (Debian packages: see .ci/run)")
    raise AssertionError("unreachable")


def module(name: str):
    """Import ``name``; like :func:`tool`, a missing module fails under CI and skips elsewhere."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package {name} not installed (pip install -e '.[dev]')")
        raise


def missing(message: str) -> None:
    """Fail under CI (``CI=true``), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def series_factory(tmp_path: Path) -> Callable[..., list[Path]]:
    """``make(name, spec=None, **kw)`` writes a synthetic series under ``tmp_path / name``."""

    def make(name: str, spec: SeriesSpec | None = None, **kw) -> list[Path]:
        return write_series(tmp_path / name, spec, **kw)

    return make


@pytest.fixture(scope="session")
def axial_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regular axial phantom series (instances numbered against position order)."""
    d = tmp_path_factory.mktemp("axial") / "CT"
    write_series(d, slope=0.5, intercept=-1000.0)
    return d


@pytest.fixture(scope="session")
def ct5n() -> Path:
    """pydicom's five-slice CT whose InstanceNumber runs opposite to z."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("dicomdirtests/98892001/CT5N")
    if path is None:
        pytest.fail("pydicom test data dicomdirtests/98892001/CT5N is missing")
    return Path(path)


def read_header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The fixture builders, for tests that need their own variants."""
    return SimpleNamespace(
        SeriesSpec=SeriesSpec,
        write_series=write_series,
        write_enhanced=write_enhanced,
        phantom_lps=phantom_lps,
        lesion_lps=LESION_LPS,
        patient=PATIENT,
        tool=tool,
        read_header=read_header,
        frames_with_positions=frames_with_positions,
        missing=missing,
        module=module,
        grid_index=grid_index,
        hot_attribution=hot_attribution,
        OrthancServer=OrthancServer,
        free_port=_free_port,
    )


def frames_with_positions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a multi-frame file and their ImagePositionPatient, read with plain pydicom."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    if arr.ndim == 2:
        arr = arr[None]
    pos = np.array(
        [
            [float(x) for x in item.PlanePositionSequence[0].ImagePositionPatient]
            for item in ds.PerFrameFunctionalGroupsSequence
        ]
    )
    return pos, arr


def grid_index(ref, position: np.ndarray) -> int:
    """Slice index k of an LPS plane position on the reference grid (checks it lies on it)."""
    aff = ref.affine_lps
    ijk = np.linalg.solve(aff[:3, :3], np.asarray(position) - aff[:3, 3])
    np.testing.assert_allclose(ijk[:2], 0.0, atol=1e-3)
    k = int(np.rint(ijk[2]))
    assert abs(ijk[2] - k) < 1e-3
    return k


def hot_attribution(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """A smooth signed attribution: a positive blob, a weaker negative one, faint noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = np.zeros(shape, np.float32)
    a[shape[0] * 2 // 3, shape[1] // 3, shape[2] // 2] = 1.0
    neg = np.zeros(shape, np.float32)
    neg[shape[0] // 4, shape[1] * 2 // 3, shape[2] // 3] = 1.0
    out = ndimage.gaussian_filter(a, 2.0) - 0.5 * ndimage.gaussian_filter(neg, 2.0)
    out = out / np.abs(out).max()
    return (out + 1e-3 * rng.standard_normal(shape)).astype(np.float32)


@pytest.fixture(scope="session")
def derived(axial_series: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The axial series, an attribution, and the three DICOM outputs written from them."""
    from medattr.io import (
        AlgorithmInfo,
        read_dicom_series,
        write_dicom_parametric_map,
        write_dicom_rgb,
        write_dicom_seg,
    )

    vol = read_dicom_series(axial_series)
    attr = hot_attribution(vol.spatial_shape)
    algorithm = AlgorithmInfo("integrated_gradients", "blur(4mm)", "class 1 logit")
    out = tmp_path_factory.mktemp("derived")
    pm, pm_negative = write_dicom_parametric_map(vol, attr, out, algorithm=algorithm)
    return SimpleNamespace(
        volume=vol,
        attribution=attr,
        algorithm=algorithm,
        out=out,
        rgb=write_dicom_rgb(vol, attr, out, algorithm=algorithm),
        pm=pm,
        pm_negative=pm_negative,
        seg=write_dicom_seg(vol, attr, out, algorithm=algorithm, top_percent=1.0)[0],
        source=sorted(axial_series.iterdir()),
    )


# --- Orthanc ---------------------------------------------------------------------------------

ORTHANC_PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc")
SCU_AET = "MEDATTR"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plugin(name: str) -> str:
    for d in ORTHANC_PLUGIN_DIRS:
        for candidate in sorted(Path(d).glob(f"{name}*.so*")):
            return str(candidate)
    missing(f"Orthanc plugin {name} not installed (Debian: orthanc-dicomweb, orthanc-webviewer)")
    raise AssertionError("unreachable")


class OrthancServer:
    """A throw-away Orthanc on loopback ports with DICOMweb and the web viewer.

    Storage, index, viewer cache and log live under ``root``. HTTP refuses non-local
    clients (``RemoteAccessAllowed: false``) and C-STORE is accepted only from the AET
    ``MEDATTR`` calling from 127.0.0.1. ``public_host`` is the ``host:port`` that DICOMweb
    answers put into their URLs (BulkDataURI ...): a same-origin proxy in front of Orthanc
    gives its own.
    """

    def __init__(self, root: Path, public_host: str = "127.0.0.1") -> None:
        self.root = root
        self.http_port, self.dicom_port = _free_port(), _free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        config = {
            "Name": "medattr-test",
            "StorageDirectory": str(root / "db"),
            "IndexDirectory": str(root / "db"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [_plugin("libOrthancDicomWeb"), _plugin("libOrthancWebViewer")],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": public_host},
            "WebViewer": {"CachePath": str(root / "viewer-cache")},
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": {"medattr": [SCU_AET, "127.0.0.1", _free_port()]},
            "SaveJobs": False,
            "StorageCompression": False,
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "orthanc.json").write_text(json.dumps(config, indent=1))
        self.log = open(root / "orthanc.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [tool("Orthanc"), str(root / "orthanc.json")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/system", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (root / "orthanc.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"Orthanc did not start:\n{tail}")
            time.sleep(0.1)

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as r:
            return json.load(r)

    def series_id(self, series_uid: str) -> str:
        """Orthanc's identifier of a series, looked up by SeriesInstanceUID."""
        req = urllib.request.Request(
            f"{self.url}/tools/lookup", data=series_uid.encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            hits = [h for h in json.load(r) if h["Type"] == "Series"]
        assert len(hits) == 1, hits
        return str(hits[0]["ID"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()

    def clear(self) -> None:
        """Delete everything stored, so that each test starts from an empty PACS."""
        for patient in self.get("/patients"):
            req = urllib.request.Request(f"{self.url}/patients/{patient}", method="DELETE")
            with urllib.request.urlopen(req, timeout=30):
                pass


@pytest.fixture(scope="module")
def orthanc_server(tmp_path_factory: pytest.TempPathFactory):
    """One Orthanc per test module (it takes seconds to stop), stopped afterwards."""
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def orthanc(orthanc_server: OrthancServer) -> OrthancServer:
    """The module's Orthanc, emptied for this test."""
    orthanc_server.clear()
    assert orthanc_server.get("/instances") == []
    return orthanc_server
