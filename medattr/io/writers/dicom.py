"""The DICOM writers: new series in the source study (``dicom-rgb``, ``dicom-pm``,
``dicom-seg``), all into ``<name>_dicom/`` beside the other outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medattr.io.dicom_derived import AlgorithmInfo
from medattr.io.dicom_pm import write_dicom_parametric_map
from medattr.io.dicom_sc import write_dicom_rgb
from medattr.io.dicom_seg import write_dicom_seg
from medattr.io.writers import Stage, StudyOutput, Writer, register_writer
from medattr.registry import Setting

__all__ = ["DicomParametricMapWriter", "DicomRGBWriter", "DicomSegWriter", "algorithm_info"]

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

    def write(self, result: StudyOutput, stage: Stage) -> dict[str, Any]:
        dname = f"{result.volume.name}_dicom"
        directory = stage(dname)
        directory.mkdir(exist_ok=True)
        written = self.series(result, directory, algorithm_info(result))
        return {"dicom_dir": dname, "dicom_files": sorted(p.name for p in written)}

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        raise NotImplementedError


@register_writer("dicom-rgb")
class DicomRGBWriter(_DicomWriter):
    """DICOM RGB overlay series (attribution blended over the anatomy), shown by any PACS."""

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_rgb(result.volume, result.attribution, directory, algorithm=algo)


@register_writer("dicom-pm")
class DicomParametricMapWriter(_DicomWriter):
    """DICOM Parametric Map of the attribution (float values, source geometry)."""

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_parametric_map(
            result.volume, result.attribution, directory, algorithm=algo
        )


@register_writer("dicom-seg")
class DicomSegWriter(_DicomWriter):
    """DICOM SEG of the strongest positive attribution (--seg-top-percent of the voxels)."""

    settings = (SEG_TOP_PERCENT,)

    def __init__(self, top_percent: float = 1.0) -> None:
        self.top_percent = float(top_percent)

    def series(self, result: StudyOutput, directory: Path, algo: AlgorithmInfo) -> list[Path]:
        return write_dicom_seg(
            result.volume,
            result.attribution,
            directory,
            algorithm=algo,
            top_percent=self.top_percent,
        )
