"""The attribution as float DICOM Parametric Maps in the source study.

Viewers take a Parametric Map's stored values at face value: OHIF (3.9 to at least 3.13)
multiplies them by 100, windows 0-100 with a fixed rainbow palette and makes 0 transparent, so
raw attributions (often 1e-6 to 1e-1) show nothing and negative values never show. medattr
therefore stores a *displayable* scale and lets the Real World Value Mapping carry it back:

* ``attribution_pm.dcm`` -- the signed attribution divided by ``L``, the 99.5th percentile of
  |attribution| (the colour scale of the RGB overlay and the PNG), so the strong evidence lies
  near +-1. The Real World Value Mapping (slope ``L``, intercept 0, unit "no units", label
  ``ATTRIBUTION``) turns stored values back into attribution units; the VOI window spans
  [-1, 1], so viewers that honour it (3D Slicer) show both signs; OHIF shows the positive part,
  the evidence for the target.
* ``attribution_pm_negative.dcm`` (``negative_map=True``, the default) -- the evidence against
  the target as magnitudes, ``max(-attribution, 0) / L``, with slope ``-L`` (so the real world
  value is the attribution where it is negative, 0 elsewhere) and a [0, 1] window: the
  viewers that show only positive values show this one too.

Frames run ascending along the slice normal and the shared functional groups carry a
FrameAnatomySequence: dcmqi (the converter behind 3D Slicer) needs both to load the map in
the right place.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medattr._colour import robust_limit
from medattr.errors import InputError
from medattr.io.dicom_derived import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    AlgorithmInfo,
    DerivedGeometry,
    derived_geometry,
    frame_anatomy_item,
    order_frames_ascending,
    series_description,
    set_lossy_compression,
    staged_series,
)
from medattr.volume import Volume

__all__ = ["display_scale", "write_dicom_parametric_map"]

logger = logging.getLogger("medattr.io.dicom")


def display_scale(attribution: np.ndarray, percentile: float = 99.5) -> float:
    """``L``: the attribution value stored as 1 (the ``percentile`` of the non-zero |values|).

    The same rule as the colour scale of the RGB overlay and the PNG
    (:func:`medattr.render.robust_limit`); 1.0 for an all-zero attribution.

    Examples
    --------
    >>> display_scale(np.array([0.0, 0.5, -2.0, 1.0]), 50.0)
    1.0
    """
    if not (isinstance(percentile, int | float) and 0 < percentile <= 100):
        raise InputError(f"scale_percentile must be in (0, 100], got {percentile!r}")
    return robust_limit(np.asarray(attribution), float(percentile))


def write_dicom_parametric_map(
    volume: Volume,
    attribution: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    algorithm: AlgorithmInfo,
    series_number: int = 9902,
    filename: str = "attribution_pm.dcm",
    scale: float | None = None,
    scale_percentile: float = 99.5,
    negative_map: bool = True,
    negative_series_number: int = 9904,
    negative_filename: str = "attribution_pm_negative.dcm",
    **hd_opts: Any,
) -> list[Path]:
    """Write the attribution as float Parametric Map series that viewers display.

    Parameters
    ----------
    volume
        The source volume as returned by :func:`medattr.io.read_dicom_series`.
    attribution
        ``(I, J, K)`` attribution on the source grid (any sign).
    out_dir
        Directory receiving ``filename`` (and ``negative_filename``), replaced if present.
    algorithm
        Recorded in the series and content descriptions, the real-world value mapping's
        explanation and the ContributingEquipmentSequence; ``algorithm.name`` is the
        ContentCreatorName.
    series_number
        SeriesNumber of the signed map.
    scale
        ``L``, the attribution stored as 1.0; default :func:`display_scale` of the
        attribution with ``scale_percentile``. Stored value x Real World Value slope
        (``L``) = attribution, to float32 rounding.
    scale_percentile
        Percentile of the non-zero |attribution| that becomes ``L``.
    negative_map
        Also write the evidence against the target as a second series (positive stored
        values, slope ``-L``), for viewers that show only positive values (OHIF).
    negative_series_number, negative_filename
        Its SeriesNumber and file name.
    **hd_opts
        Further keyword arguments for ``highdicom.pm.ParametricMap``.

    Returns
    -------
    list of Path
        ``[out_dir / filename]``, then ``out_dir / negative_filename`` if written.

    Examples
    --------
    >>> write_dicom_parametric_map(vol, attr, "out/dicom",
    ...                            algorithm=AlgorithmInfo("ig", "zero"))  # doctest: +SKIP
    """
    lim = display_scale(attribution, scale_percentile) if scale is None else scale
    if isinstance(lim, bool) or not (isinstance(lim, int | float) and np.isfinite(lim) and lim > 0):
        raise InputError(f"scale must be a positive finite number, got {scale!r}")
    geo = derived_geometry(volume, attribution, "write_dicom_parametric_map")
    label = f"{algorithm.method} attribution, {algorithm.baseline} baseline"
    maps = [
        _Map(
            stored=geo.frames / np.float32(lim),
            slope=float(lim),
            lut_label="ATTRIBUTION",
            explanation=f"{label} / {lim:.4g}"[:64],
            window=(0.0, 2.0, "signed, 1 = p99.5 of |attribution|"),
            kind="Param map",
            series_number=series_number,
            filename=filename,
        )
    ]
    if negative_map:
        maps.append(
            _Map(
                stored=np.maximum(-geo.frames, 0.0) / np.float32(lim),
                slope=-float(lim),
                lut_label="ATTRIBUTION NEG",
                explanation=f"negative part of {label} / {lim:.4g}"[:64],
                window=(0.5, 1.0, "against the target, 1 = p99.5"),
                kind="Param map against",
                series_number=negative_series_number,
                filename=negative_filename,
            )
        )
    datasets = [_build_map(geo, item, algorithm, hd_opts) for item in maps]
    paths = []
    # one staging for both files: each run replaces the other's leftovers (same prefix)
    with staged_series(out_dir, filename[:-4] if filename.endswith(".dcm") else filename) as stage:
        for item, ds in zip(maps, datasets, strict=True):
            ds.save_as(stage(item.filename), enforce_file_format=True)
            paths.append(Path(out_dir) / item.filename)
    logger.debug(
        "Parametric Map(s) %s saved (%d frames, 1.0 stored = %.4g attribution)",
        ", ".join(str(p) for p in paths),
        geo.frames.shape[0],
        lim,
    )
    return paths


@dataclass
class _Map:
    stored: np.ndarray  # (K, rows, columns) float32
    slope: float
    lut_label: str
    explanation: str
    window: tuple[float, float, str]  # centre, width, explanation
    kind: str
    series_number: int
    filename: str


def _build_map(
    geo: DerivedGeometry, item: _Map, algorithm: AlgorithmInfo, hd_opts: dict[str, Any]
) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    stored = np.ascontiguousarray(item.stored, dtype=np.float32)
    lo, hi = float(stored.min()), float(stored.max())
    if hi <= lo:
        hi = lo + 1.0
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=item.lut_label,
        lut_explanation=item.explanation,
        unit=codes.UCUM.NoUnits,
        value_range=(lo, hi),
        slope=item.slope,
        intercept=0.0,
    )
    center, width, why = item.window
    pm = hd.pm.ParametricMap(
        source_images=list(geo.ref.datasets),
        pixel_array=stored,
        series_instance_uid=generate_uid(),
        series_number=item.series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name[:64],
        software_versions=algorithm.version[:64],
        device_serial_number=algorithm.version[:64],
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            hd.VOILUTTransformation(
                # one-item lists: highdicom 0.28 splits a plain-string explanation into letters
                window_center=[center],
                window_width=[width],
                window_explanation=[why[:64]],
                voi_lut_function="LINEAR",
            )
        ],
        transfer_syntax_uid=ExplicitVRLittleEndian,
        content_label="ATTRIBUTION",
        content_description=f"{algorithm.method} attribution map. {NOT_FOR_DIAGNOSIS}"[:64],
        content_creator_name=f"{algorithm.name[:63]}^",  # one-component person name
        contributing_equipment=[algorithm.contributing_equipment()],
        series_description=series_description(item.kind, algorithm),
        **geo.plane_kwargs(),
        **hd_opts,
    )
    order_frames_ascending(pm)
    set_lossy_compression(pm, geo.ref)
    shared = pm.SharedFunctionalGroupsSequence[0]
    if "FrameAnatomySequence" not in shared:
        shared.FrameAnatomySequence = [frame_anatomy_item(geo.ref)]
    return pm
