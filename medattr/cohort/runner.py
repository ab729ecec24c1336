"""Explain a cohort: many studies, one model, resumable, one bad study never stops the rest.

The same runner serves ``medattr explain-cohort`` and the MONAI bundle
(``bundles/medattr_explain``). Layout of the output directory::

    DIR/cohort_summary.json     run settings, counts, one row per study (rewritten atomically
    DIR/cohort_summary.csv      after every study, so an interrupted run leaves a valid summary)
    DIR/<study_id>/manifest.json         the pipeline's manifest (inputs, model, delta, timings)
    DIR/<study_id>/cohort_record.json    SHA-256 of every output + the run's fingerprint
    DIR/<study_id>/<name>_attr.nii.gz …  the outputs

A study directory appears whole or not at all (written beside it, then renamed into place).
A re-run skips studies whose outputs are complete and verified (record, fingerprint and every
SHA-256 match) and recomputes the others; changing the method, baseline, steps, weights or
outputs changes the fingerprint, while device, batch size and memory budget do not.

Statuses: ``done`` (computed now), ``skipped`` (complete from an earlier run), ``failed``
(``error``: the error's type and message, no traceback, the input path replaced by
``<input>``, identifiers redacted and third-party text withheld; ``error_kind``: who can fix
it, see :func:`medattr.failures.classify`) and ``pending`` (not reached yet). Under
``torchrun`` the studies are shared by rank (``split="studies"``), or every rank works on
every study, splitting its path points (``split="paths"``, when the explainer's
``config.distributed_paths`` is set).

Examples
--------
>>> from medattr.cohort import load_cohort, CohortRunner
>>> from medattr.pipeline import Explainer, ExplainConfig
>>> entries = load_cohort("data/datalist.json", section="test")  # doctest: +SKIP
>>> summary = CohortRunner(Explainer("builtin:phantom"), "out")(entries)  # doctest: +SKIP
>>> summary.counts, summary.exit_code  # doctest: +SKIP
({'done': 40, 'skipped': 0, 'failed': 0, 'pending': 0}, 0)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medattr._fs import (
    atomic_write_text,
    partial_directory,
    probe_output_dir,
    replace_directory,
)
from medattr._version import __version__
from medattr.cohort.datalist import CohortEntry, load_cohort
from medattr.cohort.distributed import (
    barrier,
    broadcast_object,
    rank_and_world,
)
from medattr.cohort.pipelined import run_pipelined
from medattr.cohort.records import (
    RECORD_NAME,
    hash_outputs,
    run_fingerprint,
    verify_study,
    write_summary,
)
from medattr.errors import InputError, ResourceError
from medattr.explain import ExplainConfig, Explainer, StudyResult
from medattr.failures import REPORT_HINT, classify
from medattr.io import read_study
from medattr.phi import redact, redact_json
from medattr.volume import Volume

__all__ = [
    "EXIT_ALL_OK",
    "EXIT_STUDIES_FAILED",
    "SUMMARY_STEM",
    "CohortRunner",
    "CohortSummary",
    "run_cohort",
]

log = logging.getLogger("medattr.cohort")

SUMMARY_STEM = "cohort_summary"
EXIT_ALL_OK = 0
"""Exit status when every study is done or skipped."""
EXIT_STUDIES_FAILED = 3
"""Exit status when the run finished but at least one study failed (see the summary)."""

Reader = Callable[[CohortEntry], Volume]
Writer = Callable[..., dict[str, Any]]


@dataclass
class CohortSummary:
    """What a cohort run did.

    Attributes
    ----------
    studies
        One row per study in cohort order (``study_id``, ``status``, ``input``, timings,
        ``convergence_delta``, ``error`` …), as in ``cohort_summary.json``.
    counts
        Number of studies per status.
    json_path, csv_path
        The summary files (``None`` on ranks that do not write them).
    """

    studies: list[dict[str, Any]]
    counts: dict[str, int]
    json_path: Path | None = None
    csv_path: Path | None = None
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_ALL_OK` or :data:`EXIT_STUDIES_FAILED`."""
        return EXIT_STUDIES_FAILED if self.failed else EXIT_ALL_OK


class CohortRunner:
    """Run one explainer over a cohort, one output directory per study.

    Parameters
    ----------
    explainer
        What computes and writes one study (model and settings).
    out_dir
        Output directory (created if needed).
    progress
        Progress bar with ETA on stderr: ``True``, ``False`` or ``None`` (when stderr is a
        terminal). Only rank 0 shows one.
    split
        How ranks of an initialised ``torch.distributed`` group share the work, decided by the
        explainer's ``config.distributed_paths``: ``"studies"`` (each rank takes its own
        studies: every ``world_size``-th, or the ``indices`` given to the call, e.g. from a
        ``DistributedSampler``) or ``"paths"`` (every rank runs every study and splits its path
        points; rank 0 decides what to skip and writes). Ignored without a process group.
        Given explicitly it must agree with the configuration.
    reader
        ``entry -> Volume``; default :func:`medattr.io.read_volume` with the entry's
        read options.
    writer
        ``(result, out_dir, extra_manifest=...) -> manifest``; default ``explainer.write``.
    prefetch
        Studies read and prepared ahead in background threads while the current one is
        attributed, the previous one being written meanwhile (0: one study at a time). Not
        used when ranks split each study's path points.
    """

    def __init__(
        self,
        explainer: Explainer,
        out_dir: str | os.PathLike[str],
        *,
        progress: bool | None = None,
        split: str | None = None,
        reader: Reader | None = None,
        writer: Writer | None = None,
        prefetch: int = 0,
    ) -> None:
        configured = "paths" if explainer.config.distributed_paths else "studies"
        split = configured if split is None else split
        if split not in ("studies", "paths"):
            raise InputError(f"split must be 'studies' or 'paths', got {split!r}")
        if split != configured:
            raise InputError(
                f"split={split!r} disagrees with the explainer's distributed_paths="
                f"{explainer.config.distributed_paths}; set ExplainConfig.distributed_paths"
            )
        self.explainer = explainer
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.split = split
        self.reader = reader or _read_entry
        self.writer = writer or explainer.write
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise InputError(f"prefetch must be an integer >= 0, got {prefetch!r}")
        self.prefetch = prefetch
        self._assets = explainer.assets()

    # ------------------------------------------------------------------ public
    def __call__(
        self, entries: Sequence[CohortEntry], indices: Iterable[int] | None = None
    ) -> CohortSummary:
        """Process ``entries`` (or this rank's ``indices`` of them); returns the summary."""
        out = self.out_dir
        probe_output_dir(out)  # creatable and writable, before any study is read
        ids = [e.study_id for e in entries]
        if len(set(ids)) != len(ids):
            raise InputError("study ids in a cohort must be unique")
        rank, world = rank_and_world()
        share = world > 1 and self.split == "studies"
        self._writes = world == 1 or share or rank == 0
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(out)
        barrier()
        if indices is not None:
            mine = [int(i) for i in indices]
        else:
            mine = list(range(rank, len(entries), world)) if share else list(range(len(entries)))
        bad = [i for i in mine if not 0 <= i < len(entries)]
        if bad:
            raise InputError(f"study indices {bad[:5]} are outside the cohort of {len(entries)}")
        self._header = self._describe(world)
        rows = {e.study_id: _pending(e) for e in entries}
        stem = f".{SUMMARY_STEM}.rank{rank}" if share else SUMMARY_STEM
        own = [entries[i].study_id for i in mine]
        bar = self._bar(len(mine), show=rank == 0)
        counted = {"failed": 0}

        def report(row: dict[str, Any]) -> None:
            rows[row["study_id"]] = row
            counted["failed"] += row["status"] == "failed"
            if self._writes:
                listed = [rows[s] for s in own] if share else list(rows.values())
                write_summary(out, self._header, listed, stem)
            if bar is not None:
                bar.set_postfix(failed=counted["failed"], refresh=False)
                bar.update(1)

        try:
            if self.prefetch > 0 and not (world > 1 and self.split == "paths"):
                run_pipelined(self, [entries[i] for i in mine], rank, report)
            else:
                for i in mine:
                    report(self._study(entries[i], rank, world))
        finally:
            if bar is not None:
                bar.close()
        if share:
            return self._merge(entries, rows, own, rank, world)
        return self._result(list(rows.values()), written=rank == 0)

    def fingerprint(self, entry: CohortEntry) -> str:
        """Hash of the settings, weights (the model's and every file the run's method,
        baseline and writers declare) and series choice that determine this study's outputs."""
        ex = self.explainer
        return run_fingerprint(
            ex.config.to_dict(),
            ex.model.sha256,
            entry.read_options,
            assets=self._assets,
            asset_settings=[n for n, s in ex.config.used_settings().items() if s.asset],
        )

    # ---------------------------------------------------------------- studies
    def _study(self, e: CohortEntry, rank: int, world: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        row = self.check(e, rank, world)
        if row["status"] == "skipped":
            return row
        try:
            loaded = self.load(e)
            result = self.compute(loaded)
            if self._writes:
                self._write(e, result, row, t0)
            else:
                row.update(_numbers(result))
            row["status"] = "done"
        except Exception as exc:  # any failure of one study must not stop the others
            self.fail(row, e, exc)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row

    def check(self, e: CohortEntry, rank: int = 0, world: int = 1) -> dict[str, Any]:
        """The study's row: ``skipped`` when its outputs are complete and verified, else
        ``pending`` with the fingerprint its outputs will carry."""
        fp = self.fingerprint(e)
        study_dir = self.out_dir / e.study_id
        if world > 1 and self.split == "paths":
            record = broadcast_object(verify_study(study_dir, fp)[0] if rank == 0 else None)
        else:
            record = verify_study(study_dir, fp)[0]
        if record is not None:
            log.debug("%s: complete, skipped", e.study_id)
            return {**_row_from(record), "status": "skipped", "rank": rank}
        return {**_pending(e), "fingerprint": fp, "rank": rank}

    def load(self, e: CohortEntry) -> tuple[Volume, Any, dict[str, float]]:
        """Read and prepare one study (safe to run in a background thread)."""
        t = time.perf_counter()
        volume = self.reader(e)
        self.explainer.check_formats(volume)
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        prepared = self.explainer.prepare(volume)
        return volume, prepared, {"read": read_s, "preprocess": time.perf_counter() - t}

    def compute(self, loaded: tuple[Volume, Any, dict[str, float]]) -> StudyResult:
        """Attribute a loaded study (on this thread: the device's)."""
        volume, prepared, timings = loaded
        result = self.explainer.explain(volume, prepared)
        result.timings = {**result.timings, **timings}
        result.timings = {"read": timings["read"], **result.timings}
        return result

    def fail(self, row: dict[str, Any], e: CohortEntry, exc: BaseException) -> None:
        """Mark ``row`` failed: who can fix it (``error_kind``) and the error's message,
        classified and redacted (no traceback, no paths, no identifiers)."""
        failure = classify(exc)
        if failure.kind == "internal":
            log.debug("%s failed", e.study_id, exc_info=exc)
        row.update(status="failed", error=_clean_error(exc, e), error_kind=failure.kind)
        log.warning("%s failed: %s", e.study_id, row["error"])

    def _write(self, e: CohortEntry, result: StudyResult, row: dict[str, Any], t0: float) -> None:
        """Outputs, manifest and record into a hidden directory, then renamed into place."""
        tmp = partial_directory(self.out_dir, f".{e.study_id}.partial-")
        try:
            cohort = {"study_id": e.study_id, "fingerprint": row["fingerprint"]}
            manifest = self.writer(result, tmp, extra_manifest={"cohort": cohort})
            row.update(_numbers(result))
            row["timings_s"] = manifest.get("timings_s", {})
            row["seconds"] = round(time.perf_counter() - t0, 3)
            record = {
                **redact_json(row),
                "status": "done",
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "sha256": hash_outputs(tmp),  # file names as they are: the resume checks them
            }
            atomic_write_text(tmp / RECORD_NAME, json.dumps(record, indent=2, default=str) + "\n")
            replace_directory(tmp, self.out_dir / e.study_id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    # ---------------------------------------------------------------- summary
    def _describe(self, world: int) -> dict[str, Any]:
        model = self.explainer.model
        return {
            "medattr_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": {"path": model.path, "sha256": model.sha256, "name": model.spec.name},
            "config": self.explainer.config.to_dict(),
            "world_size": world,
            "split": self.split if world > 1 else None,
        }

    def _merge(
        self,
        entries: Sequence[CohortEntry],
        rows: dict[str, dict[str, Any]],
        own: list[str],
        rank: int,
        world: int,
    ) -> CohortSummary:
        """After every rank finished: rank 0 merges the ranks' partial summaries."""
        barrier()
        if rank != 0:
            barrier()
            return self._result([rows[s] for s in own], written=False)
        merged = {e.study_id: _pending(e) for e in entries}
        for r in range(world):
            part = self.out_dir / f".{SUMMARY_STEM}.rank{r}.json"
            try:
                doc = json.loads(part.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("rank %d left no partial summary", r)
                continue
            for row in doc.get("studies", []):
                if row.get("study_id") in merged and row.get("status") != "pending":
                    merged[row["study_id"]] = row
        write_summary(self.out_dir, self._header, list(merged.values()), SUMMARY_STEM)
        for r in range(world):
            for suffix in (".json", ".csv"):
                (self.out_dir / f".{SUMMARY_STEM}.rank{r}{suffix}").unlink(missing_ok=True)
        barrier()
        return self._result(list(merged.values()), written=True)

    def _result(self, rows: list[dict[str, Any]], *, written: bool) -> CohortSummary:
        counts = {"done": 0, "skipped": 0, "failed": 0, "pending": 0}
        for row in rows:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        failed = [r["study_id"] for r in rows if r["status"] == "failed"]
        js = self.out_dir / f"{SUMMARY_STEM}.json" if written else None
        cs = self.out_dir / f"{SUMMARY_STEM}.csv" if written else None
        return CohortSummary(rows, counts, js, cs, failed)

    def _bar(self, total: int, *, show: bool) -> Any:
        enabled = self.progress if self.progress is not None else sys.stderr.isatty()
        if not (show and enabled):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="studies", unit="study", file=sys.stderr, dynamic_ncols=True)


def run_cohort(
    datalist: str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    model: Any,
    config: ExplainConfig | None = None,
    *,
    section: str | Sequence[str] = "test",
    base_dir: str | os.PathLike[str] | None = None,
    study_ids: str = "hash",
    read_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    split_paths: bool = False,
) -> CohortSummary:
    """Load a cohort and explain it (see :func:`load_cohort` and :class:`CohortRunner`).

    ``split_paths=True`` (under ``torchrun``): every rank works on every study, splitting its
    path points (``config.distributed_paths``); otherwise ranks share the studies.
    """
    entries = load_cohort(
        datalist,
        section=section,
        base_dir=base_dir,
        study_ids=study_ids,
        read_options=read_options,
    )
    config = config or ExplainConfig()
    if split_paths:
        config = config.replace(distributed_paths=True)
    return CohortRunner(Explainer(model, config), out_dir, progress=progress)(entries)


# -------------------------------------------------------------------- helpers
def _read_entry(e: CohortEntry) -> Volume:
    return read_study(e.image, **e.read_options)


def _pending(e: CohortEntry) -> dict[str, Any]:
    return {
        "study_id": e.study_id,
        "index": e.index,
        "status": "pending",
        "input": e.source,
        "label": e.label,
        "output_dir": e.study_id,
    }


def _numbers(result: StudyResult) -> dict[str, Any]:
    s = result.explanation.summary()
    return {
        "f_input": s["f_input"][0],
        "f_baseline": s["f_baseline"][0],
        "convergence_delta": s["convergence_delta"][0],
        "relative_delta": s["relative_delta"][0],
        "method": result.config.method,
        "baseline": result.baseline_info.get("name", result.config.baseline),
    }


def _row_from(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "sha256"}


def _clean_error(exc: BaseException, e: CohortEntry) -> str:
    """``Type: message`` without a traceback, the study's input path replaced by ``<input>``,
    safe to keep (:func:`medattr.failures.classify`: identifiers redacted, third-party text
    withheld); internal errors carry the hint to report them."""
    failure = classify(exc)
    if isinstance(exc, InputError | ResourceError):
        message = redact(exc.problem)
        if exc.path is not None:
            message = f"{_relative(exc.path, e)}: {message}"
        text = f"{type(exc).__name__}: {message}"
    elif failure.kind == "internal":
        text = f"internal error: {failure.message} ({REPORT_HINT})"
    else:
        text = f"{type(exc).__name__}: {failure.message}"
    for path in sorted(_input_paths(e), key=len, reverse=True):
        text = text.replace(path, "<input>")
    return redact(text).strip()


def _input_paths(e: CohortEntry) -> list[str]:
    images = e.image if isinstance(e.image, list) else [e.image]
    out = [str(p) for p in images]
    out += [str(Path(p).resolve()) for p in images]
    return [p for p in out if p]


def _relative(path: str, e: CohortEntry) -> str:
    for root in _input_paths(e):
        if path == root:
            return "<input>"
        if path.startswith(root.rstrip("/") + "/"):
            return "<input>/" + path[len(root.rstrip("/")) + 1 :]
    return Path(path).name


def _remove_leftovers(out: Path) -> None:
    """Hidden partial/old study directories and rank summaries of an interrupted run."""
    for p in out.iterdir():
        name = p.name
        if not name.startswith("."):
            continue
        if p.is_dir() and (".partial-" in name or ".old-" in name):
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_file() and name.startswith(f".{SUMMARY_STEM}.rank"):
            p.unlink(missing_ok=True)
