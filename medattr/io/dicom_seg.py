"""The strongest attribution as a DICOM Segmentation in the source study.

The segment is the ``top_percent`` % of all voxels with the largest attribution (positive
evidence for the target by default), as a BINARY segmentation, or as a FRACTIONAL one whose
values are the attribution inside that region divided by its maximum. It is written with
highdicom ``Segmentation`` on the full source grid -- one frame per source slice, empty ones
included, ascending along the slice normal -- so that dcmqi and 3D Slicer return a volume of
the source's shape, not one cropped to the slices the segment touches. One segment,
described as an automatic result of medattr (algorithm name, version, method, baseline and
target in its AlgorithmIdentificationSequence), with a recommended display colour: red for
evidence for the target (as in the RGB overlay), blue against, yellow for either.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medattr.errors import InputError
from medattr.io.dicom_derived import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    AlgorithmInfo,
    derived_geometry,
    order_frames_ascending,
    series_description,
    set_lossy_compression,
    staged_series,
)
from medattr.volume import Volume

__all__ = ["SEGMENT_COLORS", "AttributionSign", "top_percent_mask", "write_dicom_seg"]

logger = logging.getLogger("medattr.io.dicom")

#: CID 7150 category and a type for a region defined by an algorithm rather than anatomy.
SEGMENT_CATEGORY = Code("309825002", "SCT", "Spatial and Relational Concept")
SEGMENT_TYPE = Code("130488", "DCM", "Region in Space")

#: Recommended display colour (sRGB) of the segment, by sign: RdBu's ends, and yellow.
SEGMENT_COLORS = {
    "positive": (215, 48, 39),
    "negative": (33, 102, 172),
    "absolute": (255, 200, 0),
}

#: Recommended display colour of the extra segments (a baseline's anomaly mask): green.
EXTRA_SEGMENT_COLOR = (77, 175, 74)


class AttributionSign(str, Enum):
    """Which attributions count as strong: evidence for the target, against it, or either."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    ABSOLUTE = "absolute"


def top_percent_mask(
    attribution: np.ndarray,
    top_percent: float,
    sign: AttributionSign | str = AttributionSign.POSITIVE,
) -> np.ndarray:
    """Boolean mask of the ``top_percent`` % of all voxels with the strongest attribution.

    Only voxels with a non-zero score can be selected (score = attribution, its negative, or
    its magnitude, per ``sign``), so the mask may hold fewer voxels than asked for; ties at
    the threshold are all kept.

    Examples
    --------
    >>> a = np.arange(100, dtype=np.float32).reshape(4, 5, 5)
    >>> int(top_percent_mask(a, 5).sum())
    5
    """
    if not (isinstance(top_percent, int | float) and 0 < top_percent <= 100):
        raise InputError(f"top_percent must be in (0, 100], got {top_percent!r}")
    sign = AttributionSign(sign)
    a = np.asarray(attribution, dtype=np.float64)
    score = {
        AttributionSign.POSITIVE: a,
        AttributionSign.NEGATIVE: -a,
        AttributionSign.ABSOLUTE: np.abs(a),
    }[sign]
    k = max(1, math.ceil(a.size * top_percent / 100.0))
    candidates = score[score > 0]
    if candidates.size == 0:
        return np.zeros(a.shape, dtype=bool)
    k = min(k, candidates.size)
    threshold = np.partition(candidates, candidates.size - k)[candidates.size - k]
    return score >= threshold


def write_dicom_seg(
    volume: Volume,
    attribution: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    algorithm: AlgorithmInfo,
    top_percent: float = 1.0,
    segmentation_type: str = "BINARY",
    sign: AttributionSign | str = AttributionSign.POSITIVE,
    series_number: int = 9903,
    filename: str = "attribution_seg.dcm",
    display_color: tuple[int, int, int] | None = None,
    extra_segments: Mapping[str, np.ndarray] | None = None,
    **hd_opts: Any,
) -> list[Path]:
    """Write the strongest ``top_percent`` % of the attribution as a DICOM SEG series.

    Parameters
    ----------
    volume
        The source volume as returned by :func:`medattr.io.read_dicom_series`.
    attribution
        ``(I, J, K)`` attribution on the source grid.
    out_dir
        Directory receiving ``filename`` (replaced if it exists).
    algorithm
        Recorded in the segment's AlgorithmIdentificationSequence and the descriptions.
    top_percent
        Percentage of all voxels in the segment (see :func:`top_percent_mask`).
    segmentation_type
        ``"BINARY"`` or ``"FRACTIONAL"`` (attribution / its maximum inside the segment,
        stored as PROBABILITY in 1/255 steps).
    sign
        ``"positive"`` (default), ``"negative"`` or ``"absolute"``: which evidence is strong.
    series_number
        SeriesNumber of the new series.
    display_color
        Recommended display colour (sRGB 0-255), stored as CIELab; default red for
        ``"positive"``, blue for ``"negative"``, yellow for ``"absolute"``.
    extra_segments
        Further segments after the attribution's, by label: bool ``(I, J, K)`` masks on the
        source grid (the baseline's anomaly mask), green; an empty mask is left out.
    **hd_opts
        Further keyword arguments for ``highdicom.seg.Segmentation``.

    Returns
    -------
    list of Path
        ``[out_dir / filename]``.

    Examples
    --------
    >>> write_dicom_seg(vol, attr, "out/dicom", algorithm=AlgorithmInfo("ig", "zero"),
    ...                 top_percent=2.0)  # doctest: +SKIP
    """
    import highdicom as hd

    seg_type = str(getattr(segmentation_type, "value", segmentation_type)).upper()
    if seg_type not in ("BINARY", "FRACTIONAL"):
        raise InputError(
            f"segmentation_type must be 'BINARY' or 'FRACTIONAL', got {segmentation_type!r}"
        )
    geo = derived_geometry(volume, attribution, "write_dicom_seg")
    sign = AttributionSign(sign)
    rgb = SEGMENT_COLORS[sign.value] if display_color is None else display_color
    try:
        color = hd.color.CIELabColor.from_rgb(*(int(v) for v in rgb))
    except (TypeError, ValueError):
        raise InputError(
            f"display_color must be three integers 0-255 (sRGB), got {display_color!r}"
        ) from None
    mask = top_percent_mask(geo.frames, top_percent, sign)
    if not mask.any():
        logger.warning("no %s attribution: the segmentation is empty", sign.value)
    if seg_type == "BINARY":
        pixels: np.ndarray = mask.astype(np.uint8)
    else:
        score = {
            AttributionSign.POSITIVE: geo.frames,
            AttributionSign.NEGATIVE: -geo.frames,
            AttributionSign.ABSOLUTE: np.abs(geo.frames),
        }[sign]
        peak = float(score[mask].max()) if mask.any() else 1.0
        pixels = np.where(mask, np.clip(score / peak, 0.0, 1.0), 0.0).astype(np.float32)
    label = f"top {top_percent:g}% {sign.value} attribution"
    segment = _segment(
        hd, 1, label, f"{algorithm.name} {algorithm.method} top {top_percent:g}%", algorithm, color
    )
    segments = [segment]
    planes = [pixels]
    for name, extra in (extra_segments or {}).items():
        frames = derived_geometry(volume, np.asarray(extra, np.float32), "write_dicom_seg").frames
        if not frames.any():
            logger.info("segment %r is empty; left out of the SEG", name)
            continue
        segments.append(
            _segment(
                hd,
                len(segments) + 1,
                name.replace("_", " "),
                f"{algorithm.name} {algorithm.baseline} {name}",
                algorithm,
                hd.color.CIELabColor.from_rgb(*EXTRA_SEGMENT_COLOR),
            )
        )
        planes.append(frames.astype(pixels.dtype))
    seg = hd.seg.Segmentation(
        source_images=list(geo.ref.datasets),
        pixel_array=pixels if len(planes) == 1 else np.stack(planes, axis=-1),
        segmentation_type=seg_type,
        segment_descriptions=segments,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name[:64],
        software_versions=algorithm.version[:64],
        device_serial_number=algorithm.version[:64],
        content_label="ATTRIBUTION",
        content_description=f"{label}. {NOT_FOR_DIAGNOSIS}"[:64],
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=False,  # the full source grid: dcmqi/Slicer crop otherwise
        content_creator_name=f"{algorithm.name[:63]}^",  # one-component person name
        contributing_equipment=[algorithm.contributing_equipment()],
        series_description=series_description(f"SEG top {top_percent:g}%", algorithm),
        **geo.plane_kwargs(),
        **hd_opts,
    )
    order_frames_ascending(seg)
    set_lossy_compression(seg, geo.ref)
    with staged_series(out_dir, filename[:-4] if filename.endswith(".dcm") else filename) as stage:
        seg.save_as(stage(filename), enforce_file_format=True)
    path = Path(out_dir) / filename
    logger.debug(
        "SEG (%d voxels, %d frames) saved as %s", int(mask.sum()), int(seg.NumberOfFrames), path
    )
    return [path]


def _segment(
    hd: Any, number: int, label: str, tracking_id: str, algorithm: AlgorithmInfo, color: Any
) -> Any:
    """A segment's description: an algorithm's region in space."""
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label[:64],
        segmented_property_category=SEGMENT_CATEGORY,
        segmented_property_type=SEGMENT_TYPE,
        algorithm_type="AUTOMATIC",
        algorithm_identification=algorithm.identification(),
        tracking_uid=generate_uid(),
        tracking_id=tracking_id[:64],
        display_color=color,
    )
