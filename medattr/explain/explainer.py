"""One study end to end: read, preprocess, baseline, attribute, map back (:class:`Explainer`).

What the CLI, the MONAI bundle and the cohort runner call; it can also be embedded in an
inference pipeline::

    explainer = Explainer("builtin:phantom", ExplainConfig(method="ig", baseline="blur"))
    result = explainer.explain(read_volume("study.nii.gz"))
    manifest = explainer.write(result, "out/")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import torch

from medattr import baselines
from medattr._baseline import Baseline, BaselineContext, BaselineSetup
from medattr._fs import check_free_space, probe_output_dir
from medattr._torch import evaluating, module_device
from medattr.attribution import PathAttribution
from medattr.errors import InputError, ModelError, ResourceError
from medattr.explain.checks import (
    check_path_point,
    check_prepared,
    check_volume,
    describe_model_failure,
    output_bytes,
)
from medattr.explain.config import ExplainConfig
from medattr.explain.network import (
    MIN_USEFUL_AUC,
    as_loaded,
    network_for,
    quality_warning,
)
from medattr.explain.outputs import written_paths
from medattr.explain.result import StudyResult
from medattr.failures import is_out_of_memory
from medattr.io import read_study
from medattr.io.channels import channel_attributions
from medattr.models import LoadedModel, ModelSpec
from medattr.models.contract import OutputContract
from medattr.preprocess import Preprocessed, Preprocessor
from medattr.preprocess_transforms import TransformPreprocessor
from medattr.targets import (
    BoundTarget,
    ClassTarget,
    SegmentationTarget,
    Target,
    bind_target,
    class_probabilities,
)
from medattr.volume import Volume

log = logging.getLogger("medattr")

__all__ = ["MIN_USEFUL_AUC", "Explainer", "StudyResult"]


class Explainer:
    """Explain studies with one model and one configuration.

    Parameters
    ----------
    model
        A :class:`~medattr.models.LoadedModel`, anything :func:`~medattr.models.load_model`
        accepts (TorchScript path, bundle directory, ``"builtin:phantom"``), or a
        ``torch.nn.Module``.
    config
        The run settings (default :class:`ExplainConfig()`).
    spec
        Overrides the model's own :class:`ModelSpec` (an object or a JSON file).
    baseline
        A ready :class:`~medattr.baselines.Baseline` object, used instead of
        ``config.baseline`` (bundle configs build one with ``_target_``).
    method
        A ready path method (a :class:`~medattr.attribution.PathAttribution` instance, or a
        class built here for the model), used instead of ``config.method``.
    """

    def __init__(
        self,
        model: LoadedModel | str | os.PathLike[str] | torch.nn.Module,
        config: ExplainConfig | None = None,
        spec: ModelSpec | str | os.PathLike[str] | None = None,
        *,
        baseline: Baseline | None = None,
        method: PathAttribution | type[PathAttribution] | None = None,
    ) -> None:
        self.config = config or ExplainConfig()
        if baseline is not None and not isinstance(baseline, Baseline):
            raise InputError(f"baseline must be a Baseline object, got {type(baseline).__name__}")
        if method is not None and not (
            isinstance(method, PathAttribution)
            or (isinstance(method, type) and issubclass(method, PathAttribution))
        ):
            raise InputError(f"method must be a path method, got {type(method).__name__}")
        t0 = time.perf_counter()
        device = self.config.device
        if isinstance(model, torch.nn.Module) and "device" not in self.config.given:
            device = str(module_device(model))  # a module in memory stays where it is
        self.model = as_loaded(model, device, spec)
        self.model_seconds = time.perf_counter() - t0
        self.network = network_for(self.model, self.config)
        self.preprocessor = (
            TransformPreprocessor(self.model.spec, self.model.preprocessing, self.model.image_key)
            if self.model.preprocessing is not None
            else Preprocessor(self.model.spec)
        )
        self.device = torch.device(device)
        self.contract: OutputContract | None = None
        self.model_warning = quality_warning(self.model.spec)
        if self.model_warning:
            log.warning("%s", self.model_warning)
        self._baseline: Baseline | None = baseline
        self._given_baseline = baseline
        self._method_arg = method
        self._method: PathAttribution | None = (
            method if isinstance(method, PathAttribution) else None
        )

    # ----------------------------------------------------------------- pieces
    def target(self) -> Target:
        """What is explained, from the configuration and the model's output contract (known
        once :meth:`check_model` has seen an output)."""
        c, spec = self.config, self.model.spec
        t = c.target if c.target is not None else spec.default_target
        contract = self.contract
        kind = contract.kind if contract is not None else None
        if kind == "segmentation" or (kind is None and spec.task == "segmentation"):
            if not isinstance(t, int):
                labels = list(contract.class_names) if contract is not None else []
                listing = ", ".join(f"{i}: {n}" for i, n in enumerate(labels))
                raise InputError(
                    "a segmentation model needs the label to explain: --target LABEL"
                    + (f" (output channels {listing})" if listing else "")
                )
            return SegmentationTarget(t, activation=c.target_activation)
        names = list(contract.class_names) if contract is not None else spec.class_names or []
        if kind == "binary":
            if c.target_activation == "softmax":
                raise InputError(
                    "activation 'softmax' over a single logit is the constant 1 (its gradient "
                    "is zero everywhere); use --activation sigmoid for the probability, or logit"
                )
            if t == 1 and spec.class_names is not None and len(spec.class_names) == 2:
                t = 0  # the positive class of (negative, positive) names is the one logit
            if isinstance(t, int) and t != 0:
                raise InputError(
                    f"target {t} is out of range: this model has one output (the logit of "
                    f"{names[0]!r}); use --target 0, or leave it out"
                )
            return ClassTarget(0 if t == "predicted" else t, activation=c.target_activation)
        if isinstance(t, int) and names and not 0 <= t < len(names):
            raise InputError(
                f"target {t} is out of range for a model with {len(names)} classes "
                f"({', '.join(names)})"
            )
        return ClassTarget(t, activation=c.target_activation)

    def disease_class(self) -> int:
        """The class guided counterfactuals move away from: the target, else class 1."""
        t = self.config.target if self.config.target is not None else self.model.spec.default_target
        return t if isinstance(t, int) else 1

    def baseline_setup(self, volume: Volume | None = None) -> BaselineSetup:
        """What building a registered baseline needs, for ``volume`` (or none)."""
        return BaselineSetup(
            model=self.model,
            preprocessor=self.preprocessor,
            device=self.device,
            volume=volume,
            disease_class=self.disease_class(),
            seed=self.config.seed,
            argument=baselines.parse_name(self.config.baseline)[1],
        )

    def make_baseline(self, volume: Volume | None = None) -> Baseline:
        """The baseline for ``volume``: built once per explainer, or per study for baselines
        that depend on it (``per_study``)."""
        if self._baseline is not None:
            return self._baseline
        cls = baselines.get(self.config.baseline)
        made = cls.from_settings(self.config.settings_for(cls), self.baseline_setup(volume))
        if not getattr(cls, "per_study", False):
            self._baseline = made
        return made

    def method(self) -> PathAttribution:
        """The path method, built once for the model with the engine settings."""
        if self._method is None:
            c = self.config
            engine: dict[str, Any] = {
                "internal_batch_size": c.internal_batch_size,
                "amp": c.amp,
                "memory_budget": c.memory_budget,
                "progress": c.progress,
            }
            if c.distributed_paths and _world_size() > 1:
                engine["distributed"] = True
            cls = self._method_arg if isinstance(self._method_arg, type) else c.method_class()
            self._method = cls.from_settings(self.network, c.settings_for(cls), **engine)
        return self._method

    def assets(self) -> dict[str, str]:
        """Files the outputs depend on besides the model (weights of generative baselines …),
        ``{label: path}``, as the used entries declare them."""
        out: dict[str, str] = {}
        setup = self.baseline_setup()
        for cls in self.config.entry_classes():
            declared = getattr(cls, "assets", None)
            if declared is None:
                continue
            if self._given_baseline is not None and isinstance(self._given_baseline, cls):
                continue  # a ready object given by the caller: its own business
            try:
                out.update(declared(self.config.settings_for(cls), setup))
            except InputError:
                continue  # the entry reports it when it is used
        return out

    def check_formats(self, volume: Volume) -> None:
        """DICOM outputs need a DICOM source (its study, series and frame of reference)."""
        from medattr.io import get_writer

        wanted = [f for f in self.config.formats if get_writer(f).needs_dicom]
        if wanted and (volume.source is None or volume.source.format != "dicom"):
            raise InputError(
                f"output format(s) {', '.join(wanted)} need a DICOM input series; this input is "
                f"{volume.source.format if volume.source else 'in memory'} (use nifti,png)",
                volume.source.path if volume.source else None,
            )

    def check_model(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model once on the prepared input and learn its output contract; a failure
        is the model's or the input's."""
        try:
            with torch.no_grad():
                out = self.network(x)
        except ModelError:
            raise
        except Exception as exc:  # torch.jit.Error is not a RuntimeError
            if is_out_of_memory(exc):
                raise ResourceError(
                    f"the model does not fit in the memory free on {x.device} for an input of "
                    f"shape {tuple(x.shape)}"
                ) from exc
            raise ModelError(
                f"the model fails on the prepared input of shape {tuple(x.shape)}: "
                f"{describe_model_failure(exc)}",
                self.model.path,
            ) from exc
        self.contract = OutputContract.infer(out, self.model.spec, self.model.path)
        if not bool(torch.isfinite(out).all()):
            raise ModelError("the model output contains NaN or infinite values", self.model.path)
        return out

    def _baseline_check(self, b: torch.Tensor, target: Target) -> dict[str, Any]:
        """Class probabilities at the baseline; flag one still assigned the explained class."""
        if self.contract is None or self.contract.kind == "segmentation":
            return {}
        with torch.no_grad():
            out = self.network(b).float()
        probs = class_probabilities(out)[0]
        binary = self.contract.kind == "binary"
        predicted = int(probs.argmax()) if not binary else int(probs[0] > 0.5)
        t = getattr(target, "index", None)
        info: dict[str, Any] = {
            "class_probabilities": [float(v) for v in probs],
            "predicted_class": predicted,
        }
        if isinstance(t, int):
            # a single logit explains the positive class: "still positive" is p > 0.5
            still = predicted == 1 if binary else predicted == t
            info["still_target_class"] = still
            if still:
                name = self.contract.class_names[t]
                info["warning"] = (
                    f"the baseline ({self.config.baseline}) is still classified as {name!r} "
                    f"(p = {float(probs[t]):.2f}): it does not represent the absence of what is "
                    "being explained"
                )
                log.warning("%s", info["warning"])
        return info

    # --------------------------------------------------------------------- run
    def prepare(self, volume: Volume) -> Preprocessed:
        """The study on the model grid (what :meth:`explain` starts from; a cohort prepares
        the next study while the current one is attributed). The volume is checked first."""
        check_volume(volume)
        return self.preprocessor(volume)

    def validate(self, volume: Volume, pre: Preprocessed, x: torch.Tensor) -> BoundTarget:
        """Everything checked before the baseline and the attribution: the prepared input, the
        model's output on it (:meth:`check_model`, which learns the output contract), the
        target, and one forward and backward pass on two path points that must fit in memory
        (see :mod:`medattr.explain.checks`); returns the target bound at the input."""
        check_prepared(pre, volume, self.model.spec)
        method = self.method()
        out_x = self.check_model(x)
        _, bound = bind_target(self.target(), out_x)
        check_path_point(method, x, bound, self.model.path)
        return bound

    def explain(self, volume: Volume, prepared: Preprocessed | None = None) -> StudyResult:
        """Compute the attribution of one study (nothing is written).

        ``prepared`` is the study already on the model grid (:meth:`prepare`). The volume, the
        prepared input, the model and the memory one path point needs are checked
        (:meth:`validate`) before the baseline is made. The model runs in eval mode with its
        parameters frozen for the call; a module given by the caller gets its train/eval mode
        and ``requires_grad`` flags back afterwards.
        """
        with evaluating(self.model.module):
            return self._explain(volume, prepared)

    def _explain(self, volume: Volume, prepared: Preprocessed | None) -> StudyResult:
        c = self.config
        timings: dict[str, float] = {}
        t = time.perf_counter()
        pre = prepared if prepared is not None else self.prepare(volume)
        x = pre.image.to(self.device)
        valid = pre.valid.to(self.device)
        timings["preprocess"] = time.perf_counter() - t

        t = time.perf_counter()
        bound = self.validate(volume, pre, x)
        timings["checks"] = time.perf_counter() - t

        t = time.perf_counter()
        method = self.method()
        target = self.target()
        baseline_info: dict[str, Any] = {}
        b: torch.Tensor | None = None
        made_masks: dict[str, torch.Tensor] = {}
        study_baselines: Any
        if method.baseline_kind == "single":
            baseline = self.make_baseline(volume)
            res = baseline.generate(
                x,
                BaselineContext(spacing=pre.spacing, forward_func=self.network, target=bound),
            )
            b = torch.where(valid, res.baselines, x)
            made_masks = res.masks
            baseline_info = {**baseline.describe(), **res.info, **self._baseline_check(b, target)}
            study_baselines = b
        else:
            study_baselines = baselines.reference_bank(
                c.references, self.preprocessor, c.seed, self.device
            )
            baseline_info = {
                "name": "references",
                "n_references": int(study_baselines.shape[0]),
                "sources": list(c.references),
            }
        timings["baseline"] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            exp = method.explain_study(x, study_baselines, target, c.values())
        except FloatingPointError as exc:
            hint = "; try --amp bf16" if c.amp == "fp16" else "; try another baseline"
            raise ModelError(
                "the model's gradients are NaN or infinite at points along the path from the "
                f"baseline to the input (it is not differentiable there){hint}",
                self.model.path,
            ) from exc
        timings["attribution"] = time.perf_counter() - t

        t = time.perf_counter()
        attr_model = exp.attributions[0].detach().cpu()
        per_channel = self.preprocessor.attribution_to_source(attr_model, pre)
        attr_source = per_channel.sum(0)
        channels = channel_attributions(volume, per_channel)
        display = None
        if c.display_mapping != "adjoint":
            display = self.preprocessor.attribution_to_source(
                attr_model, pre, mapping=c.display_mapping
            ).sum(0)
        baseline_source = None
        if b is not None:
            baseline_source = self.preprocessor.invert(b[0].cpu(), pre)[0]
            baseline_info["distance_to_input"] = _distances(x, b, valid)
        masks_source = {
            name: self.preprocessor.invert(m[0].float().cpu(), pre)[0] > 0.5
            for name, m in made_masks.items()
        }
        anatomy = self.preprocessor.intensity(volume.array[0]).numpy()
        timings["invert"] = time.perf_counter() - t
        baseline_info["f_baseline"] = float(exp.f_baseline[0])
        return StudyResult(
            volume,
            pre,
            exp,
            attr_source,
            baseline_source,
            anatomy,
            c,
            baseline_info,
            timings,
            channels,
            display,
            masks_source,
        )

    def write(
        self,
        result: StudyResult,
        out_dir: str | os.PathLike[str],
        *,
        extra_manifest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the outputs of one study into ``out_dir`` (atomically) and return the manifest."""
        from medattr.explain.outputs import write_outputs

        return write_outputs(self, result, out_dir, extra_manifest=extra_manifest)

    def manifest(self, result: StudyResult, outputs: dict[str, Any]) -> dict[str, Any]:
        """The manifest of one study (see :mod:`medattr.explain.manifest`)."""
        from medattr.explain.manifest import build_manifest

        return build_manifest(self, result, outputs)

    def run(
        self,
        input_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        **read_options: Any,
    ) -> dict[str, Any]:
        """Read, explain and write one study; returns the manifest.

        ``input_path`` is a NIfTI file or a DICOM series, or one such path per channel of a
        multi-channel study (see :func:`medattr.io.read_study`). The output directory is
        probed (it can be created and written) before the input is read, and its free space
        checked before any work; the final paths are logged.
        """
        probe_output_dir(out_dir)
        t = time.perf_counter()
        volume = read_study(input_path, **read_options)
        self.check_formats(volume)
        check_free_space(out_dir, output_bytes(volume, self.config.formats))
        load = time.perf_counter() - t
        result = self.explain(volume)
        result.timings = {"read": load, **result.timings}
        manifest = self.write(result, out_dir)
        for name in written_paths(manifest):
            log.info("wrote %s", os.path.join(out_dir, name))
        return manifest


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _distances(x: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    d = (x - b)[valid.expand_as(x)].double()
    return {
        "mean_abs": float(d.abs().mean()),
        "rms": float(d.pow(2).mean().sqrt()),
        "max_abs": float(d.abs().max()) if d.numel() else 0.0,
    }
