"""Components the ``medattr_explain`` bundle's ``inference.json`` builds by ``_target_``.

Each maps onto one of the ids MONAI's inference workflow (``ConfigWorkflow(...,
workflow_type="infer")``) expects, and all of them run through one
:class:`~medattr.cohort.CohortRunner` and one :class:`~medattr.Explainer`, the code
``medattr explain-cohort`` runs:

============== ========================= ====================================================
bundle id      object                    role
============== ========================= ====================================================
preprocessing  :class:`LoadVolumed`      read each study (NIfTI / DICOM) into a ``Volume``
dataset        ``monai.data.Dataset``    cohort items (:func:`cohort_items`) + preprocessing
network_def    TorchScript module        the classifier (``model.module``)
inferer        :class:`AttributionInferer` baseline + path attribution + inversion to source
postprocessing :class:`StudyWriter`      outputs (NIfTI, PNG, DICOM) + manifest
evaluator      :class:`CohortEvaluator`  the cohort loop: resume, failures, summary, ranks
============== ========================= ====================================================
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Hashable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from monai.inferers import Inferer
from monai.transforms import MapTransform

from medattr.cohort import (
    CohortEntry,
    CohortRunner,
    CohortSummary,
    load_cohort,
    rank_and_world,
)
from medattr.errors import InputError, ModelError
from medattr.explain import ExplainConfig, Explainer, StudyResult, all_settings
from medattr.io import read_study
from medattr.models import LoadedModel, load_model
from medattr.models.loading import asset_sha256
from medattr.registry import parse_flag as flag
from medattr.volume import Volume

__all__ = [
    "AttributionInferer",
    "CohortEvaluator",
    "LoadVolumed",
    "StudyWriter",
    "cohort_items",
    "locate_bundle_root",
]

log = logging.getLogger("medattr.bundle")

_RUNTIME_FIELDS = ("device", "progress", "distributed_paths", "formats")
"""Settings the inferer does not take: the evaluator's device, the writer's formats, and
``split_paths`` for distributed path splitting."""


def locate_bundle_root(default: str = ".") -> str:
    """The bundle directory of the config being run (the parent of its ``configs/``).

    ``python -m monai.bundle run --config_file bundles/x/configs/inference.json`` then finds
    ``bundles/x/models`` from any working directory. Looks for the running
    ``ConfigWorkflow`` (its ``config_root_path``), then for ``--config_file`` on the command
    line; falls back to ``default`` (MONAI's convention: the working directory).
    """
    from monai.bundle import ConfigWorkflow

    for frame_info in inspect.stack(context=0):
        candidate = frame_info.frame.f_locals.get("self")
        if isinstance(candidate, ConfigWorkflow):
            root = Path(candidate.config_root_path)
            return str(root.parent if root.name == "configs" else root)
    argv = sys.argv
    for i, arg in enumerate(argv):
        value = None
        if arg == "--config_file" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--config_file="):
            value = arg.split("=", 1)[1]
        if value:
            first = value.strip("[]'\" ").split(",")[0].strip("'\" ")
            root = Path(first).parent
            return str(root.parent if root.name == "configs" else root)
    return default


def cohort_items(
    datalist: str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    section: str | Sequence[str] = "test",
    *,
    base_dir: str | os.PathLike[str] | None = None,
    study_ids: str = "hash",
    read_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """:func:`~medattr.cohort.load_cohort` as MONAI dataset items (``{"image": ..., ...}``)."""
    entries = load_cohort(
        datalist,
        section=section,
        base_dir=base_dir,
        study_ids=study_ids,
        read_options=read_options,
    )
    return [e.to_dict() for e in entries]


class LoadVolumed(MapTransform):
    """Read the study named by ``data[key]`` (NIfTI file, DICOM directory/files) into a Volume.

    DICOM series are checked (slice order along the normal, gaps, tilt, mixed series) as in
    :func:`medattr.io.read_volume`. Per-item ``read_options`` (from :func:`cohort_items`)
    override the defaults given here. A value that already is a ``Volume`` is kept.

    Parameters
    ----------
    keys
        Keys holding the study paths (usually ``"image"``).
    series_uid, series_description, resample
        Defaults for picking and regularising DICOM series.
    """

    def __init__(
        self,
        keys: str | Sequence[str] = "image",
        series_uid: str | None = None,
        series_description: str | None = None,
        resample: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.defaults: dict[str, Any] = {"resample": bool(resample)}
        if series_uid:
            self.defaults["series_uid"] = series_uid
        if series_description:
            self.defaults["series_description"] = series_description

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        options = {**self.defaults, **dict(d.get("read_options") or {})}
        for key in self.key_iterator(d):
            if not isinstance(d[key], Volume):
                d[key] = read_study(d[key], **options)
        return d


class AttributionInferer(Inferer):
    """The attribution settings; called on a Volume it returns the explained study.

    Parameters are :class:`~medattr.ExplainConfig` settings (``method``, ``baseline``,
    ``n_steps``, ``target``, ``vae``, ``seed``, any registered entry's …), validated here.
    Output formats and their settings belong to :class:`StudyWriter`; the device comes from
    the model. ``baseline`` may also be a ready :class:`~medattr.baselines.Baseline` object
    and ``method`` a path method class (bundle configs build them with ``_target_``).

    Examples
    --------
    >>> inferer = AttributionInferer(method="ig", baseline="blur", n_steps=16)
    >>> inferer.options["n_steps"]
    16
    >>> # result = inferer(volume, load_model("models/model.ts"))  -> StudyResult
    """

    def __init__(self, split_paths: bool = False, **options: Any) -> None:
        super().__init__()
        self.baseline_object = options.pop("baseline", None)
        if isinstance(self.baseline_object, str):
            options["baseline"], self.baseline_object = self.baseline_object, None
        self.method_class = options.pop("method", None)
        if isinstance(self.method_class, str):
            options["method"], self.method_class = self.method_class, None
        allowed = set(all_settings()) - set(_RUNTIME_FIELDS) - set(_writer_settings())
        unknown = set(options) - allowed
        if unknown:
            raise InputError(f"unknown attribution setting(s): {', '.join(sorted(unknown))}")
        ExplainConfig(**options)  # validate now, not at the first study
        self.options = dict(options)
        self.split_paths = flag(split_paths, "split_paths")
        self._cache: tuple[int, Explainer] | None = None

    def explainer(
        self,
        model: LoadedModel | str | os.PathLike[str],
        *,
        device: str | torch.device | None = None,
        formats: Sequence[str] = ("nifti",),
        progress: bool = False,
        **writer_settings: Any,
    ) -> Explainer:
        """An explainer with these settings for ``model`` (splitting path points across ranks
        when ``split_paths``); ``writer_settings`` are the writers' own (``seg_top_percent``)."""
        if device is None:
            device = _model_device(model) if isinstance(model, LoadedModel) else "cpu"
        config = ExplainConfig(
            **self.options,
            **writer_settings,
            device=str(device),
            formats=tuple(formats),
            progress=progress,
            distributed_paths=self.split_paths,
        )
        if self.baseline_object is None:
            _check_assets(config)
        return Explainer(model, config, baseline=self.baseline_object, method=self.method_class)

    def __call__(  # type: ignore[override]
        self, inputs: Volume, network: LoadedModel | str | os.PathLike[str], *args: Any, **kw: Any
    ) -> StudyResult:
        if not isinstance(inputs, Volume):
            raise InputError(
                f"AttributionInferer explains a medattr Volume (from LoadVolumed), got "
                f"{type(inputs).__name__}"
            )
        if self._cache is None or self._cache[0] != id(network):
            self._cache = (id(network), self.explainer(network))
        return self._cache[1].explain(inputs)


class StudyWriter:
    """Which outputs to write for each study, and writing them (atomically, manifest last).

    Parameters
    ----------
    formats
        Any of ``nifti``, ``png``, ``dicom-rgb``, ``dicom-pm``, ``dicom-seg`` (DICOM outputs
        need DICOM input); a comma-separated string is accepted.
    seg_top_percent
        Share of voxels in the DICOM SEG.
    """

    def __init__(self, formats: str | Sequence[str] = ("nifti", "png"), **settings: Any) -> None:
        config = ExplainConfig(formats=formats)  # validate
        self.formats = config.formats
        unknown = set(settings) - set(_writer_settings())
        if unknown:
            raise InputError(f"unknown writer setting(s): {', '.join(sorted(unknown))}")
        self.settings = ExplainConfig(formats=formats, **settings).given
        self.settings.pop("formats", None)

    @property
    def seg_top_percent(self) -> float:
        return float(self.settings.get("seg_top_percent", 1.0))

    def __call__(
        self,
        result: StudyResult,
        out_dir: str | os.PathLike[str],
        *,
        explainer: Explainer,
        extra_manifest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if tuple(result.config.formats) != self.formats:
            raise InputError(
                f"the study was explained for formats {result.config.formats}, not "
                f"{self.formats}; build the explainer with this writer's formats"
            )
        return explainer.write(result, out_dir, extra_manifest=extra_manifest)


class CohortEvaluator:
    """The bundle's ``evaluator``: explain every item of ``dataset`` into ``output_dir``.

    Parameters
    ----------
    model
        The classifier (a loaded model, or a path / ``builtin:NAME``).
    dataset
        A MONAI ``Dataset`` over :func:`cohort_items`, with :class:`LoadVolumed` as transform.
    inferer, postprocessing
        Attribution settings and output writer.
    output_dir
        Where study folders and ``cohort_summary.{json,csv}`` go.
    device
        Device of the computation (default: the model's).
    sampler
        Under ``torchrun``: a ``DistributedSampler`` over ``dataset`` choosing this rank's
        studies (the multi-GPU overlay sets it). Ignored when the inferer splits path points.
    progress
        Progress bar with ETA on stderr (rank 0).
    prefetch
        Studies read and prepared ahead while one is attributed (0: one at a time).
    """

    def __init__(
        self,
        model: LoadedModel | str | os.PathLike[str],
        dataset: Any,
        inferer: AttributionInferer,
        postprocessing: StudyWriter,
        output_dir: str | os.PathLike[str],
        device: str | torch.device | None = None,
        sampler: Any = None,
        progress: bool | None = True,
        prefetch: int = 1,
    ) -> None:
        self.model = model if isinstance(model, LoadedModel) else load_model(model, device or "cpu")
        self.dataset = dataset
        self.inferer = inferer
        self.postprocessing = postprocessing
        self.output_dir = Path(output_dir)
        self.device = device
        self.sampler = sampler
        self.progress = None if progress is None else flag(progress, "progress")
        self.prefetch = int(prefetch)

    def run(self) -> CohortSummary:
        """Run the cohort; returns its summary (also written to ``output_dir``)."""
        items = getattr(self.dataset, "data", None)
        if items is None:
            raise InputError("the evaluator's dataset has no .data (use monai.data.Dataset)")
        entries = [CohortEntry.from_dict(d) for d in items]
        explainer = self.inferer.explainer(
            self.model,
            device=self.device,
            formats=self.postprocessing.formats,
            **self.postprocessing.settings,
        )
        _, world = rank_and_world()
        indices = None
        if self.sampler is not None and not self.inferer.split_paths and world > 1:
            indices = [int(i) for i in self.sampler]
        runner = CohortRunner(
            explainer,
            self.output_dir,
            progress=self.progress,
            prefetch=self.prefetch,
            reader=self._read,
            writer=partial(self.postprocessing, explainer=explainer),
        )
        summary = runner(entries, indices)
        c = summary.counts
        if summary.json_path is not None:
            log.info(
                "%d done, %d skipped, %d failed; summary in %s",
                c["done"],
                c["skipped"],
                c["failed"],
                summary.json_path,
            )
        return summary

    def _read(self, entry: CohortEntry) -> Volume:
        try:
            item = self.dataset[entry.index]
        except RuntimeError as exc:  # MONAI wraps a failing transform's error
            cause: BaseException | None = exc
            while isinstance(cause, RuntimeError) and cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, Exception) and cause is not exc:
                raise cause from None
            raise
        volume = item["image"] if isinstance(item, Mapping) else item
        if not isinstance(volume, Volume):
            raise InputError(
                f"the dataset's transform must produce a Volume under 'image' (LoadVolumed), "
                f"got {type(volume).__name__}"
            )
        return volume


def _check_assets(config: ExplainConfig) -> None:
    """Refuse, before any model is loaded, a run whose baseline names a file that is missing."""
    from medattr.baselines import BaselineSetup
    from medattr.baselines import get as get_baseline

    cls = get_baseline(config.baseline)
    try:
        assets = cls.assets(config.settings_for(cls), BaselineSetup())
    except InputError:
        return  # needs the model's paired default: checked when the baseline is built
    for label, path in assets.items():
        if not str(path).startswith("builtin:") and asset_sha256(path) is None:
            what = cls.asset_labels.get(label, f"its {label} file")
            raise ModelError(f"baseline {config.baseline!r} needs {what}, which is missing", path)


def _writer_settings() -> dict[str, Any]:
    from medattr.io.writers import WRITERS

    return WRITERS.settings()


def _model_device(model: LoadedModel) -> torch.device:
    for p in model.module.parameters():
        return p.device
    return torch.device("cpu")
