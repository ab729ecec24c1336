"""Copy the shipped weights into a bundle's ``models/`` (and check that they match).

The ``medattr_explain`` bundle carries the same files medattr ships in ``medattr/assets``:
``models/model.ts`` (the classifier) and ``models/vae.ts`` (its healthy-only VAE). Run after
(re)training the shipped models::

    python -m medattr.bundle.sync_models                 # copy, verify SHA-256
    python -m medattr.bundle.sync_models --check         # exit 1 if the bundle is stale
    python -m medattr.bundle.sync_models --update-metadata   # also refresh eval_metrics
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medattr._fs import atomic_path, atomic_write_text
from medattr.errors import ModelError
from medattr.models.loading import builtin_model_path, file_sha256

__all__ = ["BUNDLE_MODELS", "default_bundle_dir", "model_sources", "sync_models"]

BUNDLE_MODELS = {"model.ts": "mni", "vae.ts": "mni-vae"}
"""Bundle file -> built-in model name it is a copy of."""


def default_bundle_dir() -> Path:
    """``bundles/medattr_explain`` of the source checkout this package runs from."""
    return Path(__file__).resolve().parents[2] / "bundles" / "medattr_explain"


def model_sources(classifier: str = "mni", vae: str = "mni-vae") -> dict[str, Path]:
    """Bundle file name -> path of the shipped asset it copies."""
    return {"model.ts": builtin_model_path(classifier), "vae.ts": builtin_model_path(vae)}


def sync_models(
    bundle_dir: str | Path | None = None,
    *,
    classifier: str = "mni",
    vae: str = "mni-vae",
    check: bool = False,
) -> dict[str, dict[str, Any]]:
    """Copy (or with ``check``, only compare) the shipped weights into ``bundle_dir/models``.

    Returns, per bundle file, the source, its SHA-256 and whether the bundle copy matched
    before this call.

    Raises
    ------
    ModelError
        If a shipped asset is missing, or a copy does not hash like its source.
    """
    models = Path(bundle_dir or default_bundle_dir()) / "models"
    report: dict[str, dict[str, Any]] = {}
    for name, src in model_sources(classifier, vae).items():
        if not src.is_file():
            raise ModelError("shipped model not found (train it first)", src)
        want = file_sha256(src)
        dest = models / name
        matched = dest.is_file() and file_sha256(dest) == want
        if not check and not matched:
            with atomic_path(dest, suffix=".ts") as tmp:
                shutil.copyfile(src, tmp)
                if file_sha256(tmp) != want:
                    raise ModelError("copy does not match its source (disk error?)", dest)
        report[name] = {"source": str(src), "sha256": want, "matched": matched}
    return report


def update_metadata(bundle_dir: str | Path | None = None) -> dict[str, Any]:
    """Set ``eval_metrics`` in ``configs/metadata.json`` from the metrics the weights carry."""
    from medattr.bundle.training import stored_metrics

    root = Path(bundle_dir or default_bundle_dir())
    meta_path = root / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    clf = stored_metrics(root / "models" / "model.ts") or {}
    vae = stored_metrics(root / "models" / "vae.ts") or {}
    metrics: dict[str, Any] = {
        k: clf[k] for k in ("test_auc", "test_accuracy", "val_auc") if k in clf
    }
    metrics.update({f"vae_{k}": vae[k] for k in ("val_l1", "lesion_error_ratio") if k in vae})
    meta["eval_metrics"] = metrics
    atomic_write_text(meta_path, json.dumps(meta, indent=4) + "\n")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m medattr.bundle.sync_models", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bundle", type=Path, default=None, help="bundle directory")
    parser.add_argument("--classifier", default=BUNDLE_MODELS["model.ts"], help="built-in name")
    parser.add_argument("--vae", default=BUNDLE_MODELS["vae.ts"], help="built-in name")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    parser.add_argument(
        "--update-metadata", action="store_true", help="refresh eval_metrics in metadata.json"
    )
    args = parser.parse_args(argv)
    try:
        report = sync_models(
            args.bundle, classifier=args.classifier, vae=args.vae, check=args.check
        )
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, row in report.items():
        state = "up to date" if row["matched"] else ("STALE" if args.check else "copied")
        print(f"models/{name}: {state} (sha256 {row['sha256'][:16]}…, from {row['source']})")
    if args.update_metadata and not args.check:
        print(f"eval_metrics: {update_metadata(args.bundle)}")
    return 1 if args.check and not all(r["matched"] for r in report.values()) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
