"""The benchmark loop: for each held-out study, every baseline once, every method with it, every
metric against the lesion mask; one JSON row per measurement, so an interrupted run resumes.

Layout of the run directory::

    run.json          settings, fingerprint, models, study plan, machine, session times
    rows.jsonl        the measurements (see medattr.benchmarking.rows)
    cache/            counterfactual baselines per study, the EG reference bank, example maps
    summary.json      means and 95 % bootstrap CIs (see medattr.benchmarking.aggregate)
    results.md        the report; images/ its figures
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from medattr._fs import atomic_path, atomic_write_text
from medattr.benchmarking.baselines import (
    BaselineMaker,
    TargetScore,
    baseline_diagnostics,
    fixed_reference,
)
from medattr.benchmarking.config import EG_BASELINE, BenchmarkConfig, is_counterfactual
from medattr.benchmarking.evaluate import (
    faithfulness,
    localisation,
    sensitivity,
    sensitivity_inputs,
)
from medattr.benchmarking.methods import (
    MethodResult,
    run_expected_gradients,
    run_ig,
    run_path_methods,
)
from medattr.benchmarking.rows import RowKey, RowStore
from medattr.benchmarking.studies import (
    BenchStudy,
    StudyPlan,
    iter_lesion_studies,
    load_study,
    plan_studies,
    reference_bank,
)
from medattr.errors import InputError

__all__ = ["BenchmarkRun", "machine_info", "run_benchmark", "wanted_keys"]

log = logging.getLogger("medattr.benchmarking")


def machine_info(device: str) -> dict[str, Any]:
    """Where the numbers were measured (no host names or user names)."""
    import monai

    from medattr._version import __version__

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "medattr": __version__,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    try:
        info["cpu_count"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        info["cpu_count"] = os.cpu_count()
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def wanted_keys(cfg: BenchmarkConfig, study_id: str, label: int, index: int) -> list[RowKey]:
    """Every row a study contributes (``index``: its position among the lesion studies)."""
    keys: list[RowKey] = [("baseline", study_id, "", b) for b in cfg.baselines]
    if label == 1:
        for m in cfg.methods:
            if m == "eg":
                keys.append(("attribution", study_id, "eg", EG_BASELINE))
            else:
                keys += [("attribution", study_id, m, b) for b in cfg.baselines]
        if index < cfg.sensitivity_studies:
            keys += [("sensitivity", study_id, "ig", b) for b in cfg.baselines]
    else:
        keys += [("attribution", study_id, "ig", b) for b in cfg.baselines]
    return keys


@dataclass
class BenchmarkRun:
    """Everything one run needs; built by :func:`run_benchmark`."""

    cfg: BenchmarkConfig
    out: Path
    model: Callable[[Tensor], Tensor]
    score: TargetScore
    maker: BaselineMaker
    store: RowStore
    plan: StudyPlan
    spec: Any
    references: Tensor | None = None
    study_ids: list[str] = field(default_factory=list)
    healthy_ids: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ helpers
    def example_file(self, study_id: str) -> Path:
        return self.out / "cache" / "examples" / f"{study_id}.pt"

    def needs_example(self, study_id: str, label: int, index: int) -> bool:
        return (
            label == 1 and index < self.cfg.n_examples and not self.example_file(study_id).exists()
        )

    def complete(self, study_id: str, label: int, index: int) -> bool:
        keys = wanted_keys(self.cfg, study_id, label, index)
        return not self.store.missing(keys) and not self.needs_example(study_id, label, index)

    def _row(self, study: BenchStudy, **fields: Any) -> dict[str, Any]:
        return {"study": study.id, "seed": study.seed, "label": study.label, **fields}

    # ------------------------------------------------------------------ one study
    def process(self, study: BenchStudy, index: int) -> None:
        cfg, store = self.cfg, self.store
        t_study = time.perf_counter()
        missing = set(store.missing(wanted_keys(cfg, study.id, study.label, index)))
        example = self.needs_example(study.id, study.label, index)
        saved: dict[str, Any] = {"baselines": {}, "ig": {}}
        fixed = fixed_reference(cfg, study) if study.label == 1 else None
        for name in cfg.baselines:
            mine = {k for k in missing if k[3] == name}
            if not mine and not example:
                continue
            gen = self.maker.get(study, name)
            key = ("baseline", study.id, "", name)
            if key in mine:
                diag = baseline_diagnostics(study, gen, self.model, self.score, cfg.cf_threshold)
                store.add(self._row(study, kind="baseline", baseline=name, **diag))
            methods = {k[2] for k in mine if k[0] == "attribution"}
            want_sens = ("sensitivity", study.id, "ig", name) in mine
            run = set(methods) | ({"ig"} if (want_sens or example) else set())
            results = run_path_methods(self.model, study.x, gen.tensor, self.score, cfg, run)
            for m in sorted(methods):
                store.add(self._attribution_row(study, name, results[m], gen.tensor, fixed))
            if want_sens:
                self._sensitivity(study, name, results["ig"].attributions)
            if example:
                saved["baselines"][name] = gen.tensor.clone()
                saved["ig"][name] = results["ig"].attributions.clone()
        if ("attribution", study.id, "eg", EG_BASELINE) in missing or (
            example and "eg" in cfg.methods
        ):
            refs = self.reference_bank()
            res = run_expected_gradients(self.model, study.x, refs, self.score, cfg)
            if ("attribution", study.id, "eg", EG_BASELINE) in missing:
                own = refs.mean(0, keepdim=True)
                store.add(self._attribution_row(study, EG_BASELINE, res, own, fixed))
            saved["eg"] = res.attributions.clone()
        if example:
            self._save_example(study, saved)
        log.info(
            "study %s (%s) done in %.1f s",
            study.id,
            "lesion" if study.label else "healthy",
            time.perf_counter() - t_study,
        )

    def _attribution_row(
        self,
        study: BenchStudy,
        baseline: str,
        res: MethodResult,
        own: Tensor,
        fixed: Tensor | None,
    ) -> dict[str, Any]:
        metrics: dict[str, float] = {"completeness": res.completeness}
        t0 = time.perf_counter()
        attr = res.attributions
        if study.label == 1:
            metrics.update(localisation(attr, study, self.cfg))
            if fixed is None:
                raise RuntimeError("a lesion study needs its fixed deletion reference")
            metrics.update(
                faithfulness(
                    self.model,
                    self.score,
                    attr,
                    study,
                    res.f_input,
                    {"own": own, "fixed": fixed},
                    self.cfg,
                )
            )
        else:
            metrics["score_gap"] = res.f_input - res.f_baseline
        metrics["abs_attribution"] = float(attr.double().abs().sum())
        return self._row(
            study,
            kind="attribution",
            method=res.method,
            baseline=baseline,
            f_input=res.f_input,
            f_baseline=res.f_baseline,
            seconds=res.seconds,
            metric_seconds=time.perf_counter() - t0,
            n_evaluations=res.n_evaluations,
            metrics=metrics,
            extras=res.extras,
        )

    def _sensitivity(self, study: BenchStudy, name: str, explanation: Tensor) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        ready: list[tuple[Tensor, Tensor]] = []
        if is_counterfactual(name):
            # a counterfactual is an optimisation per input: make those of all perturbed inputs
            # in one batch. The perturbations are drawn as max_sensitivity draws them; explain()
            # checks each input it receives and falls back to generating one if they differ.
            inputs = sensitivity_inputs(study.x, cfg)
            made = self.maker.regenerate(name, torch.cat(inputs), study)
            ready = [(xp, made[i : i + 1]) for i, xp in enumerate(inputs)]

        def explain(xp: Tensor) -> Tensor:
            b = next((bb for xx, bb in ready if torch.equal(xx, xp)), None)
            if b is None:
                b = self.maker.regenerate(name, xp, study)
            return run_ig(self.model, xp, b, self.score, cfg)

        value = sensitivity(explain, study, explanation, cfg)
        self.store.add(
            self._row(
                study,
                kind="sensitivity",
                method="ig",
                baseline=name,
                max_sensitivity=value,
                seconds=time.perf_counter() - t0,
            )
        )

    def _save_example(self, study: BenchStudy, saved: dict[str, Any]) -> None:
        path = self.example_file(study.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {
            "x": study.x,
            "twin": study.twin,
            "mask": study.mask,
            "region": study.region,
            "affine": torch.as_tensor(study.affine),
            "spacing": torch.tensor(study.spacing),
            **{f"baseline/{k}": v for k, v in saved["baselines"].items()},
            **{f"ig/{k}": v for k, v in saved["ig"].items()},
        }
        if "eg" in saved:
            blob["eg"] = saved["eg"]
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)

    def reference_bank(self) -> Tensor:
        if self.references is None:
            path = self.out / "cache" / "references.pt"
            if path.exists():
                self.references = torch.load(path, weights_only=True)
            else:
                t0 = time.perf_counter()
                self.references = reference_bank(self.spec, self.plan)
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    torch.save(self.references, tmp)
                log.info(
                    "EG reference bank: %d healthy subjects in %.1f s",
                    self.references.shape[0],
                    time.perf_counter() - t0,
                )
        return self.references

    # ------------------------------------------------------------------ all studies
    def _cf_needs(self, study: BenchStudy, index: int) -> set[str]:
        missing = self.store.missing(wanted_keys(self.cfg, study.id, study.label, index))
        names = {k[3] for k in missing}
        if self.needs_example(study.id, study.label, index):
            names |= set(self.cfg.baselines)
        return names

    def _flush(self, group: list[tuple[int, BenchStudy]]) -> None:
        if not group:
            return
        needs = {s.id: self._cf_needs(s, i) for i, s in group}
        self.maker.prepare([s for _, s in group], needs)
        for i, s in group:
            self.process(s, i)
        group.clear()

    def run_all(self) -> None:
        cfg = self.cfg
        group: list[tuple[int, BenchStudy]] = []
        for index, item in iter_lesion_studies(
            self.spec,
            self.plan,
            cfg.n_studies,
            complete=lambda sid, i: self.complete(sid, 1, i),
        ):
            sid = item if isinstance(item, str) else item.id
            self.study_ids.append(sid)
            if isinstance(item, str):
                continue
            group.append((index, item))
            if len(group) >= cfg.cf_batch:
                self._flush(group)
        self._flush(group)
        for seed in self.plan.healthy_seeds:
            sid = f"{self.plan.kind}_s{seed}"
            self.healthy_ids.append(sid)
            if self.complete(sid, 0, 0):
                continue
            group.append((0, load_study(self.spec, self.plan.kind, seed, lesion=False)))
            if len(group) >= cfg.cf_batch:
                self._flush(group)
        self._flush(group)


def _models(cfg: BenchmarkConfig) -> tuple[Any, Any]:
    from medattr.models import load_model

    clf = load_model(cfg.classifier, cfg.device)
    vae = None
    if cfg.needs_vae:
        from medattr.generative import load_vae

        vae = load_vae(cfg.vae, cfg.device)
        size = getattr(vae.spec, "spatial_size", None)
        if size is not None and clf.spec.spatial_size is not None and size != clf.spec.spatial_size:
            raise InputError(
                f"the VAE works on a {tuple(size)} grid but the classifier on "
                f"{tuple(clf.spec.spatial_size)}; pair models of the same input contract",
                cfg.vae,
            )
    return clf, vae


def _check_run_file(path: Path, fingerprint: str) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        run = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable benchmark run record ({exc})", path) from exc
    if run.get("fingerprint") != fingerprint:
        raise InputError(
            "this run directory holds rows measured with other settings or models "
            f"(fingerprint {run.get('fingerprint')} != {fingerprint}); resume with the same "
            "settings or use another --out",
            path.parent,
        )
    return dict(run)


def run_benchmark(
    config: BenchmarkConfig,
    out_dir: str | Path,
    *,
    docs: str | Path | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the benchmark in ``out_dir`` and write its report.

    Parameters
    ----------
    config
        What to run (see :class:`BenchmarkConfig`).
    out_dir
        Run directory; an existing one is resumed if its settings match.
    docs
        Also write the report to this markdown file (figures in ``images/results/`` beside it).
    report
        Aggregate and write ``summary.json``, ``results.md`` and figures at the end.

    Returns
    -------
    dict
        The summary (see :func:`medattr.benchmarking.aggregate.summarise`).

    Raises
    ------
    InputError
        Bad settings, unusable models, or a run directory made with other settings.
    """
    cfg = config
    cfg.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", out)
    t0 = time.perf_counter()
    clf, vae = _models(cfg)
    fingerprint = cfg.fingerprint({"classifier": clf.sha256})
    run_file = out / "run.json"
    previous = _check_run_file(run_file, fingerprint)
    plan = plan_studies(
        clf.spec,
        vae.spec if vae is not None else None,
        n_studies=cfg.n_studies,
        n_healthy=cfg.n_healthy,
        n_references=cfg.eg_references,
        study_seeds=cfg.study_seeds,
    )
    disease = clf.spec.default_target if isinstance(clf.spec.default_target, int) else 1
    score = TargetScore(cfg.target_score, disease)
    old_vae = (previous.get("models", {}).get("sha256") or {}).get("vae")
    if vae is not None and old_vae not in (None, vae.sha256):
        raise InputError(
            "this run directory holds counterfactual baselines of another VAE; use another --out",
            out,
        )
    models = {"classifier": clf.sha256, "vae": vae.sha256 if vae is not None else old_vae}
    out.mkdir(parents=True, exist_ok=True)
    sessions = list(previous.get("sessions", []))
    record = {
        "fingerprint": fingerprint,
        "config": cfg.to_dict(),
        "models": {
            "classifier": clf.describe(),
            "vae": vae.describe() if vae is not None else None,
            "sha256": models,
        },
        "plan": plan.to_dict(),
        "machine": machine_info(cfg.device),
        "sessions": sessions,
    }
    atomic_write_text(run_file, json.dumps(record, indent=2, default=str))
    run = BenchmarkRun(
        cfg=cfg,
        out=out,
        model=clf.module,
        score=score,
        maker=BaselineMaker(cfg, clf.module, clf, disease, out / "cache"),
        store=RowStore(out / "rows.jsonl"),
        plan=plan,
        spec=clf.spec,
    )
    torch.manual_seed(cfg.seed)
    # TorchScript's profiling executor re-specialises the graph for every new batch size
    # (path chunks, perturbation batches), which costs ~10 slow calls each and gains nothing
    # for convolutional networks: run without it
    with torch.jit.optimized_execution(False):
        run.run_all()
    sessions.append(
        {
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
    record["sessions"] = sessions
    record["study_ids"] = run.study_ids
    record["healthy_ids"] = run.healthy_ids
    atomic_write_text(run_file, json.dumps(record, indent=2, default=str))
    if not report:
        return {}
    from medattr.benchmarking.report import write_report

    return write_report(out, docs=docs)
