"""The attribution as a float DICOM Parametric Map in the source study.

A Parametric Map (highdicom ``ParametricMap``) keeps the attribution's values: 32-bit float
frames, a Real World Value Mapping (identity, unit "no units") that tells viewers the stored
value *is* the attribution, and a VOI window centred on zero (width twice the 99.5th
percentile of |attribution|) so that positive and negative evidence are equally visible.
Frames run ascending along the slice normal and the shared functional groups carry a
FrameAnatomySequence: dcmqi (the converter behind 3D Slicer) needs both to load the map in
the right place.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medattr._colour import robust_limit
from medattr.io.dicom_derived import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    AlgorithmInfo,
    derived_geometry,
    frame_anatomy_item,
    order_frames_ascending,
    series_description,
    staged_series,
)
from medattr.volume import Volume

__all__ = ["write_dicom_parametric_map"]

logger = logging.getLogger("medattr.io.dicom")


def write_dicom_parametric_map(
    volume: Volume,
    attribution: np.ndarray,
    out_dir: str | os.PathLike[str],
    *,
    algorithm: AlgorithmInfo,
    series_number: int = 9902,
    filename: str = "attribution_pm.dcm",
    window_percentile: float = 99.5,
    **hd_opts: Any,
) -> list[Path]:
    """Write the attribution as a single-file float Parametric Map series.

    Parameters
    ----------
    volume
        The source volume as returned by :func:`medattr.io.read_dicom_series`.
    attribution
        ``(I, J, K)`` attribution on the source grid (any sign).
    out_dir
        Directory receiving ``filename`` (replaced if it exists).
    algorithm
        Recorded in the series and content descriptions, the real-world value mapping's
        explanation and the ContributingEquipmentSequence.
    series_number
        SeriesNumber of the new series.
    window_percentile
        The VOI window spans ``[-L, L]`` with ``L`` this percentile of |attribution|.
    **hd_opts
        Further keyword arguments for ``highdicom.pm.ParametricMap``.

    Returns
    -------
    list of Path
        ``[out_dir / filename]``.

    Examples
    --------
    >>> write_dicom_parametric_map(vol, attr, "out/dicom",
    ...                            algorithm=AlgorithmInfo("ig", "zero"))  # doctest: +SKIP
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    geo = derived_geometry(volume, attribution, "write_dicom_parametric_map")
    frames = geo.frames
    lim = robust_limit(frames, window_percentile)
    lo, hi = float(frames.min()), float(frames.max())
    if hi <= lo:
        hi = lo + 1.0
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="ATTRIBUTION",
        lut_explanation=f"{algorithm.method} attribution, {algorithm.baseline} baseline"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(lo, hi),
        slope=1.0,
        intercept=0.0,
    )
    pm = hd.pm.ParametricMap(
        source_images=list(geo.ref.datasets),
        pixel_array=frames,
        series_instance_uid=generate_uid(),
        series_number=series_number,
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
                window_center=[0.0],
                window_width=[2.0 * lim],
                window_explanation=["symmetric about zero"],
                voi_lut_function="LINEAR_EXACT",  # widths below 1 are allowed only with it
            )
        ],
        transfer_syntax_uid=ExplicitVRLittleEndian,
        content_label="ATTRIBUTION",
        content_description=f"{algorithm.method} attribution map. {NOT_FOR_DIAGNOSIS}"[:64],
        contributing_equipment=[algorithm.contributing_equipment()],
        series_description=series_description("Param map", algorithm),
        **geo.plane_kwargs(),
        **hd_opts,
    )
    order_frames_ascending(pm)
    shared = pm.SharedFunctionalGroupsSequence[0]
    if "FrameAnatomySequence" not in shared:
        shared.FrameAnatomySequence = [frame_anatomy_item(geo.ref)]
    with staged_series(out_dir, filename[:-4] if filename.endswith(".dcm") else filename) as stage:
        pm.save_as(stage(filename), enforce_file_format=True)
    path = Path(out_dir) / filename
    logger.debug("Parametric Map (%d frames) saved as %s", frames.shape[0], path)
    return [path]
