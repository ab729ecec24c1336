"""The studies of ``bench_steps.py``: model, input, baseline and target for each path, and the
completeness error of fixed Gauss-Legendre rules and of the adaptive rule on it.

Studies are generated with :mod:`medattr.synthetic` (via the baseline benchmark's
``load_study``, which renders them on the classifier's grid in model units) from a seed block
of their own, :data:`STEPS_SEED_BASE`: disjoint from every seed the shipped models were trained,
validated or tested on (their training records are checked), from the baseline benchmark's
blocks (3 000 000 and 3 500 000), and from the seeds the adaptive rule was designed on
(4 100 000-4 100 003, and ``bench_ig.py``'s DenseNet inputs).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "STEPS_SEED_BASE",
    "VALIDATION_SEED_BASE",
    "Case",
    "build_cases",
    "gl_error",
    "run_adaptive",
]

STEPS_SEED_BASE = 4_200_000
"""First seed of the lesion studies of this benchmark (its test block)."""
VALIDATION_SEED_BASE = 4_150_000
"""First seed of a validation block, for choosing the adaptive rule's defaults."""
_MIN_SEED = 4_000_000
_DESIGN_SEEDS = range(4_100_000, 4_100_004)
"""Seeds looked at while choosing the adaptive rule's defaults; never benchmarked."""


@dataclass
class Case:
    """One path to integrate: ``model`` explains ``target`` from ``baseline`` to ``x``."""

    id: str
    model_name: str
    baseline_name: str
    seed: int
    model: Any
    x: Tensor
    baseline: Tensor
    target: int
    f_input: float = 0.0
    f_baseline: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    gl: dict[int, float] = field(default_factory=dict)  # n -> relative completeness error
    gl_evaluations: int = 0

    @property
    def span(self) -> float:
        return self.f_input - self.f_baseline


def _check_seed(seed: int, specs: list[Any]) -> None:
    from medattr.benchmarking.studies import FALLBACK_SEED_BASE, REFERENCE_SEED_BASE

    if seed in _DESIGN_SEEDS:
        raise ValueError(f"seed {seed} was used to design the adaptive rule; it is not a test")
    if seed < _MIN_SEED or seed in (FALLBACK_SEED_BASE, REFERENCE_SEED_BASE):
        raise ValueError(f"seed {seed} lies below the benchmark's blocks (from {_MIN_SEED})")
    for spec in specs:
        t = spec.extra.get("training", {}) if isinstance(spec.extra, dict) else {}
        if "seed_base" in t:
            lo = int(t["seed_base"])
            hi = lo + sum(int(t.get(k, 0)) for k in ("n_train", "n_val", "n_test", "n_lesion_eval"))
            if lo <= seed < hi:
                raise ValueError(f"seed {seed} was used to train or evaluate a shipped model")


def _frozen(module: Any) -> Any:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _f(model: Any, v: Tensor, target: int) -> float:
    with torch.no_grad():
        return float(model(v)[0, target])


def _lesion_studies(spec: Any, kind: str, n: int, specs: list[Any], base: int) -> list[Any]:
    """The first ``n`` seeds from ``base`` whose lesion can be placed on the grid."""
    from medattr.benchmarking.studies import load_study
    from medattr.errors import InputError

    out, seed = [], base
    while len(out) < n:
        _check_seed(seed, specs)
        try:
            st = load_study(spec, kind, seed, lesion=True)
            if bool(st.mask.any()):
                out.append(st)
        except InputError:
            pass
        seed += 1
    return out


def _brain_cases(n: int, baselines: list[str], args: Any) -> list[Case]:
    from medattr.baselines import BaselineContext, GaussianBlurBaseline
    from medattr.models import load_model

    clf = load_model("builtin:mni")
    model = _frozen(clf.module)
    specs = [clf.spec]
    vae = None
    if "vae-guided" in baselines:
        from medattr.generative import load_vae

        vae = load_vae("builtin:mni-vae")
        specs.append(vae.spec)
    cases = []
    for st in _lesion_studies(clf.spec, "mni", n, specs, args.seed_base):
        for name in baselines:
            t0 = time.perf_counter()
            ctx = BaselineContext(spacing=list(st.spacing), forward_func=model)
            info: dict[str, Any] = {}
            if name == "blur":
                b = GaussianBlurBaseline(sigma_mm=args.blur_mm).generate(st.x, ctx).baselines
            else:
                from medattr.baselines.counterfactual import VAEGuidedBaseline

                maker = VAEGuidedBaseline(vae, threshold=args.cf_threshold, max_steps=args.cf_steps)
                with torch.enable_grad():
                    res = maker.generate(st.x, ctx)
                b, info = res.baselines.detach(), _json(res.info)
            info["baseline_seconds"] = round(time.perf_counter() - t0, 3)
            cases.append(
                Case(
                    f"mni_s{st.seed}/{name}",
                    "builtin:mni",
                    name,
                    st.seed,
                    model,
                    st.x,
                    b,
                    1,
                    info=info,
                )
            )
    return cases


def _phantom_cases(n: int, args: Any) -> list[Case]:
    from medattr.baselines import BaselineContext, GaussianBlurBaseline
    from medattr.models import load_model

    clf = load_model("builtin:phantom")
    model = _frozen(clf.module)
    cases = []
    for st in _lesion_studies(clf.spec, "phantom", n, [clf.spec], args.seed_base):
        ctx = BaselineContext(spacing=list(st.spacing), forward_func=model)
        b = GaussianBlurBaseline(sigma_mm=args.blur_mm).generate(st.x, ctx).baselines
        cases.append(
            Case(f"phantom_s{st.seed}/blur", "builtin:phantom", "blur", st.seed, model, st.x, b, 1)
        )
    return cases


def _densenet_cases(n: int, args: Any) -> list[Case]:
    """MONAI DenseNet121 with random batch-norm statistics (``bench_ig.py --randomize-norm``) on
    generated torso phantoms (HU window [-200, 300] -> [0, 1]) against a zero baseline."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _ig_worker import build_model

    from medattr.synthetic import make_study

    size = args.densenet_size
    torch.manual_seed(args.seed)
    model = _frozen(build_model(args.densenet_model, randomize_norm=True, seed=args.seed))
    cases, seed = [], args.seed_base
    while len(cases) < n:
        _check_seed(seed, [])
        try:
            st = make_study("phantom", seed, lesion=True, shape=(size,) * 3, spacing=192.0 / size)
        except ValueError:
            seed += 1
            continue
        hu = torch.as_tensor(st.image.array, dtype=torch.float32)
        hu = hu.reshape(1, 1, *hu.shape[-3:])
        x = ((hu + 200.0) / 500.0).clamp(0.0, 1.0).contiguous()
        b = torch.zeros_like(x)
        with torch.no_grad():
            out = model(torch.cat([x, b]))
        target = int((out[0] - out[1]).abs().argmax())
        name = f"{args.densenet_model}-rn"
        cases.append(Case(f"phantom{size}_s{seed}/zero", name, "zero", seed, model, x, b, target))
        seed += 1
    return cases


def _json(info: Any) -> Any:
    if isinstance(info, dict):
        return {k: _json(v) for k, v in info.items()}
    if isinstance(info, list | tuple):
        return [_json(v) for v in info]
    if isinstance(info, Tensor):
        return info.tolist()
    return info if isinstance(info, str | int | float | bool | type(None)) else str(info)


def build_cases(args: Any) -> list[Case]:
    """Every case of the run, with ``f(x)`` and ``f(x')`` filled in."""
    cases: list[Case] = []
    if args.mni:
        cases += _brain_cases(args.mni, list(args.mni_baselines), args)
    if args.phantom:
        cases += _phantom_cases(args.phantom, args)
    if args.densenet:
        cases += _densenet_cases(args.densenet, args)
    for c in cases:
        c.model.to(args.device)
        c.x, c.baseline = c.x.to(args.device), c.baseline.to(args.device)
        c.f_input, c.f_baseline = _f(c.model, c.x, c.target), _f(c.model, c.baseline, c.target)
    return cases


def gl_error(case: Case, n: int) -> float:
    """Relative completeness error of ``n``-point Gauss-Legendre IG (cached per case)."""
    if n not in case.gl:
        from medattr import IntegratedGradients

        exp = IntegratedGradients(case.model).explain(
            case.x, case.baseline, target=case.target, n_steps=n, method="gausslegendre"
        )
        case.gl[n] = float(exp.convergence_delta[0]) / case.span
        case.gl_evaluations += exp.n_evaluations
    return case.gl[n]


def run_adaptive(
    case: Case, rule: str, rtol: float, max_steps: int, round_points: int = 1
) -> dict[str, Any]:
    """The adaptive rule on ``case``, with ``f(x)`` and ``f(x')`` as IG computes them."""
    from medattr.attribution.adaptive import adaptive_path_integral
    from medattr.attribution.engine import PathEngine
    from medattr.targets import bind_target

    t0 = time.perf_counter()
    engine = PathEngine(case.model)
    out = engine.forward(case.x)
    _, bound = bind_target(case.target, out)
    f_x = bound(out, torch.arange(1)).double()
    f_b = engine.target_values(case.baseline, torch.arange(1), bound, batch=1)
    res = adaptive_path_integral(
        engine,
        case.x,
        case.baseline,
        bound,
        rule=rule,
        rtol=rtol,
        max_steps=max_steps,
        f_inputs=f_x,
        f_baselines=f_b,
        round_points=round_points,
    )
    recomputed = float(res.sums[0].double().sum().cpu()) - float(res.span[0])
    return {
        "rule": rule,
        "evaluations": int(res.n_evaluations[0]),
        "forward_only_evaluations": 0,
        "error": float(res.error[0]),
        "relative_error": float(res.error[0]) / float(res.span[0]),
        "error_recomputed": recomputed,
        "converged": bool(res.converged[0]),
        "stopped": res.stopped[0],
        "local_relative_error": float(res.path_local_error[0]) / abs(float(res.span[0])),
        "rounds": res.rounds,
        "alphas": res.path_alphas[0].tolist(),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def interleaved_timing(
    case: Case, rules: list[str], rounds: int, rtol: float, round_points: int = 1
) -> dict[str, Any]:
    """Wall time of 50-point Gauss-Legendre IG and of each adaptive rule on ``case``, taken in
    turns (the order reversed every other round, so both see the same machine load)."""
    import statistics

    from medattr import IntegratedGradients

    def gl50() -> float:
        t0 = time.perf_counter()
        IntegratedGradients(case.model).explain(case.x, case.baseline, target=case.target)
        return time.perf_counter() - t0

    runs: dict[str, list[float]] = {"gl50": [], **{r: [] for r in rules}}
    jobs = [("gl50", gl50)] + [
        (r, lambda r=r: float(run_adaptive(case, r, rtol, 512, round_points)["seconds"]))
        for r in rules
    ]
    for k in range(rounds):
        for name, job in jobs if k % 2 == 0 else jobs[::-1]:
            runs[name].append(round(job(), 3))
    return {"seconds": runs, "median": {k: statistics.median(v) for k, v in runs.items()}}
