"""Fixtures of the deployment tests: DICOM inputs, selector-shaped objects, tool lookup."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
# Identifiers of the synthetic MR patient: they must not appear in medattr's messages.
MR_PATIENT = {"PatientName": "Deploy^Synthetic", "PatientID": "DEPLOY-0815"}


def missing(message: str) -> None:
    """Fail under CI (``CI=true``), where the project's install path provides everything;
    skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def require_sdk() -> None:
    """The MONAI Deploy App SDK must be importable (it is in the ``dev`` extra)."""
    from medattr.deploy import sdk_available

    if not sdk_available():
        missing("monai-deploy-app-sdk is not installed (pip install -e '.[dev]' installs it)")


def ct5n_source() -> Path:
    """pydicom's five-slice CT series (16 x 16 pixels)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("dicomdirtests/98892001/CT5N")
    if path is None:
        pytest.fail("pydicom test data dicomdirtests/98892001/CT5N is missing")
    return Path(path)


def copy_ct5n(dest: Path) -> list[Path]:
    """A copy of the CT5N series in ``dest``; returns its files."""
    shutil.copytree(ct5n_source(), dest)
    return sorted(dest.iterdir())


def write_mr_series(directory: Path, n: int = 6, size: int = 16, series_number: int = 7) -> Path:
    """An axial MR series of a bright off-centre cube, one file per slice, in a new study."""
    directory.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(3)
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = MR_IMAGE
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = "MR"
        for key, value in MR_PATIENT.items():
            setattr(ds, key, value)
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.StudyDate, ds.StudyTime = "20250101", "120000"
        ds.SeriesNumber, ds.InstanceNumber = series_number, k + 1
        ds.SeriesDescription = "T1 axial"
        ds.PatientPosition = "HFS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-30.0, -30.0, -12.5 + 5.0 * k]
        ds.PixelSpacing = [4.0, 4.0]
        ds.SliceThickness = 5.0
        ds.PositionReferenceIndicator = ""
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        img = rng.integers(80, 120, (size, size)).astype(np.uint16)
        if 1 <= k <= 3:
            img[4:9, 8:13] += 400
        ds.PixelData = img.tobytes()
        ds.save_as(directory / f"mr_{k:03d}.dcm", enforce_file_format=True)
    return directory


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (to prove inputs are left untouched)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def selection(groups: Sequence[tuple[str, Sequence[Dataset]]]) -> list[SimpleNamespace]:
    """Objects shaped like ``DICOMSeriesSelectorOperator``'s output, one study per group.

    Each group is ``(selection_name, datasets of one series)``; the datasets keep their
    ``filename`` as ``DICOMDataLoaderOperator`` leaves it.
    """
    out = []
    for name, datasets in groups:
        instances = [SimpleNamespace(get_native_sop_instance=lambda d=d: d) for d in datasets]
        series = SimpleNamespace(
            SeriesInstanceUID=datasets[0].SeriesInstanceUID,
            Modality=datasets[0].Modality,
            get_sop_instances=lambda i=instances: i,
        )
        study = SimpleNamespace(StudyInstanceUID=datasets[0].StudyInstanceUID)
        out.append(
            SimpleNamespace(
                study=study,
                selected_series=[SimpleNamespace(selection_name=name, series=series)],
            )
        )
    return out


def read_all(paths: Sequence[Path]) -> list[Dataset]:
    return [pydicom.dcmread(p) for p in paths]


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for the test modules (conftest modules are not importable)."""
    return SimpleNamespace(
        missing=missing,
        require_sdk=require_sdk,
        ct5n_source=ct5n_source,
        copy_ct5n=copy_ct5n,
        write_mr_series=write_mr_series,
        tree_digest=tree_digest,
        selection=selection,
        read_all=read_all,
        mr_patient=MR_PATIENT,
    )
