"""Per-study records of a cohort run: fingerprints, output hashes, verification, summaries.

A finished study directory holds the pipeline's
``manifest.json`` and a ``cohort_record.json`` listing the SHA-256 of every file in the
directory and the fingerprint of the run that made them; a study counts as complete only when
all of those still match.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medattr._fs import atomic_write_text
from medattr.models.loading import asset_sha256, file_sha256
from medattr.phi import redact_json

__all__ = [
    "CSV_COLUMNS",
    "RECORD_NAME",
    "VOLATILE_CONFIG_KEYS",
    "aggregate_timings",
    "hash_outputs",
    "read_record",
    "run_fingerprint",
    "verify_study",
    "write_summary",
]

RECORD_NAME = "cohort_record.json"
"""Name of the per-study record, written after the outputs and the manifest."""

VOLATILE_CONFIG_KEYS = ("device", "progress", "internal_batch_size", "memory_budget")
"""Settings left out of the fingerprint: they change speed or memory, not the result (beyond
float rounding), so a resumed run may use another device or batch size."""

CSV_COLUMNS = (
    "study_id",
    "status",
    "input",
    "label",
    "seconds",
    "f_input",
    "f_baseline",
    "convergence_delta",
    "relative_delta",
    "error",
    "error_kind",
    "output_dir",
)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def run_fingerprint(
    config: Mapping[str, Any],
    model_sha256: str,
    read_options: Mapping[str, Any],
    *,
    assets: Mapping[str, str] | None = None,
    asset_settings: Iterable[str] = (),
) -> str:
    """Hash of everything that determines a study's outputs: the settings (device, batch size
    and memory budget left out), the model's weights, the series choice, and the SHA-256 of
    every file the run's entries declare (:meth:`~medattr.Explainer.assets`: the weights of a
    generative baseline, a baseline volume …), whatever the entry is called. Settings that
    name such files (``asset_settings``) are identified by the files' contents, not by path.
    """
    drop = set(VOLATILE_CONFIG_KEYS) | set(asset_settings)
    cfg = {k: v for k, v in config.items() if k not in drop}
    payload = {
        "config": cfg,
        "model_sha256": model_sha256,
        "assets": {k: asset_sha256(v) or str(v) for k, v in sorted((assets or {}).items())},
        "read_options": dict(read_options),
    }
    return hashlib.sha256(_canonical(payload).encode("utf-8")).hexdigest()


def hash_outputs(study_dir: Path) -> dict[str, str]:
    """SHA-256 of every non-hidden file under ``study_dir`` but the record, by relative path."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(study_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or (Path(root) == study_dir and name == RECORD_NAME):
                continue
            path = Path(root) / name
            out[path.relative_to(study_dir).as_posix()] = file_sha256(path)
    return out


def read_record(study_dir: Path) -> dict[str, Any] | None:
    """The study's record, or None when it is missing or unreadable."""
    try:
        data = json.loads((study_dir / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verify_study(study_dir: Path, fingerprint: str) -> tuple[dict[str, Any] | None, str]:
    """Whether ``study_dir`` holds complete outputs of this run; returns (record, reason).

    Complete means: ``manifest.json`` and the record exist, the record was made with the same
    fingerprint, every file it lists exists with the listed SHA-256, and every output named in
    the manifest is among them.
    """
    if not (study_dir / "manifest.json").is_file():
        return None, "no manifest"
    record = read_record(study_dir)
    if record is None or record.get("status") != "done":
        return None, "no record"
    if record.get("fingerprint") != fingerprint:
        return None, "made with other settings or weights"
    listed = record.get("sha256")
    if not isinstance(listed, dict) or "manifest.json" not in listed:
        return None, "record lists no outputs"
    for rel, digest in listed.items():
        path = study_dir / rel
        if not path.is_file():
            return None, f"output {rel} is missing"
        if file_sha256(path) != digest:
            return None, f"output {rel} changed since it was written"
    try:
        manifest = json.loads((study_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "manifest unreadable"
    for key, name in manifest.get("outputs", {}).items():
        if key != "dicom_files" and isinstance(name, str) and name not in listed:
            if not any(rel.startswith(f"{name}/") for rel in listed):
                return None, f"output {name} is not in the record"
    return record, "complete"


def _csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in CSV_COLUMNS})
    return buf.getvalue()


def aggregate_timings(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds per stage over the studies computed in this run (``status == "done"``): the
    total, the mean and the number of studies, by stage (load, preprocess, baseline,
    attribution, map back, each writer)."""
    per: dict[str, list[float]] = {}
    for row in rows:
        if row.get("status") != "done":
            continue
        for stage, seconds in (row.get("timings_s") or {}).items():
            if isinstance(seconds, int | float):
                per.setdefault(stage, []).append(float(seconds))
    return {
        stage: {"total": round(sum(v), 4), "mean": round(sum(v) / len(v), 4), "studies": len(v)}
        for stage, v in per.items()
    }


def write_summary(
    out_dir: Path, header: Mapping[str, Any], rows: list[dict[str, Any]], stem: str
) -> dict[str, Any]:
    """Write ``<stem>.json`` and ``<stem>.csv`` atomically (every string redacted, see
    :func:`medattr.phi.redact_json`); returns the JSON document."""
    counts: dict[str, int] = {"done": 0, "skipped": 0, "failed": 0, "pending": 0}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    rows = redact_json(rows)
    doc = {
        **redact_json(dict(header)),
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "counts": counts,
        "timings_s": aggregate_timings(rows),
        "studies": rows,
    }
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(doc, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / f"{stem}.csv", _csv_text(rows))
    return doc
