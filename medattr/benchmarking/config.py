"""What a baseline benchmark run does: methods, baselines, sizes, metric settings, presets.

Everything that changes the numbers is a field of :class:`BenchmarkConfig` and goes into the
run's fingerprint (:meth:`BenchmarkConfig.fingerprint`), so that an interrupted run resumes
only with the same settings. Which methods, baselines and how many studies are *included* can
change between resumptions: rows already measured are kept, missing ones are added.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from medattr.errors import InputError

__all__ = [
    "BASELINES",
    "BUILTIN_METHOD_NAMES",
    "CLASSIC_BASELINES",
    "COUNTERFACTUAL_BASELINES",
    "EG_BASELINE",
    "METHODS",
    "PRESETS",
    "BenchmarkConfig",
    "add_arguments",
    "available_baselines",
    "available_methods",
    "config_from_args",
    "is_counterfactual",
    "ordered_baselines",
    "ordered_methods",
]

METHODS = ("ig", "smoothgrad", "split-ig", "eg")
"""Integrated Gradients, SmoothGrad over IG, Split IG (left part), Expected Gradients."""

CLASSIC_BASELINES = ("zero", "blur", "noise-uniform", "noise-gaussian")
COUNTERFACTUAL_BASELINES = ("vae-recon", "vae-guided", "vae-guided-residual")
BASELINES = (*CLASSIC_BASELINES, *COUNTERFACTUAL_BASELINES, "oracle")
"""``oracle`` is the study's true healthy twin: the bound for any counterfactual."""

BUILTIN_METHOD_NAMES = {"ig": "ig", "smoothgrad": "smoothgrad", "split-ig": "split-ig"}
BUILTIN_METHOD_NAMES["eg"] = "expected-gradients"
"""The benchmark's own method names and the registered methods they run."""


def available_methods() -> tuple[str, ...]:
    """:data:`METHODS` and every other registered attribution method (run generically)."""
    from medattr.attribution import METHODS as REGISTERED

    extra = [n for n in REGISTERED.names() if n not in BUILTIN_METHOD_NAMES.values()]
    return (*METHODS, *extra)


def available_baselines() -> tuple[str, ...]:
    """:data:`BASELINES` and every other registered baseline that needs no argument."""
    from medattr.baselines import BASELINES as REGISTERED

    extra = [n for n in REGISTERED.names() if n not in BASELINES and not REGISTERED.get(n).argument]
    return (*BASELINES, *extra)


def is_counterfactual(name: str) -> bool:
    """Whether a baseline is optimised per study (made in batches and cached by the run)."""
    if name in COUNTERFACTUAL_BASELINES:
        return True
    if name == "oracle" or name in CLASSIC_BASELINES:
        return False
    from medattr.baselines import BASELINES as REGISTERED

    return bool(getattr(REGISTERED.get(name), "expensive", False))


def _ordered(names: Iterable[str], first: tuple[str, ...]) -> list[str]:
    wanted = list(dict.fromkeys(names))
    return [b for b in first if b in wanted] + [b for b in wanted if b not in first]


def ordered_baselines(names: Iterable[str]) -> list[str]:
    """``names`` in report order: :data:`BASELINES` first, then the others as given."""
    return _ordered(names, BASELINES)


def ordered_methods(names: Iterable[str]) -> list[str]:
    """``names`` in report order: :data:`METHODS` first, then the others as given."""
    return _ordered(names, METHODS)


EG_BASELINE = "healthy-refs"
"""Expected Gradients draws its references from healthy subjects; it has this one row."""

TARGET_SCORES = ("margin", "logit", "probability")
FIXED_REFERENCES = ("blur", "zero", "twin")

PRESETS: dict[str, dict[str, Any]] = {
    # a smoke test: every code path, tiny sizes (minutes with 64^3 models, seconds with tiny ones)
    "quick": {
        "n_studies": 2,
        "n_healthy": 1,
        "n_steps": 4,
        "sg_steps": 2,
        "nt_samples": 2,
        "eg_samples": 4,
        "eg_references": 2,
        "cf_max_steps": 3,
        "cf_batch": 2,
        "perturbation_steps": 2,
        "sensitivity_studies": 1,
        "sensitivity_samples": 1,
        "n_examples": 1,
        "n_boot": 200,
    },
    # the run behind docs/results.md: about 15 minutes on 2 CPU cores with the shipped 64^3 models
    "full": {
        "n_studies": 40,
        "n_healthy": 8,
        "n_steps": 16,
        "sg_steps": 8,
        "nt_samples": 4,
        "eg_samples": 32,
        "eg_references": 16,
        "cf_max_steps": 60,
        "cf_batch": 4,
        "perturbation_steps": 5,
        "sensitivity_studies": 2,
        "sensitivity_samples": 2,
        "n_examples": 2,
        "n_boot": 2000,
    },
}

# fields that decide which rows exist, not what a row contains: free to change on resume
_SCOPE_FIELDS = {
    "n_studies",
    "n_healthy",
    "methods",
    "baselines",
    "sensitivity_studies",
    "n_examples",
    "n_boot",
    "device",
    "internal_batch_size",
    "cf_batch",
    "preset",
}


@dataclass
class BenchmarkConfig:
    """Settings of a baseline benchmark run (JSON-able).

    Parameters
    ----------
    classifier, vae
        Model paths (TorchScript, bundle directory, or ``builtin:NAME``). The classifier's spec
        must state ``spatial_size`` and ``pixdim``: studies are generated on that grid.
    n_studies, n_healthy
        Held-out lesion studies (all metrics) and healthy studies (specificity: what each
        baseline invents where there is nothing to find).
    methods, baselines
        Subsets of :data:`METHODS` and :data:`BASELINES`.
    n_steps, quadrature
        Path points and rule for IG and Split IG (one shared path evaluation gives both).
    sg_steps, nt_samples, noise_level
        SmoothGrad over IG: path points per noisy copy, noisy copies, noise sigma as a fraction
        of each input's (max - min).
    eg_samples, eg_references
        Expected Gradients: draws per input and size of the healthy reference bank.
    split_ratio
        Split IG saturation ratio r.
    target_score
        What is explained: ``"margin"`` (disease log-odds ``logit_d - logsumexp(others)``, the
        quantity the decision depends on; default), ``"logit"`` (the disease logit alone) or
        ``"probability"``.
    blur_sigma_mm, noise_sigma_fraction
        Blur baseline sigma; Gaussian-noise baseline sigma (fraction of the range).
    cf_threshold, cf_max_steps, cf_batch
        Guided counterfactuals: "healthy" probability threshold, optimisation step bound, and
        how many studies are optimised together (batching only changes speed).
    perturbation_steps, perturbation_fraction
        Deletion / insertion: points over the first ``perturbation_fraction`` of the region's
        voxels (the curve's AUC is taken over that range).
    fixed_reference
        The replacement shared by every row in the "fixed" deletion / insertion columns:
        ``"blur"`` (the input blurred by ``blur_sigma_mm``), ``"zero"`` or ``"twin"``.
    pointing_tolerance_mm
        Pointing game: mask growth in mm.
    sensitivity_studies, sensitivity_samples, sensitivity_radius
        Max-sensitivity of IG (every baseline regenerated for each perturbed input) on the
        first studies; L-infinity radius in model-input units.
    n_examples
        Studies whose baselines and IG maps are kept for the example figures.
    n_boot
        Bootstrap resamples for the confidence intervals.
    seed
        Seeds every random choice (noise baselines, SmoothGrad, EG draws, perturbations).
    study_seeds
        Explicit generator seeds of the lesion studies (default: the classifier's held-out
        test split, see :func:`medattr.benchmarking.studies.plan_studies`).
    """

    classifier: str = "builtin:mni"
    vae: str = "builtin:mni-vae"
    preset: str = "custom"
    n_studies: int = 20
    n_healthy: int = 4
    methods: tuple[str, ...] = METHODS
    baselines: tuple[str, ...] = BASELINES
    n_steps: int = 16
    quadrature: str = "gausslegendre"
    sg_steps: int = 8
    nt_samples: int = 4
    noise_level: float = 0.1
    eg_samples: int = 32
    eg_references: int = 16
    split_ratio: float = 0.9
    target_score: str = "margin"
    blur_sigma_mm: float = 10.0
    noise_sigma_fraction: float = 0.2
    cf_threshold: float = 0.2
    cf_max_steps: int = 60
    cf_batch: int = 4
    perturbation_steps: int = 5
    perturbation_fraction: float = 0.1
    fixed_reference: str = "blur"
    pointing_tolerance_mm: float = 0.0
    sensitivity_studies: int = 2
    sensitivity_samples: int = 2
    sensitivity_radius: float = 0.02
    n_examples: int = 2
    n_boot: int = 2000
    seed: int = 0
    device: str = "cpu"
    internal_batch_size: int | str = "auto"
    study_seeds: tuple[int, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        self.baselines = tuple(self.baselines)
        if self.study_seeds is not None:
            self.study_seeds = tuple(int(s) for s in self.study_seeds)
        self.validate()

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BenchmarkConfig:
        """A preset (``"quick"`` or ``"full"``) with some fields replaced.

        Examples
        --------
        >>> BenchmarkConfig.from_preset("quick", n_studies=3).n_studies
        3
        """
        if name not in PRESETS:
            raise InputError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
        return cls(**{**PRESETS[name], "preset": name, **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown benchmark setting(s): {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["baselines"] = list(self.baselines)
        d["study_seeds"] = None if self.study_seeds is None else list(self.study_seeds)
        return d

    def replace(self, **changes: Any) -> BenchmarkConfig:
        return replace(self, **changes)

    def fingerprint(self, models: dict[str, str] | None = None) -> str:
        """Hash of every setting that changes a row's numbers (and of the model hashes)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _SCOPE_FIELDS}
        d.pop("classifier")
        d.pop("vae")
        d["models"] = models or {}
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def measured_settings(self) -> dict[str, Any]:
        """The settings that enter the fingerprint (for reports)."""
        return {k: v for k, v in self.to_dict().items() if k not in _SCOPE_FIELDS}

    def validate(self) -> None:
        """Raise :class:`~medattr.errors.InputError` naming the first bad setting."""
        _choices("methods", self.methods, available_methods())
        _choices("baselines", self.baselines, available_baselines())
        for name in (
            "n_steps",
            "sg_steps",
            "nt_samples",
            "eg_samples",
            "eg_references",
            "perturbation_steps",
            "sensitivity_samples",
            "n_boot",
            "cf_batch",
        ):
            _int_at_least(name, getattr(self, name), 1)
        for name in ("n_studies", "n_healthy", "cf_max_steps", "sensitivity_studies"):
            _int_at_least(name, getattr(self, name), 0)
        _int_at_least("n_examples", self.n_examples, 0)
        if self.n_studies + self.n_healthy < 1:
            raise InputError("n_studies + n_healthy must be at least 1")
        if self.target_score not in TARGET_SCORES:
            raise InputError(
                f"target_score must be one of {', '.join(TARGET_SCORES)}; got {self.target_score!r}"
            )
        if self.fixed_reference not in FIXED_REFERENCES:
            raise InputError(
                f"fixed_reference must be one of {', '.join(FIXED_REFERENCES)}; got "
                f"{self.fixed_reference!r}"
            )
        _in_range("noise_level", self.noise_level, 0.0, 10.0, low_open=False)
        _in_range("split_ratio", self.split_ratio, 0.0, 1.0, low_open=True)
        _in_range("cf_threshold", self.cf_threshold, 0.0, 1.0, low_open=True, high_open=True)
        _in_range("perturbation_fraction", self.perturbation_fraction, 0.0, 1.0, low_open=True)
        _in_range("blur_sigma_mm", self.blur_sigma_mm, 0.0, 1e4, low_open=True)
        _in_range("noise_sigma_fraction", self.noise_sigma_fraction, 0.0, 10.0, low_open=False)
        _in_range("pointing_tolerance_mm", self.pointing_tolerance_mm, 0.0, 1e4, low_open=False)
        _in_range("sensitivity_radius", self.sensitivity_radius, 0.0, 10.0, low_open=False)
        if self.study_seeds is not None and len(self.study_seeds) < self.n_studies:
            raise InputError(
                f"study_seeds lists {len(self.study_seeds)} seeds for n_studies={self.n_studies}"
            )
        if self.internal_batch_size != "auto":
            _int_at_least("internal_batch_size", self.internal_batch_size, 1)

    @property
    def needs_vae(self) -> bool:
        """Whether a requested baseline takes the ``vae`` setting (the run loads it once to
        check its grid against the classifier's)."""
        from medattr.baselines import BASELINES as REGISTERED

        return any(
            b in COUNTERFACTUAL_BASELINES
            or any(st.name == "vae" for st in getattr(REGISTERED.get(b), "settings", ()))
            for b in self.baselines
            if b != "oracle"
        )

    def entry_settings(self, cls: Any) -> dict[str, Any]:
        """Values of the settings a registered entry declares: from :attr:`options`, else the
        field of the same name (``cf_steps`` is :attr:`cf_max_steps`), else its default."""
        out: dict[str, Any] = {}
        aliases = {"cf_steps": "cf_max_steps"}
        for st in getattr(cls, "settings", ()):
            if st.name in self.options:
                value = self.options[st.name]
            elif hasattr(self, aliases.get(st.name, st.name)):
                value = getattr(self, aliases.get(st.name, st.name))
            else:
                value = st.default
            out[st.name] = st.convert(value)
        return out


def _choices(name: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not values:
        raise InputError(f"{name} must name at least one of {', '.join(allowed)}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InputError(
            f"unknown {name} {', '.join(map(repr, bad))}; choose from {', '.join(allowed)}"
        )
    if len(set(values)) != len(values):
        raise InputError(f"{name} lists a name twice: {', '.join(values)}")


def _int_at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")


def _in_range(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    low_open: bool,
    high_open: bool = False,
) -> None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise InputError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")


def _names(allowed: tuple[str, ...], what: str) -> Any:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(allowed)}"
            )
        return items

    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the benchmark's command-line options to ``p`` (shared by ``medattr benchmark`` and
    ``benchmarks/bench_baselines.py``)."""
    p.add_argument("--out", required=True, help="run directory (rows.jsonl, cache, report)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny smoke-test sizes")
    size.add_argument("--full", action="store_true", help="the sizes behind docs/results.md")
    p.add_argument("--classifier", default="builtin:mni", help="classifier to explain")
    p.add_argument("--vae", default="builtin:mni-vae", help="healthy-only VAE")

    def preset(key: str) -> str:
        return f"(quick {PRESETS['quick'].get(key)}, full {PRESETS['full'].get(key)})"

    keep = argparse.SUPPRESS  # unset options take the preset's value
    p.add_argument(
        "--n-studies", type=int, default=keep, help=f"held-out lesion studies {preset('n_studies')}"
    )
    p.add_argument(
        "--n-healthy",
        type=int,
        default=keep,
        help=f"held-out healthy studies {preset('n_healthy')}",
    )
    p.add_argument(
        "--methods",
        type=_names(available_methods(), "method(s)"),
        default=keep,
        help=f"comma-separated subset of {','.join(available_methods())} (default: "
        f"{','.join(METHODS)})",
    )
    p.add_argument(
        "--baselines",
        type=_names(available_baselines(), "baseline(s)"),
        default=keep,
        help=f"comma-separated subset of {','.join(available_baselines())} (default: "
        f"{','.join(BASELINES)})",
    )
    p.add_argument(
        "--steps", type=int, default=keep, help=f"IG / Split IG path points {preset('n_steps')}"
    )
    p.add_argument(
        "--nt-samples",
        type=int,
        default=keep,
        help=f"SmoothGrad noisy copies {preset('nt_samples')}",
    )
    p.add_argument(
        "--eg-samples",
        type=int,
        default=keep,
        help=f"Expected Gradients draws per study {preset('eg_samples')}",
    )
    p.add_argument(
        "--target-score",
        choices=TARGET_SCORES,
        default=keep,
        help="what is explained: the disease log-odds (margin, default), logit or probability",
    )
    p.add_argument("--seed", type=int, default=keep, help="seed for every random choice (0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--docs",
        default=None,
        help="also write the report to this markdown file, figures beside it in "
        "images/results/ (docs/results.md for the documentation)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report and figures from the rows already in --out",
    )


def config_from_args(args: argparse.Namespace) -> BenchmarkConfig:
    """A :class:`BenchmarkConfig` from parsed :func:`add_arguments` options."""
    preset = "quick" if args.quick else "full"
    overrides: dict[str, Any] = {
        "classifier": args.classifier,
        "vae": args.vae,
        "device": args.device,
    }
    mapping = {
        "n_studies": "n_studies",
        "n_healthy": "n_healthy",
        "methods": "methods",
        "baselines": "baselines",
        "steps": "n_steps",
        "nt_samples": "nt_samples",
        "eg_samples": "eg_samples",
        "target_score": "target_score",
        "seed": "seed",
    }
    overrides.update({field: getattr(args, a) for a, field in mapping.items() if hasattr(args, a)})
    return BenchmarkConfig.from_preset(preset, **overrides)
