"""One study end to end: read, preprocess, baseline, attribute, map back, write.

:class:`Explainer` is what the CLI, the MONAI bundle and the cohort runner call; it can also be
embedded in an inference pipeline::

    explainer = Explainer("builtin:phantom", ExplainConfig(method="ig", baseline="blur"))
    result = explainer.explain(read_volume("study.nii.gz"))
    manifest = explainer.write(result, "out/")
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medattr._version import __version__
from medattr.attribution import (
    ExpectedGradients,
    Explanation,
    IntegratedGradients,
    SmoothGrad,
    SplitIntegratedGradients,
)
from medattr.baselines import (
    Baseline,
    ConstantBaseline,
    GaussianBlurBaseline,
    GaussianNoiseBaseline,
    TensorBaseline,
    UniformNoiseBaseline,
    ZeroBaseline,
)
from medattr.errors import InputError, ModelError, VolumeError
from medattr.io import read_nifti, staged_directory, write_nifti
from medattr.models import LoadedModel, ModelSpec, load_model
from medattr.preprocess import Preprocessed, Preprocessor
from medattr.targets import ClassTarget, SegmentationTarget, Target
from medattr.volume import Volume

log = logging.getLogger("medattr")

__all__ = [
    "BASELINES",
    "DICOM_FORMATS",
    "METHODS",
    "OUTPUT_FORMATS",
    "ExplainConfig",
    "Explainer",
    "StudyResult",
    "read_input",
]

METHODS = ("ig", "smoothgrad", "split-ig", "expected-gradients")
BASELINES = (
    "zero",
    "constant",
    "blur",
    "noise-uniform",
    "noise-gaussian",
    "vae-recon",
    "vae-guided",
    "vae-guided-residual",
)
COUNTERFACTUAL_BASELINES = ("vae-recon", "vae-guided", "vae-guided-residual")
OUTPUT_FORMATS = ("nifti", "png", "dicom-rgb", "dicom-pm", "dicom-seg")
DICOM_FORMATS = ("dicom-rgb", "dicom-pm", "dicom-seg")
MANIFEST_VERSION = 1


@dataclass
class ExplainConfig:
    """Settings of one explanation run (all JSON-able; the CLI and bundle configs map onto it).

    Attributes
    ----------
    method
        ``"ig"``, ``"smoothgrad"`` (over IG, or over plain gradients with
        ``smoothgrad_base="gradient"``), ``"split-ig"`` or ``"expected-gradients"``.
    baseline
        ``"zero"``, ``"constant"``, ``"blur"``, ``"noise-uniform"``, ``"noise-gaussian"`` or
        ``"file:PATH"`` (a volume on the input's grid).
    target
        Class index, ``"predicted"``, or ``None`` for the model's default.
    target_activation
        ``"logit"``, ``"softmax"`` or ``"sigmoid"``.
    n_steps, quadrature
        Path points and rule.
    device, amp, internal_batch_size, memory_budget, progress
        Engine settings.
    blur_sigma_mm
        Sigma of the blur baseline.
    baseline_value
        For ``constant``: a value in source units (e.g. -1000 for air in HU), or None for each
        input's minimum.
    noise_sigma_fraction
        Sigma of the Gaussian-noise baseline as a fraction of the input range.
    nt_samples, noise_level, nt_type, smoothgrad_base
        SmoothGrad: draws, sigma as a fraction of each input's range, aggregation, base method.
    ratio
        Split IG saturation ratio.
    references, eg_samples
        Expected Gradients: reference volumes (paths, or ``"builtin:phantom"`` /
        ``"builtin:mni"`` for generated healthy subjects) and draws per input.
    vae
        Counterfactual baselines: the healthy-only VAE (TorchScript path or bundle directory);
        default: the one named in the model's spec (``paired_vae``).
    cf_threshold, cf_steps
        Guided counterfactuals: disease probability that counts as healthy; step bound.
    distributed_paths
        Under an initialised ``torch.distributed`` process group (e.g. ``torchrun``), split each
        study's path points across the ranks and all-reduce the sums (one large volume on
        several GPUs). Ignored without a process group; refused for Split IG.
    seed
        For every random choice.
    formats
        Outputs to write: ``nifti`` (attribution and baseline on the source grid), ``png``
        (montage and input/baseline/difference/attribution panel), and for DICOM input
        ``dicom-rgb`` (RGB overlay series), ``dicom-pm`` (float Parametric Map) and
        ``dicom-seg`` (SEG of the top ``seg_top_percent`` % voxels), written as new series of
        the source study into ``<name>_dicom/``.
    seg_top_percent
        Share of voxels (strongest positive attribution) in the DICOM SEG.
    """

    method: str = "ig"
    baseline: str = "blur"
    target: int | str | None = None
    target_activation: str = "logit"
    n_steps: int = 32
    quadrature: str = "gausslegendre"
    device: str = "cpu"
    amp: str | None = None
    internal_batch_size: int | str = "auto"
    memory_budget: int | str | None = None
    progress: bool | None = None
    blur_sigma_mm: float = 10.0
    baseline_value: float | None = None
    noise_sigma_fraction: float = 0.2
    nt_samples: int = 8
    noise_level: float = 0.1
    nt_type: str = "smoothgrad"
    smoothgrad_base: str = "integrated_gradients"
    ratio: float = 0.9
    references: list[str] = field(default_factory=list)
    eg_samples: int = 32
    vae: str | None = None
    cf_threshold: float = 0.2
    cf_steps: int = 150
    distributed_paths: bool = False
    seed: int = 0
    formats: tuple[str, ...] = ("nifti", "png")
    seg_top_percent: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if not (self.baseline in BASELINES or self.baseline.startswith("file:")):
            choices = ", ".join((*BASELINES, "file:PATH"))
            raise InputError(f"baseline must be one of {choices}; got {self.baseline!r}")
        if isinstance(self.n_steps, bool) or not isinstance(self.n_steps, int) or self.n_steps < 1:
            raise InputError(f"n_steps must be a positive integer, got {self.n_steps!r}")
        if self.distributed_paths and self.method == "split-ig":
            raise InputError(
                "split-ig cannot split its path points across processes (it needs the whole "
                "path in order); run it without distributed path splitting"
            )
        if self.method == "expected-gradients" and not self.references:
            raise InputError("expected-gradients needs reference volumes (references=[...])")
        self.formats = tuple(self.formats)
        unknown = [f for f in self.formats if f not in OUTPUT_FORMATS]
        if unknown:
            raise InputError(
                f"unknown output format(s) {', '.join(unknown)}; choose from "
                f"{', '.join(OUTPUT_FORMATS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["formats"] = list(self.formats)
        return d


def read_input(path: str | os.PathLike[str], **options: Any) -> Volume:
    """Read a study (NIfTI file, or DICOM directory/file when DICOM support is installed)."""
    import medattr.io as mio

    reader = getattr(mio, "read_volume", None)
    if reader is not None:
        return reader(path, **options)
    return read_nifti(path)


@dataclass
class StudyResult:
    """Everything computed for one study, before writing."""

    volume: Volume
    pre: Preprocessed
    explanation: Explanation
    attribution: np.ndarray  # (I, J, K) on the source grid
    baseline_source: np.ndarray  # (I, J, K) baseline in source units on the source grid
    config: ExplainConfig
    baseline_info: dict[str, Any]
    timings: dict[str, float]


class Explainer:
    """Explain studies with one model and one configuration.

    Parameters
    ----------
    model
        A :class:`~medattr.models.LoadedModel`, or anything :func:`~medattr.models.load_model`
        accepts (TorchScript path, bundle directory, ``"builtin:phantom"``).
    config
        The run settings.
    spec
        Overrides the model's own :class:`ModelSpec`.
    """

    def __init__(
        self,
        model: LoadedModel | str | os.PathLike[str],
        config: ExplainConfig | None = None,
        spec: ModelSpec | str | None = None,
    ) -> None:
        self.config = config or ExplainConfig()
        t0 = time.perf_counter()
        self.model = (
            model if isinstance(model, LoadedModel) else load_model(model, self.config.device, spec)
        )
        self.model_seconds = time.perf_counter() - t0
        for p in self.model.module.parameters():
            p.requires_grad_(False)
        self.preprocessor = Preprocessor(self.model.spec)
        self.device = torch.device(self.config.device)
        self.model_warning = _model_quality_warning(self.model.spec)
        if self.model_warning:
            log.warning("%s", self.model_warning)

    # ----------------------------------------------------------------- pieces
    def target(self) -> Target:
        c, spec = self.config, self.model.spec
        t = c.target if c.target is not None else spec.default_target
        if spec.task == "segmentation":
            if not isinstance(t, int):
                raise InputError("segmentation models need an integer label as target")
            return SegmentationTarget(t, activation=c.target_activation)
        if isinstance(t, int) and not 0 <= t < max(spec.num_classes, 1):
            raise InputError(
                f"target {t} is out of range for a model with {spec.num_classes} classes "
                f"({', '.join(spec.class_names)})"
            )
        return ClassTarget(t, activation=c.target_activation)

    def make_baseline(self, volume: Volume, pre: Preprocessed) -> Baseline:
        c = self.config
        name = c.baseline
        if name == "zero":
            return ZeroBaseline()
        if name == "constant":
            if c.baseline_value is None:
                return ConstantBaseline("min")
            it = self.model.spec.intensity
            value = it.to_model(c.baseline_value) if it is not None else c.baseline_value
            return ConstantBaseline(value)
        if name == "blur":
            return GaussianBlurBaseline(sigma_mm=c.blur_sigma_mm)
        if name == "noise-uniform":
            return UniformNoiseBaseline(seed=c.seed)
        if name == "noise-gaussian":
            return GaussianNoiseBaseline(sigma_fraction=c.noise_sigma_fraction, seed=c.seed)
        if name in COUNTERFACTUAL_BASELINES:
            from medattr.baselines.counterfactual import (
                VAEGuidedBaseline,
                VAEGuidedResidualBaseline,
                VAEReconstructionBaseline,
            )

            vae = self._vae()
            disease = self._disease_class()
            if name == "vae-recon":
                return VAEReconstructionBaseline(
                    vae, disease_class=disease, threshold=c.cf_threshold
                )
            cls = VAEGuidedBaseline if name == "vae-guided" else VAEGuidedResidualBaseline
            return cls(vae, disease_class=disease, threshold=c.cf_threshold, max_steps=c.cf_steps)
        if name.startswith("file:"):
            path = name[5:]
            other = read_input(path)
            if other.spatial_shape != volume.spatial_shape or not np.allclose(
                other.affine, volume.affine, atol=1e-3
            ):
                raise VolumeError(
                    f"the baseline volume's grid (shape {other.spatial_shape}) differs from the "
                    f"input's (shape {volume.spatial_shape}) or its affine does; resample it onto "
                    f"the input grid first",
                    path,
                )
            return TensorBaseline(
                self.preprocessor.map_to_model(other).to(self.device), name="file"
            )
        raise InputError(f"unknown baseline {name!r}")

    def _vae(self) -> Any:
        if getattr(self, "_vae_cache", None) is None:
            from medattr.generative import load_vae

            path = self.config.vae or _default_vae(self.model)
            if path is None:
                raise InputError(
                    "counterfactual baselines need a VAE (--vae PATH); this model has no "
                    "paired default"
                )
            self._vae_cache = load_vae(path, self.device)
        return self._vae_cache

    def _disease_class(self) -> int:
        t = self.config.target if self.config.target is not None else self.model.spec.default_target
        return t if isinstance(t, int) else 1

    def references(self) -> torch.Tensor:
        """Reference bank for Expected Gradients, on the model grid."""
        refs = []
        for ref in self.config.references:
            if ref.startswith("builtin:"):
                refs.extend(_builtin_references(ref, self.preprocessor, self.config.seed))
            else:
                refs.append(self.preprocessor(read_input(ref)).image[0])
        return torch.stack(refs).to(self.device)

    def check_formats(self, volume: Volume) -> None:
        """DICOM outputs need a DICOM source (its study, series and frame of reference)."""
        wanted = [f for f in self.config.formats if f in DICOM_FORMATS]
        if wanted and (volume.source is None or volume.source.format != "dicom"):
            raise InputError(
                f"output format(s) {', '.join(wanted)} need a DICOM input series; this input is "
                f"{volume.source.format if volume.source else 'in memory'} (use nifti,png)",
                volume.source.path if volume.source else None,
            )

    def _baseline_check(self, b: torch.Tensor, target: Target) -> dict[str, Any]:
        """Class probabilities at the baseline; flag one still assigned the target class."""
        if self.model.spec.task != "classification":
            return {}
        with torch.no_grad():
            out = self.model.module(b).float()
        probs = torch.softmax(out, 1)[0] if out.shape[1] > 1 else torch.sigmoid(out[0])
        predicted = int(probs.argmax()) if out.shape[1] > 1 else int(probs[0] > 0.5)
        t = getattr(target, "index", None)
        info: dict[str, Any] = {
            "class_probabilities": [float(v) for v in probs],
            "predicted_class": predicted,
        }
        if isinstance(t, int):
            info["still_target_class"] = predicted == t
            if predicted == t:
                name = self.model.spec.class_names[t] if t < len(self.model.spec.class_names) else t
                info["warning"] = (
                    f"the baseline ({self.config.baseline}) is still classified as {name!r} "
                    f"(p = {float(probs[t]):.2f}): it does not represent the absence of what is "
                    "being explained"
                )
                log.warning("%s", info["warning"])
        return info

    def check_model(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model once on the prepared input; a failure is the model's or the input's."""
        try:
            with torch.no_grad():
                out = self.model.module(x)
        except RuntimeError as exc:
            raise ModelError(
                f"the model fails on the prepared input of shape {tuple(x.shape)}: {exc}",
                self.model.path,
            ) from exc
        if not isinstance(out, torch.Tensor):
            raise ModelError(
                f"the model returns {type(out).__name__}, not a tensor", self.model.path
            )
        spec = self.model.spec
        if spec.task == "classification" and (out.dim() != 2 or out.shape[1] != spec.num_classes):
            raise ModelError(
                f"the model output has shape {tuple(out.shape)}, expected (1, {spec.num_classes}) "
                f"for a classifier of {spec.num_classes} classes",
                self.model.path,
            )
        if not bool(torch.isfinite(out).all()):
            raise ModelError("the model output contains NaN or infinite values", self.model.path)
        return out

    # --------------------------------------------------------------------- run
    def explain(self, volume: Volume) -> StudyResult:
        """Compute the attribution of one study (nothing is written)."""
        c = self.config
        timings: dict[str, float] = {}
        t = time.perf_counter()
        pre = self.preprocessor(volume)
        x = pre.image.to(self.device)
        valid = pre.valid.to(self.device)
        timings["preprocess"] = time.perf_counter() - t

        t = time.perf_counter()
        model = self.model.module
        target = self.target()
        kw: dict[str, Any] = {
            "internal_batch_size": c.internal_batch_size,
            "amp": c.amp,
            "memory_budget": c.memory_budget,
            "progress": c.progress,
        }
        if c.distributed_paths and _world_size() > 1:
            kw["distributed"] = True
        baseline_info: dict[str, Any] = {}
        b: torch.Tensor | None = None
        if c.method != "expected-gradients":
            baseline = self.make_baseline(volume, pre)
            from medattr.baselines import BaselineContext
            from medattr.targets import bind_target

            out_x = self.check_model(x)
            _, bound = bind_target(target, out_x)
            res = baseline.generate(
                x, BaselineContext(spacing=pre.spacing, forward_func=model, target=bound)
            )
            b = torch.where(valid, res.baselines, x)
            baseline_info = {**baseline.describe(), **res.info, **self._baseline_check(b, target)}
        timings["baseline"] = time.perf_counter() - t

        t = time.perf_counter()
        if c.method == "ig":
            exp = IntegratedGradients(model, **kw).explain(
                x, b, target, n_steps=c.n_steps, method=c.quadrature
            )
        elif c.method == "split-ig":
            exp = SplitIntegratedGradients(model, **kw).explain(
                x, b, target, n_steps=c.n_steps, method=c.quadrature, ratio=c.ratio
            )
        elif c.method == "smoothgrad":
            sg = SmoothGrad(model, c.smoothgrad_base, **kw)
            exp = sg.explain(
                x,
                target,
                nt_type=c.nt_type,
                nt_samples=c.nt_samples,
                noise_level=c.noise_level,
                seed=c.seed,
                baselines=b if c.smoothgrad_base != "gradient" else None,
                n_steps=c.n_steps,
                method=c.quadrature,
            )
        else:
            self.check_model(x)
            bank = self.references()
            exp = ExpectedGradients(model, **kw).explain(
                x, bank, target, n_samples=c.eg_samples, seed=c.seed
            )
            baseline_info = {
                "name": "references",
                "n_references": int(bank.shape[0]),
                "sources": list(c.references),
            }
        timings["attribution"] = time.perf_counter() - t

        t = time.perf_counter()
        attr_model = exp.attributions[0].detach().cpu()
        attribution = self.preprocessor.attribution_to_source(attr_model, pre)[0]
        if b is not None:
            baseline_source = self.preprocessor.invert(b[0].cpu(), pre)[0]
            baseline_info["distance_to_input"] = _distances(x, b, valid)
        else:
            baseline_source = np.zeros(volume.spatial_shape, np.float32)
        timings["invert"] = time.perf_counter() - t
        baseline_info["f_baseline"] = float(exp.f_baseline[0])
        return StudyResult(
            volume, pre, exp, attribution, baseline_source, c, baseline_info, timings
        )

    def write(
        self,
        result: StudyResult,
        out_dir: str | os.PathLike[str],
        *,
        extra_manifest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the outputs of one study into ``out_dir`` (atomically) and return the manifest."""
        t = time.perf_counter()
        vol = result.volume
        name = vol.name
        exp = result.explanation
        outputs: dict[str, Any] = {}
        with staged_directory(out_dir) as stage:
            if "nifti" in result.config.formats:
                fname = f"{name}_attr.nii.gz"
                write_nifti(
                    stage(fname),
                    result.attribution,
                    vol.affine,
                    like=vol,
                    description=f"medattr {exp.method} attribution",
                )
                outputs["attribution_nifti"] = fname
                if result.config.method != "expected-gradients":
                    bname = f"{name}_baseline.nii.gz"
                    write_nifti(
                        stage(bname),
                        result.baseline_source,
                        vol.affine,
                        like=vol,
                        description=f"medattr baseline ({result.config.baseline}, model units)",
                    )
                    outputs["baseline_nifti"] = bname
            if "png" in result.config.formats:
                from medattr.render import montage

                fname = f"{name}_montage.png"
                title = (
                    f"{name}: {exp.method}, baseline {result.baseline_info.get('name', '')}; "
                    f"f(x)={float(exp.f_input[0]):.3f}, f(x')={float(exp.f_baseline[0]):.3f}, "
                    f"delta={float(exp.convergence_delta[0]):+.2e}"
                )
                montage(
                    vol.array[0],
                    result.attribution,
                    vol.affine,
                    stage(fname),
                    title=title,
                    colorbar_label="attribution (target units per voxel)",
                )
                outputs["montage_png"] = fname
                if result.config.method != "expected-gradients":
                    pname = f"{name}_panel.png"
                    self._panel(result, stage(pname))
                    outputs["panel_png"] = pname
            dicom = [f for f in result.config.formats if f in DICOM_FORMATS]
            if dicom:
                dname = f"{name}_dicom"
                outputs["dicom_dir"] = dname
                outputs["dicom_files"] = self._write_dicom(result, stage(dname), dicom)
            result.timings["write"] = time.perf_counter() - t
            manifest = self.manifest(result, outputs)
            if extra_manifest:
                manifest.update(extra_manifest)
            stage("manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
        return manifest

    def _panel(self, result: StudyResult, path: Path) -> None:
        from medattr.render import comparison_panel, peak_index

        vol = result.volume
        anatomy = self.preprocessor.intensity(vol.array[0]).numpy()
        base = result.baseline_source
        exp = result.explanation
        comparison_panel(
            [
                ("input", anatomy, "gray"),
                (f"baseline: {result.config.baseline}", base, "gray"),
                ("input - baseline", anatomy - base, "diff"),
                ("attribution", result.attribution, "attr"),
            ],
            vol.affine,
            path,
            anatomy=anatomy,
            peak=peak_index(result.attribution),
            title=(
                f"{vol.name}: {exp.method}; f(x)={float(exp.f_input[0]):.3f}, "
                f"f(x')={float(exp.f_baseline[0]):.3f}"
            ),
        )

    def _write_dicom(
        self, result: StudyResult, directory: Path, formats: Sequence[str]
    ) -> list[str]:
        from medattr.io import (
            AlgorithmInfo,
            write_dicom_parametric_map,
            write_dicom_rgb,
            write_dicom_seg,
        )

        directory.mkdir()
        exp = result.explanation
        target = exp.target
        label = target.get("index", target.get("label", ""))
        algo = AlgorithmInfo(
            method=exp.method,
            baseline=str(result.baseline_info.get("name", result.config.baseline)),
            target=f"class {label} {target.get('activation', '')}".strip(),
        )
        written: list[Path] = []
        if "dicom-rgb" in formats:
            written += write_dicom_rgb(result.volume, result.attribution, directory, algorithm=algo)
        if "dicom-pm" in formats:
            written += write_dicom_parametric_map(
                result.volume, result.attribution, directory, algorithm=algo
            )
        if "dicom-seg" in formats:
            written += write_dicom_seg(
                result.volume,
                result.attribution,
                directory,
                algorithm=algo,
                top_percent=result.config.seg_top_percent,
            )
        return sorted(p.name for p in written)

    def manifest(self, result: StudyResult, outputs: dict[str, Any]) -> dict[str, Any]:
        exp = result.explanation
        vol = result.volume
        src = vol.source
        s = exp.summary()
        attr_sum_source = float(np.asarray(result.attribution, np.float64).sum())
        return {
            "manifest_version": MANIFEST_VERSION,
            "medattr_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": {
                "path": src.path if src else None,
                "format": src.format if src else None,
                "name": vol.name,
                "shape": list(vol.spatial_shape),
                "spacing_mm": [round(v, 6) for v in vol.spacing],
                "affine_ras": vol.affine.tolist(),
            },
            "model": {
                **self.model.describe(),
                "grid_shape": list(result.pre.image.shape[2:]),
                "grid_spacing_mm": [round(v, 6) for v in result.pre.spacing],
            },
            "method": {"name": result.config.method, "implementation": exp.method, **s["settings"]},
            "baseline": result.baseline_info,
            "target": s["target"],
            "f_input": s["f_input"][0],
            "f_baseline": s["f_baseline"][0],
            "convergence_delta": s["convergence_delta"][0],
            "relative_delta": s["relative_delta"][0],
            "attribution_sum_model_grid": s["attribution_sum"][0],
            "attribution_sum_source_grid": attr_sum_source,
            "n_evaluations": s["n_evaluations"],
            "chunk_sizes": s["chunk_sizes"],
            "oom_retries": s["oom_retries"],
            "extras": _extras(exp),
            "config": result.config.to_dict(),
            "timings_s": {
                k: round(v, 4)
                for k, v in {"load_model": self.model_seconds, **result.timings}.items()
            },
            "environment": {
                "device": _device_name(self.device),
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "outputs": outputs,
            "warnings": [w for w in (self.model_warning, result.baseline_info.get("warning")) if w],
        }

    def run(
        self,
        input_path: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        **read_options: Any,
    ) -> dict[str, Any]:
        """Read, explain and write one study; returns the manifest."""
        t = time.perf_counter()
        volume = read_input(input_path, **read_options)
        self.check_formats(volume)
        load = time.perf_counter() - t
        result = self.explain(volume)
        result.timings = {"read": load, **result.timings}
        manifest = self.write(result, out_dir)
        return manifest


MIN_USEFUL_AUC = 0.7
"""Below this recorded test AUC a model's attributions explain little more than noise."""


def _model_quality_warning(spec: ModelSpec) -> str | None:
    """A warning when the model's own recorded metrics say it barely beats chance."""
    auc = (spec.extra or {}).get("metrics", {}).get("test_auc")
    if isinstance(auc, int | float) and auc < MIN_USEFUL_AUC:
        return (
            f"this model's recorded test AUC is {auc:.2f} (chance is 0.50): its attributions "
            "show how the pipeline works, not where a lesion is"
        )
    return None


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _extras(exp: Explanation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in (
        "alpha_star",
        "f_alpha_star",
        "saturated",
        "ig_delta",
        "f_noisy_mean",
        "bytes_per_point",
    ):
        if key in exp.extras:
            out[key] = exp.extras[key]
    return out


def _distances(x: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    d = (x - b)[valid.expand_as(x)].double()
    return {
        "mean_abs": float(d.abs().mean()),
        "rms": float(d.pow(2).mean().sqrt()),
        "max_abs": float(d.abs().max()) if d.numel() else 0.0,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} logical cores)"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray | torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _builtin_references(
    name: str, pre: Preprocessor, seed: int, count: int = 8
) -> list[torch.Tensor]:
    """Healthy subjects from the generators, seeds disjoint from the shipped models' training."""
    kind = name.split(":", 1)[1]
    seeds = [900_000 + seed * 97 + k for k in range(count)]
    if kind == "phantom":
        from medattr.synthetic.phantoms import make_phantom

        return [pre(make_phantom(s, lesion=False).image).image[0] for s in seeds]
    if kind == "mni":
        from medattr.synthetic.mni import make_mni_study

        return [pre(make_mni_study(s, lesion=False).image).image[0] for s in seeds]
    raise InputError(
        f"unknown built-in reference set {name!r}; available: builtin:phantom, builtin:mni"
    )


def _default_vae(model: LoadedModel) -> str | None:
    """The VAE shipped with a shipped classifier (same grid and intensity contract)."""
    paired = model.spec.extra.get("paired_vae")
    return str(paired) if paired else None


def explain_paths(
    model: str, inputs: Sequence[str], out_dir: str, config: ExplainConfig
) -> list[dict[str, Any]]:
    """Convenience: explain several files into ``out_dir/<name>/``."""
    ex = Explainer(model, config)
    return [ex.run(p, Path(out_dir) / Path(p).name.split(".")[0]) for p in inputs]
