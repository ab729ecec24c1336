"""Explain the DICOM series an application selected, writing DICOM outputs per series.

:class:`SeriesExplainer` is what :class:`~medattr.deploy.MedattrOperator` runs in its
``compute``; it does not need the MONAI Deploy App SDK, so other orchestrators (a DICOM router,
a workflow engine) can call it with the same selector objects or with :class:`SeriesInput`
built by hand.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medattr.deploy.series import SeriesInput, selected_series_inputs, series_files
from medattr.errors import InputError
from medattr.explain import ExplainConfig, Explainer, all_settings
from medattr.models import LoadedModel
from medattr.phi import redact

__all__ = ["DEFAULT_FORMATS", "ExplainedSeries", "SeriesExplainer", "resolve_device"]

log = logging.getLogger("medattr.deploy")

#: What a DICOM application writes by default: the three DICOM derived series.
DEFAULT_FORMATS = ("dicom-rgb", "dicom-pm", "dicom-seg")
ON_ERROR = ("raise", "skip")


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when CUDA is available, else ``"cpu"``; others pass."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass
class ExplainedSeries:
    """What happened to one selected series.

    Attributes
    ----------
    selection_name, series_instance_uid
        Which series (see :class:`SeriesInput`).
    output_dir
        The folder its outputs were written to, or ``None`` if it was skipped.
    manifest
        The run manifest (as written to ``output_dir/manifest.json``), or ``None``.
    error
        Why the series was skipped (``on_error="skip"``), else ``None``.
    """

    selection_name: str
    series_instance_uid: str
    output_dir: Path | None = None
    manifest: dict[str, Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def dicom_files(self) -> list[Path]:
        """Paths of the DICOM files written (RGB, Parametric Map, SEG)."""
        if self.manifest is None or self.output_dir is None:
            return []
        outputs = self.manifest.get("outputs", {})
        if "dicom_dir" not in outputs:
            return []
        d = self.output_dir / outputs["dicom_dir"]
        return [d / name for name in outputs.get("dicom_files", [])]


class SeriesExplainer:
    """Explain selected DICOM series with one model; one output folder per series.

    Parameters
    ----------
    model
        A :class:`~medattr.models.LoadedModel`, a TorchScript file, a MONAI bundle directory or
        ``"builtin:NAME"``; loaded once, here.
    output_folder
        Where the per-series folders go (the application's output folder).
    method, baseline, n_steps
        As in :class:`~medattr.ExplainConfig`.
    formats
        Outputs per series; by default the DICOM RGB overlay, Parametric Map and SEG, written as
        new series of the source study. ``nifti`` and ``png`` may be added. A
        comma-separated string is accepted too.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    options, settings
        Any other :class:`~medattr.ExplainConfig` setting (``target``, ``blur_sigma_mm``,
        ``seg_top_percent``, ...), as a mapping or as keywords.
    resample
        Interpolate irregular series (gaps, tilt) instead of refusing them.
    on_error
        ``"raise"`` (default): a series medattr cannot read or explain stops the run.
        ``"skip"``: it is logged and reported in the result, and the others go on. Only input
        problems (:class:`~medattr.errors.InputError`) are skipped, never internal errors.
    require_series
        Raise if the selector chose no series (default), instead of doing nothing.

    Raises
    ------
    InputError
        For an unknown setting or a model that cannot be loaded (before any series is read).

    Examples
    --------
    >>> explainer = SeriesExplainer("model.ts", "output/", n_steps=16)  # doctest: +SKIP
    >>> results = explainer(study_selected_series_list)  # doctest: +SKIP
    >>> results[0].output_dir, results[0].manifest["convergence_delta"]  # doctest: +SKIP
    (PosixPath('output/CT_series3'), 0.0012)
    """

    def __init__(
        self,
        model: LoadedModel | str | os.PathLike[str],
        output_folder: str | os.PathLike[str],
        *,
        method: str = "ig",
        baseline: str = "blur",
        n_steps: int = 32,
        formats: Sequence[str] = DEFAULT_FORMATS,
        device: str = "auto",
        options: Mapping[str, Any] | None = None,
        resample: bool = False,
        on_error: str = "raise",
        require_series: bool = True,
        **settings: Any,
    ) -> None:
        if on_error not in ON_ERROR:
            raise InputError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}")
        if isinstance(formats, str):
            formats = [f.strip() for f in formats.split(",") if f.strip()]
        extra = dict(options or {})
        clash = sorted(set(extra) & {"method", "baseline", "n_steps", "formats", "device"})
        if clash:
            raise InputError(f"give {', '.join(clash)} as argument(s), not inside options")
        twice = sorted(set(extra) & set(settings))
        if twice:
            raise InputError(f"{', '.join(twice)} given both as argument(s) and inside options")
        extra.update(settings)
        known = set(all_settings())
        unknown = sorted(set(extra) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)}; ExplainConfig settings are "
                f"{', '.join(sorted(known))}"
            )
        self.config = ExplainConfig(
            method=method,
            baseline=baseline,
            n_steps=n_steps,
            formats=tuple(formats),
            device=resolve_device(device),
            **extra,
        )
        self.output_folder = Path(output_folder)
        self.resample = bool(resample)
        self.on_error = on_error
        self.require_series = bool(require_series)
        self.explainer = Explainer(model, self.config)

    def __call__(self, study_selected_series_list: Any) -> list[ExplainedSeries]:
        """Explain every series in the selector's output; see :func:`selected_series_inputs`."""
        inputs = selected_series_inputs(study_selected_series_list)
        if not inputs and self.require_series:
            raise InputError(
                "the series selector chose no series to explain; check the selection rules "
                "against the input studies (or set require_series=False)"
            )
        used: set[str] = set()
        return [self.explain_series(s, used) for s in inputs]

    def explain_series(
        self, series: SeriesInput, used_names: set[str] | None = None
    ) -> ExplainedSeries:
        """Read, explain and write one series into its own folder under ``output_folder``."""
        used = used_names if used_names is not None else set()
        t0 = time.perf_counter()
        try:
            with series_files(series) as paths:
                if not paths:
                    raise InputError(f"selected series {series.series_instance_uid} is empty")
                volume = self._read(paths, series)
            self.explainer.check_formats(volume)
            result = self.explainer.explain(volume)
            result.timings = {"read": time.perf_counter() - t0, **result.timings}
        except InputError as exc:
            if self.on_error == "raise":
                raise
            message = redact(str(exc))  # the host's log handlers do not redact
            log.warning(
                "series %s (%s) skipped: %s",
                series.selection_name,
                series.series_instance_uid,
                message,
            )
            return ExplainedSeries(series.selection_name, series.series_instance_uid, error=message)
        name = _unique_name(volume.name, series.series_instance_uid, used)
        out_dir = self.output_folder / name
        manifest = self.explainer.write(
            result,
            out_dir,
            extra_manifest={
                "selection": {
                    "name": series.selection_name,
                    "series_instance_uid": series.series_instance_uid,
                    "study_instance_uid": series.study_instance_uid,
                    "modality": series.modality,
                    "n_instances": series.n_instances,
                }
            },
        )
        log.info(
            "series %s (%s): %s, f(x)=%.4g, f(x')=%.4g, delta=%+.2e -> %s",
            series.selection_name,
            series.series_instance_uid,
            manifest["method"]["implementation"],
            manifest["f_input"],
            manifest["f_baseline"],
            manifest["convergence_delta"],
            out_dir,
        )
        return ExplainedSeries(series.selection_name, series.series_instance_uid, out_dir, manifest)

    def _read(self, paths: list[Path], series: SeriesInput) -> Any:
        from medattr.io import read_volume

        return read_volume(paths, series_uid=series.series_instance_uid, resample=self.resample)


def _unique_name(name: str, series_uid: str, used: set[str]) -> str:
    """``name``, or ``name`` plus the tail of the SeriesInstanceUID if already taken."""
    candidate = name
    if candidate in used:
        digits = re.sub(r"[^0-9]", "", series_uid)[-8:] or str(len(used))
        candidate = f"{name}_{digits}"
        k = 2
        while candidate in used:
            candidate = f"{name}_{digits}_{k}"
            k += 1
    used.add(candidate)
    return candidate
