"""The attribution as an RGB overlay series: heatmap blended over the source slices.

Encoding: one Secondary Capture instance per source slice (highdicom ``SCImage``), extended
with the Image Plane attributes (ImagePositionPatient, ImageOrientationPatient, PixelSpacing,
SliceThickness) and the Frame of Reference of the source. Secondary Capture is the colour
image every PACS and viewer displays; the plane attributes make ordinary viewers stack the
slices in the right order and geometry and link them to the source series (same frame of
reference), at the price of a dciodvfy *warning* that these attributes are not part of the
SC IOD. CT/MR image IODs would forbid RGB, and the true-colour multi-frame IODs have no
plane position either. The colours are a rendering of the attribution, not measurements:
use the Parametric Map for values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medattr._colour import blend_rgb, robust_limit
from medattr.io.dicom_derived import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    AlgorithmInfo,
    DerivedGeometry,
    derived_geometry,
    ds_value,
    series_description,
    set_lossy_compression,
    staged_series,
)
from medattr.io.windows import WindowSpec, parse_window, resolve_window
from medattr.volume import Volume

__all__ = ["instance_numbers", "write_dicom_rgb"]

logger = logging.getLogger("medattr.io.dicom")

_LETTERS = (("L", "R"), ("P", "A"), ("H", "F"))  # LPS +axis, -axis


def _orientation_letter(direction: np.ndarray) -> str:
    """Dominant patient direction of an LPS unit vector, as a PatientOrientation letter."""
    axis = int(np.argmax(np.abs(direction)))
    return _LETTERS[axis][0 if direction[axis] > 0 else 1]


def instance_numbers(geo: DerivedGeometry) -> list[int]:
    """InstanceNumber of each frame (in frame order, ascending along the normal).

    When every frame is a single-frame source image with its own, distinct InstanceNumber,
    the overlay takes that number: image 8 of the source is image 8 of the overlay. Otherwise
    (a resampled grid, Enhanced multi-frame sources, missing or repeated numbers) the frames
    are numbered 1..K in the direction in which the source's numbers (or frame numbers) run.
    """
    ref = geo.ref
    n = geo.frames.shape[0]
    by_uid: dict[str, int] = {}
    for ds in ref.datasets:
        if "InstanceNumber" in ds and ds.InstanceNumber not in (None, ""):
            by_uid[str(ds.SOPInstanceUID)] = int(ds.InstanceNumber)
    sources = [geo.source_slice(index) for index in range(n)]
    own = [
        by_uid.get(s.sop_instance_uid) if s is not None and s.frame_number is None else None
        for s in sources
    ]
    if all(v is not None for v in own) and len(set(own)) == n:
        return [int(v) for v in own if v is not None]
    keys = [
        by_uid.get(s.sop_instance_uid, 0) if s.frame_number is None else s.frame_number
        for s in ref.slices
    ]
    descending = len(keys) > 1 and keys[0] > keys[-1]  # source slices ascend along the normal
    return list(range(n, 0, -1)) if descending else list(range(1, n + 1))


def write_dicom_rgb(
    volume: Volume,
    attribution: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    algorithm: AlgorithmInfo,
    series_number: int = 9901,
    prefix: str = "overlay_rgb_",
    window: WindowSpec = "source",
    limit: float | None = None,
    opacity: float = 0.7,
    threshold: float = 0.1,
    cmap: str = "RdBu_r",
    **blend_opts: Any,
) -> list[Path]:
    """Write the attribution blended over the source as an RGB series in the source study.

    Parameters
    ----------
    volume
        The source volume as returned by :func:`medattr.io.read_dicom_series`.
    attribution
        ``(I, J, K)`` attribution on the source grid.
    out_dir
        Directory receiving one file per slice, ``<prefix><InstanceNumber>.dcm`` (four
        digits); earlier files with the same prefix are replaced. Instance numbers follow
        the source's (see :func:`instance_numbers`).
    algorithm
        Recorded in the description, DerivationDescription and ContributingEquipmentSequence.
    series_number
        SeriesNumber of the new series.
    window
        Anatomy window burnt into the pixels (:func:`medattr.io.windows.parse_window`):
        ``"source"`` (default, also ``None``) for the source's own first
        WindowCenter/WindowWidth, or the 0.5-99.5 percentiles if it has none;
        ``"percentile"``; a preset (``"soft-tissue"``, ``"lung"``, ``"liver"``, ``"bone"``,
        ``"brain"``); ``"C/W"`` such as ``"40/400"``; or a ``(center, width)`` pair.
    limit, opacity, threshold, cmap
        Colour scale of :func:`medattr.render.blend_rgb`; ``limit`` defaults to the 99.5th
        percentile of |attribution| over the whole volume, so all slices share one scale.

    Returns
    -------
    list of Path
        The written files, in frame order (ascending along the slice normal).

    Examples
    --------
    >>> vol = read_dicom_series("study/CT")  # doctest: +SKIP
    >>> write_dicom_rgb(vol, attr, "out/dicom",
    ...                 algorithm=AlgorithmInfo("ig", "zero"))  # doctest: +SKIP
    """
    import highdicom as hd

    parse_window(window)  # refuse a bad choice before any work
    geo = derived_geometry(volume, attribution, "write_dicom_rgb")
    ref = geo.ref
    display, origin = resolve_window(window, ref.datasets, geo.anatomy)
    win = display.limits
    lim = limit if limit is not None else robust_limit(geo.frames)
    numbers = instance_numbers(geo)

    def blend(index: int) -> np.ndarray:  # one slice at a time: memory stays one frame
        return blend_rgb(
            geo.anatomy[index],
            geo.frames[index],
            window=win,
            limit=lim,
            cmap=cmap,
            opacity=opacity,
            threshold=threshold,
            **blend_opts,
        )

    u, v = geo.orientation[:3], geo.orientation[3:]
    patient_orientation = (_orientation_letter(u), _orientation_letter(v))
    series_uid = generate_uid()
    description = series_description("RGB overlay", algorithm)
    template = ref.datasets[0]
    paths: list[Path] = []
    with staged_series(out_dir, prefix) as stage:
        for index in range(geo.frames.shape[0]):
            sc = hd.sc.SCImage.from_ref_dataset(
                ref_dataset=template,
                pixel_array=np.ascontiguousarray(blend(index)),  # (rows, cols, 3) uint8
                photometric_interpretation="RGB",
                bits_allocated=8,
                coordinate_system="PATIENT",
                series_instance_uid=series_uid,
                series_number=series_number,
                sop_instance_uid=generate_uid(),
                instance_number=numbers[index],
                manufacturer=MANUFACTURER,
                pixel_spacing=geo.pixel_spacing,  # type: ignore[arg-type]  # floats are fine
                patient_orientation=patient_orientation,
                transfer_syntax_uid=ExplicitVRLittleEndian,
                contributing_equipment=[algorithm.contributing_equipment()],
                series_description=description,
            )
            sc.copy_patient_and_study_information(template)
            _add_plane(sc, geo, index, template)
            _add_provenance(sc, geo, index, algorithm, f"{display} ({origin})")
            name = f"{prefix}{numbers[index]:04d}.dcm"
            sc.save_as(stage(name), enforce_file_format=True)
            paths.append(Path(out_dir) / name)
    logger.debug(
        "RGB overlay series (%d slices, anatomy window %s from %s) to %s",
        len(paths),
        display,
        origin,
        out_dir,
    )
    return paths


def _add_plane(sc: Dataset, geo: DerivedGeometry, index: int, template: Dataset) -> None:
    """Image Plane and Frame of Reference attributes that put the slice in the patient."""
    sc.FrameOfReferenceUID = geo.ref.frame_of_reference_uid
    sc.PositionReferenceIndicator = template.get("PositionReferenceIndicator", "") or ""
    sc.ImagePositionPatient = [ds_value(x) for x in geo.positions[index]]
    sc.ImageOrientationPatient = [ds_value(x) for x in geo.orientation]
    sc.SliceThickness = ds_value(geo.slice_thickness)
    normal = np.cross(geo.orientation[:3], geo.orientation[3:])
    sc.SliceLocation = ds_value(float(np.dot(geo.positions[index], normal)))


def _add_provenance(
    sc: Dataset, geo: DerivedGeometry, index: int, algorithm: AlgorithmInfo, window: str
) -> None:
    """Derivation, source image reference, lossy compression and the not-for-diagnosis
    notice."""
    source = geo.ref.datasets[0]
    if source.get("BodyPartExamined"):
        sc.BodyPartExamined = source.BodyPartExamined
    if "Laterality" in source:
        sc.Laterality = source.Laterality
    elif not source.get("BodyPartExamined"):
        sc.Laterality = ""  # Type 2C: unknown, since the body part does not say it is unpaired
    sc.BurnedInAnnotation = "NO"
    sc.RecognizableVisualFeatures = "NO"
    set_lossy_compression(sc, geo.ref)
    sc.DerivationDescription = f"{algorithm.summary()} Anatomy window {window}."[:1024]
    sc.ImageComments = f"Attribution heatmap over the source image. {NOT_FOR_DIAGNOSIS}."
    src = geo.source_slice(index)
    if src is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = src.sop_class_uid
        item.ReferencedSOPInstanceUID = src.sop_instance_uid
        if src.frame_number is not None:
            item.ReferencedFrameNumber = src.frame_number
        sc.SourceImageSequence = [item]
