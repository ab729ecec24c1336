"""The DICOM writers: new series in the source study (``dicom-rgb``, ``dicom-pm``,
``dicom-seg``), all into ``<name>_dicom/`` beside the other outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medattr.io.dicom_derived import AlgorithmInfo
from medattr.io.dicom_pm import display_scale, write_dicom_parametric_map
from medattr.io.dicom_sc import write_dicom_rgb
from medattr.io.dicom_seg import write_dicom_seg
from medattr.io.writers import Stage, StudyOutput, Writer, register_writer
from medattr.registry import Setting

__all__ = ["DicomParametricMapWriter", "DicomRGBWriter", "DicomSegWriter", "algorithm_info"]


def _window(value: object) -> str:
    from medattr.io.windows import parse_window

    text = str(value).strip()
    parse_window(text)  # InputError for a bad choice
    return text


WINDOW = Setting(
    "window",
    "source",
    "dicom-rgb: anatomy window burnt into the overlay: source (the series' own "
    "WindowCenter/Width), percentile, a preset (soft-tissue, lung, liver, bone, brain) or "
    "C/W such as 40/400",
    type=_window,
    metavar="WINDOW",
)
PM_NEGATIVE_MAP = Setting(
    "pm_negative_map",
    True,
    "dicom-pm: also write the evidence against as a second map of positive values (viewers "
    "such as OHIF show only positive values)",
    type=bool,
    param="negative_map",
)
SEG_TOP_PERCENT = Setting(
    "seg_top_percent",
    1.0,
    "dicom-seg: percent of all voxels (strongest positive attribution) segmented",
    type=float,
    minimum=0.0,
    maximum=100.0,
    exclusive_minimum=True,
    param="top_percent",
)


def algorithm_info(result: StudyOutput) -> AlgorithmInfo:
    """Method, baseline and target of an explained study, as the DICOM writers record them."""
    exp = result.explanation
    target = exp.target
    label = target.get("index", target.get("label", ""))
    return AlgorithmInfo(
        method=exp.method,
        baseline=str(result.baseline_info.get("name", result.config.baseline)),
        target=f"class {label} {target.get('activation', '')}".strip(),
    )


class _DicomWriter(Writer):
    needs_dicom = True
    output_key = "dicom"

    def write(self, result: StudyOutput, stage: Stage) -> dict[str, Any]:
        dname = f"{result.volume.name}_dicom"
        directory = stage(dname)
        directory.mkdir(exist_ok=True)
        written = self.series(result, directory, algorithm_info(result))
        mapping = str(result.config.display_mapping)
        return {
            "dicom_dir": dname,
            "dicom_files": sorted(p.name for p in written),
            "mapping": {self.output_key: mapping},
            **self.details(result),
        }

    def details(self, result: StudyOutput) -> dict[str, Any]:
        """Further manifest ``outputs`` entries (what was burnt in, scales)."""
        return {}

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        raise NotImplementedError


@register_writer("dicom-rgb")
class DicomRGBWriter(_DicomWriter):
    """DICOM RGB overlay series (attribution blended over the anatomy), shown by any PACS."""

    settings = (WINDOW,)
    output_key = "dicom_rgb"

    def __init__(self, window: str = "source") -> None:
        self.window = window

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_rgb(
            result.volume, result.display, directory, algorithm=algo, window=self.window
        )

    def details(self, result: StudyOutput) -> dict[str, Any]:
        from medattr.io.windows import resolve_window

        ref = result.volume.source.dicom if result.volume.source is not None else None
        display, origin = resolve_window(
            self.window, getattr(ref, "datasets", []), result.volume.array[0]
        )
        return {
            "dicom_rgb_window": {"center": display.center, "width": display.width, "origin": origin}
        }


@register_writer("dicom-pm")
class DicomParametricMapWriter(_DicomWriter):
    """DICOM Parametric Map of the attribution (scaled for display; the Real World Value
    Mapping gives attribution units back)."""

    settings = (PM_NEGATIVE_MAP,)
    output_key = "dicom_pm"

    def __init__(self, negative_map: bool = True) -> None:
        self.negative_map = bool(negative_map)

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_parametric_map(
            result.volume,
            result.display,
            directory,
            algorithm=algo,
            negative_map=self.negative_map,
        )

    def details(self, result: StudyOutput) -> dict[str, Any]:
        return {"dicom_pm_scale": display_scale(result.display)}


@register_writer("dicom-seg")
class DicomSegWriter(_DicomWriter):
    """DICOM SEG of the strongest positive attribution (--seg-top-percent of the voxels)."""

    settings = (SEG_TOP_PERCENT,)
    output_key = "dicom_seg"

    def __init__(self, top_percent: float = 1.0) -> None:
        self.top_percent = float(top_percent)

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_seg(
            result.volume,
            result.display,
            directory,
            algorithm=algo,
            top_percent=self.top_percent,
            extra_segments=getattr(result, "baseline_masks", None),
        )
