"""What every derived DICOM series medattr writes has in common.

Each output is a new series in the source study: new UIDs, the source's Frame of Reference,
patient and study attributes copied (never invented), image type DERIVED, a series
description that says what it is and that it is not for diagnostic use, and the algorithm
(medattr version, method, baseline, target) recorded. This module holds
:class:`AlgorithmInfo` and the checks and geometry the three writers share.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.valuerep import DSfloat

from medattr._fs import staged_directory
from medattr._version import __version__
from medattr.errors import InputError
from medattr.io._dicom_values import repair_header_values
from medattr.io.dicom import DicomReference, DicomSlice
from medattr.volume import Volume

__all__ = ["NOT_FOR_DIAGNOSIS", "AlgorithmInfo"]

logger = logging.getLogger("medattr.io.dicom")

#: Appended to every series description and content description medattr writes.
NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSTIC USE"

MANUFACTURER = "medattr"

#: Transfer syntaxes that are lossy whatever their parameters (JPEG baseline and extended).
_LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50": "ISO_10918_1", "1.2.840.10008.1.2.4.51": "ISO_10918_1"}

#: BodyPartExamined (CID 4031 terms) -> SNOMED CT anatomic region, for FrameAnatomySequence.
_BODY_PARTS = {
    "HEAD": ("69536005", "Head"),
    "BRAIN": ("12738006", "Brain"),
    "NECK": ("45048000", "Neck"),
    "HEADNECK": ("774007", "Head and Neck"),
    "CHEST": ("816094009", "Thorax"),
    "THORAX": ("816094009", "Thorax"),
    "LUNG": ("39607008", "Lung"),
    "HEART": ("80891009", "Heart"),
    "BREAST": ("76752008", "Breast"),
    "ABDOMEN": ("818981001", "Abdomen"),
    "LIVER": ("10200004", "Liver"),
    "KIDNEY": ("64033007", "Kidney"),
    "PELVIS": ("816092008", "Pelvis"),
    "PROSTATE": ("41216001", "Prostate"),
    "ABDOMENPELVIS": ("818982008", "Abdomen and Pelvis"),
    "CHESTABDOMEN": ("416775004", "Chest and Abdomen"),
    "SPINE": ("421060004", "Spine"),
    "KNEE": ("72696002", "Knee"),
    "WHOLEBODY": ("38266002", "Entire body"),
}
_ENTIRE_BODY = ("38266002", "Entire body")


@dataclass
class AlgorithmInfo:
    """Which algorithm made an attribution, recorded in every DICOM output.

    Attributes
    ----------
    method
        Attribution method, e.g. ``"integrated_gradients"``.
    baseline
        Baseline (reference input), e.g. ``"zero"`` or ``"blur(4mm)"``.
    target
        What was explained, e.g. ``"class 1 logit"`` (optional).
    version, name
        Software that computed it.

    Examples
    --------
    >>> AlgorithmInfo("integrated_gradients", "zero", "class 1").parameters()
    {'method': 'integrated_gradients', 'baseline': 'zero', 'target': 'class 1'}
    """

    method: str
    baseline: str
    target: str = ""
    version: str = __version__
    name: str = "medattr"

    def __post_init__(self) -> None:
        for field_name in ("method", "baseline", "name", "version"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value.strip():
                raise InputError(
                    f"AlgorithmInfo.{field_name} must be a non-empty string, got {value!r}"
                )

    def summary(self) -> str:
        """One sentence for DerivationDescription and similar free-text attributes."""
        target = f", target {self.target}" if self.target else ""
        return (
            f"{self.name} {self.version}: {self.method} attribution, baseline "
            f"{self.baseline}{target}. {NOT_FOR_DIAGNOSIS}."
        )

    def parameters(self) -> dict[str, str]:
        params = {"method": self.method, "baseline": self.baseline}
        if self.target:
            params["target"] = self.target
        return params

    def identification(self) -> Any:
        """highdicom ``AlgorithmIdentificationSequence`` (family: Artificial Intelligence)."""
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.AlgorithmIdentificationSequence(
            name=self.name[:64],
            family=codes.DCM.ArtificialIntelligence,
            version=self.version[:64],
            parameters=self.parameters(),
        )

    def contributing_equipment(self) -> Any:
        """highdicom ``ContributingEquipment`` item naming medattr as processing equipment."""
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.ContributingEquipment(
            manufacturer=MANUFACTURER,
            purpose_of_reference=codes.DCM.ProcessingEquipment,
            manufacturer_model_name=self.name[:64],
            software_versions=self.version[:64],
            contribution_description=self.summary()[:1024],
        )


def lossy_compression(ref: DicomReference) -> dict[str, Any]:
    """LossyImageCompression (and ratio and method) that a derived image inherits.

    Lossy compression of any source image carries over to everything derived from it
    (PS3.3 C.7.6.1.1.5: once "01", never "00" again). The ratio and method are those of the
    first lossy source image; a source stored with a JPEG baseline/extended transfer syntax
    counts as lossy even if it lacks the attribute.
    """
    for ds in ref.datasets:
        syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
        if str(ds.get("LossyImageCompression", "")) == "01" or syntax in _LOSSY_SYNTAXES:
            attrs: dict[str, Any] = {"LossyImageCompression": "01"}
            if ds.get("LossyImageCompressionRatio"):
                attrs["LossyImageCompressionRatio"] = ds.LossyImageCompressionRatio
            if ds.get("LossyImageCompressionMethod"):
                attrs["LossyImageCompressionMethod"] = ds.LossyImageCompressionMethod
            elif syntax in _LOSSY_SYNTAXES:
                attrs["LossyImageCompressionMethod"] = _LOSSY_SYNTAXES[syntax]
            return attrs
    return {"LossyImageCompression": "00"}


def set_lossy_compression(ds: Dataset, ref: DicomReference) -> None:
    """Overwrite ``ds``'s lossy compression attributes with what it inherits from ``ref``."""
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            del ds[keyword]
    for keyword, value in lossy_compression(ref).items():
        setattr(ds, keyword, value)


def ds_value(x: float) -> DSfloat:
    """``x`` as a DS value of at most 16 characters (the VR's limit)."""
    return DSfloat(float(x), auto_format=True)


def series_description(kind: str, algorithm: AlgorithmInfo) -> str:
    """``"<kind> <method> <baseline> - NOT FOR DIAGNOSTIC USE"`` within the 64-character LO."""
    tail = f" - {NOT_FOR_DIAGNOSIS}"
    head = f"{kind} {algorithm.method} {algorithm.baseline}"
    return head[: 64 - len(tail)].rstrip() + tail


@dataclass
class DerivedGeometry:
    """The source reference and the attribution as frames ascending along the slice normal."""

    ref: DicomReference
    frames: np.ndarray  # (K, rows, columns) float32, frame f at positions[f]
    anatomy: np.ndarray  # (K, rows, columns) float32, the source voxels in the same layout
    positions: np.ndarray  # (K, 3) LPS mm, ImagePositionPatient of each frame
    orientation: np.ndarray  # (6,) ImageOrientationPatient
    pixel_spacing: tuple[float, float]  # (between rows, between columns) mm
    slice_step: float  # mm between frames

    @property
    def slice_thickness(self) -> float:
        """The source's SliceThickness when the grid is the source's own, else the step."""
        thickness = self.ref.slice_thickness
        if not self.ref.resampled and thickness is not None and thickness > 0:
            return thickness
        return self.slice_step

    def plane_kwargs(self) -> dict[str, Any]:
        """Geometry arguments of highdicom's multi-frame constructors (PM, SEG)."""
        import highdicom as hd

        return {
            "plane_positions": [
                hd.PlanePositionSequence(
                    coordinate_system="PATIENT", image_position=[float(x) for x in pos]
                )
                for pos in self.positions
            ],
            "plane_orientation": hd.PlaneOrientationSequence(
                coordinate_system="PATIENT", image_orientation=[float(x) for x in self.orientation]
            ),
            "pixel_measures": hd.PixelMeasuresSequence(
                pixel_spacing=self.pixel_spacing,
                slice_thickness=self.slice_thickness,
                spacing_between_slices=self.slice_step,
            ),
        }

    def source_slice(self, index: int) -> DicomSlice | None:
        """The source plane frame ``index`` was computed on (None if the grid was resampled)."""
        nearest = self.ref.nearest_slice(self.positions[index])
        if np.linalg.norm(np.asarray(nearest.position) - self.positions[index]) < 1e-2:
            return nearest
        return None


def derived_geometry(volume: Volume, attribution: np.ndarray, writer: str) -> DerivedGeometry:
    """Check that ``volume`` came from DICOM and ``attribution`` fits it; lay out the frames.

    Raises
    ------
    InputError
        If the volume was not read from DICOM (NIfTI inputs get NIfTI outputs), if its
        geometry no longer matches the series it was read from, or if ``attribution`` has the
        wrong shape or non-finite values.
    """
    src = volume.source
    ref = getattr(src, "dicom", None)
    if src is None or src.format != "dicom" or not isinstance(ref, DicomReference):
        fmt = "a generated volume" if src is None else f"{src.format} input {src.path}"
        raise InputError(
            f"{writer} needs a volume read from a DICOM series, got {fmt}; DICOM outputs are "
            "written into the source study, so NIfTI inputs get NIfTI outputs only"
        )
    if ref.frame_of_reference_uid is None:
        raise InputError(f"{writer}: the source series has no FrameOfReferenceUID", src.path)
    attr = np.asarray(attribution)
    if attr.ndim == 4 and attr.shape[0] == 1:
        attr = attr[0]
    if attr.shape != volume.spatial_shape:
        raise InputError(
            f"{writer}: attribution has shape {attr.shape}, expected the source grid "
            f"{volume.spatial_shape} (map it back to source geometry first)",
            src.path,
        )
    if not np.all(np.isfinite(attr)):
        raise InputError(f"{writer}: attribution has NaN or infinite values", src.path)
    if not np.allclose(volume.affine, ref.affine_ras, atol=1e-4):
        raise InputError(
            f"{writer}: the volume's affine differs from the DICOM series it was read from; "
            "the attribution must be on the source voxel grid",
            src.path,
        )
    for note in repair_header_values(ref.datasets):  # for references not made by the reader
        logger.warning("%s", note)
    lps = ref.affine_lps
    spacing_i = float(np.linalg.norm(lps[:3, 0]))
    spacing_j = float(np.linalg.norm(lps[:3, 1]))
    u, v = lps[:3, 0] / spacing_i, lps[:3, 1] / spacing_j
    step_vec = lps[:3, 2]
    normal = np.cross(u, v)
    frames = np.ascontiguousarray(attr.transpose(2, 1, 0), dtype=np.float32)  # (K, J, I)
    anatomy = np.ascontiguousarray(volume.array[0].transpose(2, 1, 0), dtype=np.float32)
    positions = ref.grid_positions(attr.shape[2])
    if float(np.dot(step_vec, normal)) < 0:  # keep frames ascending along the normal
        frames, anatomy, positions = frames[::-1], anatomy[::-1], positions[::-1]
    return DerivedGeometry(
        ref=ref,
        frames=np.ascontiguousarray(frames),
        anatomy=np.ascontiguousarray(anatomy),
        positions=np.ascontiguousarray(positions),
        orientation=np.concatenate([u, v]),
        pixel_spacing=(spacing_j, spacing_i),
        slice_step=float(np.linalg.norm(step_vec)),
    )


def anatomic_region(ref: DicomReference) -> tuple[str, str]:
    """SNOMED CT (code, meaning) of the source's BodyPartExamined; Entire body if unknown."""
    part = str(ref.datasets[0].get("BodyPartExamined", "") or "")
    return _BODY_PARTS.get(re.sub(r"[^A-Z]", "", part.upper()), _ENTIRE_BODY)


def frame_anatomy_item(ref: DicomReference) -> Dataset:
    """A FrameAnatomySequence item (laterality U: unpaired/whole field of view)."""
    code, meaning = anatomic_region(ref)
    region = Dataset()
    region.CodeValue = code
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = meaning
    item = Dataset()
    item.AnatomicRegionSequence = [region]
    item.FrameLaterality = "U"
    return item


def _frame_values(ds: Dataset, index: int, seq: str, attr: str) -> object:
    per = ds.PerFrameFunctionalGroupsSequence[index]
    group = per if seq in per else ds.SharedFunctionalGroupsSequence[0]
    return getattr(group[seq].value[0], attr)


def order_frames_ascending(ds: Dataset) -> None:
    """Reorder a multi-frame image's frames ascending along the slice normal, in place.

    highdicom sorts derived frames along the *negative* normal ``column x row``; dcmqi (3D
    Slicer) expects them ascending along ``row x column`` and flips the volume otherwise.
    Frames are sorted by (segment number if any, position along the normal); the per-frame
    functional groups, the pixel data (bit-packed for BINARY segmentations) and the
    position dimension index values follow.
    """
    from pydicom.pixels import pack_bits, unpack_bits

    n = int(ds.NumberOfFrames)
    orient = np.asarray(
        _frame_values(ds, 0, "PlaneOrientationSequence", "ImageOrientationPatient"), float
    )
    normal = np.cross(orient[:3], orient[3:])
    dist = np.array(
        [
            float(
                np.dot(
                    np.asarray(
                        _frame_values(ds, f, "PlanePositionSequence", "ImagePositionPatient"), float
                    ),
                    normal,
                )
            )
            for f in range(n)
        ]
    )
    segment = np.zeros(n)
    if "SegmentIdentificationSequence" in ds.PerFrameFunctionalGroupsSequence[0]:
        segment = np.array(
            [
                float(
                    ds.PerFrameFunctionalGroupsSequence[f]
                    .SegmentIdentificationSequence[0]
                    .ReferencedSegmentNumber
                )
                for f in range(n)
            ]
        )
    order = np.lexsort((dist, segment))
    rows, cols = int(ds.Rows), int(ds.Columns)
    if not np.array_equal(order, np.arange(n)):
        per = list(ds.PerFrameFunctionalGroupsSequence)
        ds.PerFrameFunctionalGroupsSequence = [per[i] for i in order]
        keyword = next(
            k for k in ("FloatPixelData", "DoubleFloatPixelData", "PixelData") if k in ds
        )
        raw = ds[keyword].value
        if int(ds.BitsAllocated) == 1:
            bits = np.asarray(unpack_bits(raw, as_array=True))[: n * rows * cols]
            bits = bits.reshape(n, rows, cols)
            packed = pack_bits(np.ascontiguousarray(bits[order]))
            ds[keyword].value = packed
        else:
            dtype = {"FloatPixelData": np.float32, "DoubleFloatPixelData": np.float64}.get(
                keyword, np.uint8 if int(ds.BitsAllocated) == 8 else np.uint16
            )
            frames = np.frombuffer(raw, dtype=dtype)[: n * rows * cols].reshape(n, rows, cols)
            ds[keyword].value = np.ascontiguousarray(frames[order]).tobytes()
    pointers = [int(item.DimensionIndexPointer) for item in ds.get("DimensionIndexSequence", [])]
    if 0x00200032 in pointers:
        pos = pointers.index(0x00200032)
        unique = np.unique(np.round(dist, 4))
        for item in ds.PerFrameFunctionalGroupsSequence:
            content = item.FrameContentSequence[0]
            p = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float)
            rank = int(np.searchsorted(unique, round(float(np.dot(p, normal)), 4))) + 1
            values = (
                list(content.DimensionIndexValues)
                if len(pointers) > 1
                else [content.DimensionIndexValues]
            )
            values[pos] = rank
            content.DimensionIndexValues = values if len(values) > 1 else values[0]


@contextlib.contextmanager
def staged_series(out_dir: str | os.PathLike[str], prefix: str) -> Iterator[Callable[[str], Path]]:
    """Stage a writer's files; on success move them into ``out_dir`` and drop stale ones.

    Files from an earlier run with the same ``prefix`` (e.g. more slices then) are removed
    after the new ones are in place, so a directory never mixes two runs' instances.
    """
    out = Path(out_dir)
    existing = set(out.glob(f"{prefix}*.dcm")) if out.is_dir() else set()
    written: list[Path] = []

    with staged_directory(out) as stage:

        def stage_name(name: str) -> Path:
            written.append(out / name)
            return stage(name)

        yield stage_name
    for stale in existing - set(written):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
