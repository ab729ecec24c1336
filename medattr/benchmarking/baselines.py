"""Make each benchmark baseline once per study, cache the expensive ones, and describe them.

Classic baselines are cheap and made on demand (per study, the noise ones seeded by the run
seed and the study seed). Counterfactual ones are optimised for a group of studies at once
(batching only changes the speed: every sample has its own latent, its own stopping step and
no batch statistics are involved) and cached on disk, so a resumed run never optimises a study
twice. The oracle is the study's exact healthy twin.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medattr import baselines
from medattr._fs import atomic_path
from medattr.baselines import Baseline, BaselineContext, BaselineSetup, GaussianBlurBaseline
from medattr.benchmarking.config import BenchmarkConfig, is_counterfactual
from medattr.benchmarking.studies import BenchStudy
from medattr.targets import disease_probability

__all__ = [
    "BaselineMaker",
    "GeneratedBaseline",
    "TargetScore",
    "baseline_diagnostics",
    "fixed_reference",
]

log = logging.getLogger("medattr.benchmarking")


class TargetScore:
    """The scalar explained for a classifier output ``(N, classes)``.

    ``"margin"``: disease log-odds ``logit_d - logsumexp(other logits)`` (for two classes
    ``logit_1 - logit_0``); ``"logit"``: the disease logit; ``"probability"``: its softmax
    probability. A one-column output is read as a sigmoid logit.

    Examples
    --------
    >>> TargetScore("margin", 1)(torch.tensor([[0.5, 2.0]]))
    tensor([1.5000])
    """

    def __init__(self, kind: str = "margin", disease_class: int = 1) -> None:
        if kind not in ("margin", "logit", "probability"):
            raise ValueError(f"kind must be margin, logit or probability; got {kind!r}")
        self.kind = kind
        self.disease_class = int(disease_class)
        self.__name__ = f"disease_{kind}"

    def __call__(self, output: Tensor) -> Tensor:
        out = output.float()
        if out.dim() != 2:
            raise ValueError(f"expected a classifier output (N, classes), got {tuple(out.shape)}")
        d = self.disease_class
        if out.shape[1] == 1:
            logit = out[:, 0]
            return torch.sigmoid(logit) if self.kind == "probability" else logit
        if self.kind == "logit":
            return out[:, d]
        if self.kind == "probability":
            return torch.softmax(out, 1)[:, d]
        others = torch.cat([out[:, :d], out[:, d + 1 :]], 1)
        return out[:, d] - torch.logsumexp(others, 1)

    def probability(self, output: Tensor) -> Tensor:
        """Disease probability (softmax, or sigmoid of a one-column output)."""
        return disease_probability(output, self.disease_class)


@dataclass
class GeneratedBaseline:
    """A baseline ``(1, C, *spatial)``, its construction report and seconds per study."""

    name: str
    tensor: Tensor
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _device_of(model: Any) -> torch.device:
    from medattr._torch import module_device

    return module_device(model)


def _noise_seed(cfg: BenchmarkConfig, study_seed: int) -> int:
    return (int(cfg.seed) * 1_000_003 + int(study_seed)) % (2**31 - 1)


def _split_info(info: Any, i: int, n: int) -> Any:
    """Sample ``i`` of a batched report (lists of length ``n`` are per-sample values)."""
    if isinstance(info, dict):
        return {k: _split_info(v, i, n) for k, v in info.items()}
    if isinstance(info, list) and len(info) == n:
        return info[i]
    return info


class BaselineMaker:
    """Baselines of the benchmark for one run.

    Parameters
    ----------
    config
        The run settings.
    model
        The classifier (guided counterfactuals consult it).
    loaded
        The classifier as loaded (:class:`~medattr.models.LoadedModel`: its spec names the
        generative models paired with it), or ``None``.
    disease_class
        The classifier output that means "diseased".
    cache_dir
        Where counterfactual baselines are cached (``<study>/<name>.pt``); ``None``: no cache.
    """

    def __init__(
        self,
        config: BenchmarkConfig,
        model: Callable[[Tensor], Tensor],
        loaded: Any = None,
        disease_class: int = 1,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.loaded = loaded
        self.disease_class = int(disease_class)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._pending: dict[tuple[str, str], GeneratedBaseline] = {}

    # ------------------------------------------------------------------ objects
    def baseline_object(self, name: str, study_seed: int) -> Baseline:
        """The registered :class:`~medattr.baselines.Baseline` behind ``name`` (not
        ``"oracle"``), built from the run's settings (noise seeded by run and study)."""
        if name == "oracle":
            raise ValueError("the oracle is the study's healthy twin, not a baseline object")
        cls = baselines.get(name)
        setup = BaselineSetup(
            model=self.loaded,
            device=_device_of(self.model),
            disease_class=self.disease_class,
            seed=_noise_seed(self.config, study_seed),
        )
        return cls.from_settings(self.config.entry_settings(cls), setup)

    def context(self, spacing: Sequence[float]) -> BaselineContext:
        return BaselineContext(spacing=list(spacing), forward_func=self.model)

    def regenerate(self, name: str, x: Tensor, study: BenchStudy) -> Tensor:
        """The baseline ``name`` for (perturbed) inputs ``x`` ``(N, C, *spatial)`` of ``study``,
        uncached.

        The oracle of ``x`` is ``x`` minus the study's exact lesion signal (``x - twin``).
        """
        if name == "oracle":
            return x - (study.x - study.twin)
        obj = self.baseline_object(name, study.seed)
        with torch.enable_grad():
            return obj.generate(x, self.context(study.spacing)).baselines.detach()

    # ------------------------------------------------------------------ cache
    def _cache_file(self, study_id: str, name: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / study_id / f"{name}.pt"

    def _load_cached(self, study_id: str, name: str) -> GeneratedBaseline | None:
        path = self._cache_file(study_id, name)
        if path is None or not path.exists():
            return None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return GeneratedBaseline(
                name, blob["tensor"], json.loads(blob["info"]), float(blob["seconds"])
            )
        except Exception as exc:  # a damaged cache entry is recomputed, not trusted
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None

    def _store(self, study_id: str, gen: GeneratedBaseline) -> None:
        path = self._cache_file(study_id, gen.name)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "tensor": gen.tensor.detach().cpu().contiguous(),
                    "info": json.dumps(gen.info, default=float),
                    "seconds": gen.seconds,
                },
                tmp,
            )

    # ------------------------------------------------------------------ generation
    def prepare(self, studies: Sequence[BenchStudy], names: dict[str, set[str]]) -> None:
        """Optimise the counterfactual baselines that ``studies`` still need, batched.

        ``names`` maps a study id to the baseline names it needs; cached ones are reused.
        """
        for name in [n for n in self.config.baselines if is_counterfactual(n)]:
            todo = [
                s
                for s in studies
                if name in names.get(s.id, set()) and self._load_cached(s.id, name) is None
            ]
            if not todo:
                continue
            obj = self.baseline_object(name, 0)
            x = torch.cat([s.x for s in todo])
            t0 = time.perf_counter()
            with torch.enable_grad():
                res = obj.generate(x, self.context(todo[0].spacing))
            per = (time.perf_counter() - t0) / len(todo)
            log.info("%s: %d studies in %.1f s", name, len(todo), per * len(todo))
            found = (getattr(res, "masks", None) or {}).get("anomaly_mask")
            for i, s in enumerate(todo):
                gen = GeneratedBaseline(
                    name,
                    res.baselines[i : i + 1].detach().clone(),
                    _split_info(res.info, i, len(todo)),
                    per,
                )
                if found is not None:
                    gen.info.update(mask_scores(found[i, 0], s))
                self._store(s.id, gen)
                self._pending[(s.id, name)] = gen

    def get(self, study: BenchStudy, name: str) -> GeneratedBaseline:
        """The baseline ``name`` of ``study`` (from :meth:`prepare`, the cache, or made now)."""
        key = (study.id, name)
        if key in self._pending:
            return self._pending.pop(key)
        if name == "oracle":
            return GeneratedBaseline(name, study.twin.clone(), {"source": "healthy twin"}, 0.0)
        if is_counterfactual(name):
            cached = self._load_cached(study.id, name)
            if cached is not None:
                return cached
            self.prepare([study], {study.id: {name}})
            return self._pending.pop(key)
        obj = self.baseline_object(name, study.seed)
        t0 = time.perf_counter()
        res = obj.generate(study.x, self.context(study.spacing))
        return GeneratedBaseline(
            name, res.baselines.detach(), dict(res.info), time.perf_counter() - t0
        )


def fixed_reference(config: BenchmarkConfig, study: BenchStudy) -> Tensor:
    """The replacement shared by all rows in the "fixed" deletion / insertion columns."""
    if config.fixed_reference == "zero":
        return torch.zeros_like(study.x)
    if config.fixed_reference == "twin":
        return study.twin.clone()
    blur = GaussianBlurBaseline(sigma_mm=config.blur_sigma_mm)
    return blur.generate(study.x, BaselineContext(spacing=list(study.spacing))).baselines


def mask_scores(mask: Tensor, study: BenchStudy) -> dict[str, Any]:
    """How a baseline's anomaly mask ``(*spatial)`` compares with the study's truth: emptiness,
    and for a lesion study the Dice coefficient against the lesion and whether it touches it."""
    m = mask.detach().cpu().bool()
    out: dict[str, Any] = {"anomaly_mask_empty": not bool(m.any())}
    if study.label == 1:
        truth = study.mask[0].bool()
        inter = float((m & truth).sum())
        out["mask_dice"] = 2.0 * inter / max(float(m.sum() + truth.sum()), 1.0)
        out["mask_detected"] = inter > 0
    return out


def _mean_in(values: Tensor, where: Tensor) -> float:
    n = int(where.sum())
    return float(values[where].double().mean()) if n else float("nan")


def baseline_diagnostics(
    study: BenchStudy,
    gen: GeneratedBaseline,
    model: Callable[[Tensor], Tensor],
    score: TargetScore,
    threshold: float,
) -> dict[str, Any]:
    """What a baseline is: its score and disease probability, whether the classifier calls it
    healthy, how far it is from the input and from the true healthy twin, inside and outside
    the lesion (within the region), and what it cost."""
    with torch.no_grad():
        out = model(torch.cat([study.x, gen.tensor.to(study.x.dtype)]))
    p = score.probability(out)
    f = score(out)
    region, lesion = study.region[0], study.mask[0]
    outside = region & ~lesion
    dist = (study.x - gen.tensor)[0, 0].abs()
    twin_err = (gen.tensor - study.twin)[0, 0].abs()
    row: dict[str, Any] = {
        "f_input": float(f[0]),
        "f_baseline": float(f[1]),
        "p_disease_input": float(p[0]),
        "p_disease_baseline": float(p[1]),
        "healthy": bool(float(p[1]) <= threshold),
        "distance_region": _mean_in(dist, region),
        "distance_lesion": _mean_in(dist, lesion),
        "distance_outside": _mean_in(dist, outside),
        "twin_error_lesion": _mean_in(twin_err, lesion),
        "twin_error_outside": _mean_in(twin_err, outside),
        "seconds": float(gen.seconds),
    }
    if "steps" in gen.info:
        row["steps"] = gen.info["steps"]
    for key in ("anomaly_mask_empty", "mask_dice", "mask_detected", "guided"):
        if key in gen.info:
            row[key] = gen.info[key]
    return row
