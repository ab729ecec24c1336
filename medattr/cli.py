"""The ``medattr`` command line.

Exit status (one mapping, :func:`medattr.failures.classify`): 0 on success; 2 when the user
or the machine can fix it — bad arguments or input, a bad model, or the environment (a
directory that cannot be written, a full disk, too little memory); a message names the file
or option and the problem, and nothing is written; 3 when a cohort finished but some studies
failed; 130 when interrupted; 1 on an internal error, with a hint to report it.

Everything that leaves the process passes :mod:`medattr.phi` (no patient identifiers, no raw
third-party text). Third-party loggers are shown from WARNING only, unless ``-v``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "configure_logging", "main"]

log = logging.getLogger("medattr")

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
"""Success, internal error, and every failure a user or the machine can fix (see
:data:`medattr.failures.EXIT_CODES`)."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _add_explain_options(p: argparse.ArgumentParser, *, cohort: bool = False) -> None:
    """Options of ``explain`` and ``explain-cohort``: every ExplainConfig setting (core and
    registered entries'), generated from their declarations, plus the run's files."""
    from medattr.explain.arguments import add_config_arguments

    exclude = () if cohort else ("distributed_paths",)
    groups = add_config_arguments(p, exclude=exclude)
    groups["output"].add_argument("--out", required=True, type=Path, help="output directory")
    groups["output"].add_argument(
        "--model-spec",
        default=None,
        help="JSON file with the model's input contract (overrides its metadata)",
    )


DEMO_RUNS = {"mni": ("builtin:mni", "inpaint"), "phantom": ("builtin:phantom", "blur")}
"""``medattr demo --kind``: the shipped model and the baseline each demo study is explained with."""


def build_parser() -> argparse.ArgumentParser:
    from medattr._version import __version__
    from medattr.attribution._auto import steps_value

    parser = argparse.ArgumentParser(
        prog="medattr",
        description="Counterfactual path attribution for 3D medical imaging.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"medattr {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output: -v medattr's debug messages, tracebacks and third-party "
        "messages; -vv everything",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only")
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="also write the log (with timestamps, at least medattr's INFO) to this file; "
        "identifiers are redacted as on stderr",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "explain",
        help="explain one study",
        formatter_class=_Formatter,
        description="Explain a model's output for one study (NIfTI file or DICOM series). Writes "
        "DIR/<name>_attr.nii.gz "
        "(attribution on the source grid, source affine), DIR/<name>_baseline.nii.gz, "
        "DIR/<name>_montage.png and DIR/manifest.json.",
    )
    p.add_argument(
        "input",
        type=Path,
        nargs="*",
        help="NIfTI file (.nii / .nii.gz), or a DICOM series: a directory (searched "
        "recursively), a file of the series or a DICOMDIR; for a multi-channel model one per "
        "channel (T1.nii.gz FLAIR.nii.gz, or one DICOM series directory each; a 4D NIfTI holds "
        "channels on its last axis)",
    )
    p.add_argument(
        "--input",
        dest="inputs",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="another input (channel), as the positional arguments",
    )
    g = p.add_argument_group("DICOM input")
    g.add_argument(
        "--series-uid", default=None, help="SeriesInstanceUID to read when several are present"
    )
    g.add_argument(
        "--series-description",
        default=None,
        help="pick the series whose description contains this text (case-insensitive)",
    )
    g.add_argument(
        "--resample",
        action="store_true",
        help="resample series with gaps, uneven spacing, tilt or mixed orientations onto a "
        "regular grid instead of refusing them",
    )
    p.add_argument(
        "--model",
        required=True,
        help="TorchScript file (as MONAI's ckpt_export writes), MONAI bundle directory, or "
        "builtin:phantom",
    )
    _add_explain_options(p)
    _add_explain_cohort_parser(sub)

    p = sub.add_parser(
        "demo",
        help="explain the embedded example study with the shipped model",
        formatter_class=_Formatter,
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output directory")
    p.add_argument(
        "--kind",
        choices=sorted(DEMO_RUNS),
        default="mni",
        help="mni: brain study, shipped brain classifier, local counterfactual baseline "
        "(inpaint: anomaly mask filled with healthy tissue); phantom: torso phantom, shipped "
        "phantom classifier, blur baseline",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument(
        "--steps", type=steps_value, default=32, help="path points, or auto (see explain --help)"
    )

    p = sub.add_parser(
        "make-dataset",
        help="write a seeded benchmark dataset (NIfTI + MONAI datalist)",
        formatter_class=_Formatter,
        description="Generate studies with exact ground truth (lesion mask and healthy twin): "
        "MNI152 brains (needs nilearn: pip install 'medattr[data]') or procedural torso phantoms. "
        "The same seed writes the same files.",
    )
    p.add_argument("out", type=Path, help="output directory (must not hold a dataset yet)")
    p.add_argument("--kind", choices=["mni", "phantom"], default="mni")
    p.add_argument("--n-train", type=int, default=100)
    p.add_argument("--n-val", type=int, default=20)
    p.add_argument("--n-test", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--lesion-fraction", type=float, default=0.5, help="share of studies with a lesion"
    )
    p.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("I", "J", "K"),
        help="grid shape (default: the generator's)",
    )
    p.add_argument("--spacing", type=float, default=None, help="voxel size in mm (isotropic)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--num-workers", type=int, default=0, help="parallel processes")

    p = sub.add_parser(
        "benchmark",
        help="compare baselines (zero, blur, noise, VAE counterfactuals, the true healthy "
        "twin) for IG, SmoothGrad, Split IG and Expected Gradients on held-out studies",
        formatter_class=_Formatter,
        description="Run (or resume) the baseline benchmark in --out: every method with every "
        "baseline on held-out generated studies with exact lesion masks; localisation, "
        "faithfulness and robustness metrics with 95 % bootstrap CIs; rows.jsonl, "
        "summary.json, results.md and PNG figures. An interrupted run resumes where it "
        "stopped (same settings). Sizes: --full (default; about an hour on 2 CPU cores with "
        "the shipped 64^3 models) or --quick (a smoke test).",
    )
    from medattr.benchmarking.config import add_arguments as add_benchmark_arguments

    add_benchmark_arguments(p)

    p = sub.add_parser("info", help="show a model's input contract", formatter_class=_Formatter)
    p.add_argument("model", help="TorchScript file, bundle directory or builtin:NAME")
    return parser


def _config_from_args(args: argparse.Namespace) -> Any:
    from medattr.explain.arguments import config_from_arguments

    return config_from_arguments(args)


def _check_out_dir(out: Path) -> None:
    """The output directory can be created and written (probed before any work)."""
    from medattr._fs import probe_output_dir

    probe_output_dir(out)


def _summary(manifest: dict[str, Any], out: Path) -> str:
    return (
        f"f(x) = {manifest['f_input']:.4f}, f(x') = {manifest['f_baseline']:.4f}, "
        f"sum(attr) = {manifest['attribution_sum_model_grid']:.4f}, "
        f"delta = {manifest['convergence_delta']:+.3e} "
        f"({100 * manifest['relative_delta']:.2f} % of |f(x) - f(x')|); "
        f"outputs in {out}"
    )


def _cmd_explain(args: argparse.Namespace) -> int:
    from medattr.errors import InputError
    from medattr.explain import Explainer

    inputs = [*args.input, *args.inputs]
    if not inputs:
        raise InputError("no input given: name a NIfTI file or a DICOM series")
    config = _config_from_args(args)
    _check_out_dir(args.out)
    explainer = Explainer(args.model, config, spec=args.model_spec)
    manifest = explainer.run(
        inputs if len(inputs) > 1 else inputs[0],
        args.out,
        series_uid=args.series_uid,
        series_description=args.series_description,
        resample=args.resample,
    )
    log.info(_summary(manifest, args.out))
    return EXIT_OK


# ----------------------------------------------------------------- explain-cohort
def _add_explain_cohort_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain-cohort",
        help="explain every study of a datalist (resumable; one failure never stops the rest)",
        formatter_class=_Formatter,
        description="Explain every study of a MONAI datalist, a JSON list of paths, or a "
        "directory (NIfTI files and DICOM study folders) into DIR/<study_id>/, with "
        "DIR/cohort_summary.json and .csv (status, timings and convergence delta per study). "
        "Re-running skips studies whose outputs are complete and verified (SHA-256 and "
        "settings). Under torchrun the studies are shared by the ranks, or with "
        "--distributed-paths every rank works on every study, splitting its path points.",
        epilog="exit status: 0 all studies done or skipped; 3 the run finished but some studies "
        "failed (listed in the summary); 2 bad arguments, datalist or model; 1 internal error",
    )
    p.add_argument(
        "datalist",
        type=Path,
        help="MONAI datalist JSON, JSON list of entries, or a directory (its datalist.json, "
        "else every NIfTI file and study subdirectory in it)",
    )
    p.add_argument(
        "--model",
        required=True,
        help="TorchScript file, MONAI bundle directory, or builtin:NAME",
    )
    g = p.add_argument_group("cohort")
    g.add_argument(
        "--section",
        default="test",
        help="datalist section(s) to run: a name, comma-separated names, or 'all'",
    )
    g.add_argument(
        "--base-dir",
        type=Path,
        default=None,
        help="base of relative paths in the datalist (default: the datalist's directory)",
    )
    g.add_argument(
        "--study-id",
        choices=["hash", "stem"],
        default="hash",
        help="id (output folder) of entries without an 'id' key: hash of the path as written "
        "(no identifiers), or the file/folder name (only if names carry no patient "
        "identifiers)",
    )
    g.add_argument(
        "--series-description",
        default=None,
        help="DICOM studies: pick the series whose description contains this text (an entry's "
        "own series_uid / series_description keys win)",
    )
    g.add_argument(
        "--resample",
        action="store_true",
        help="DICOM studies: resample irregular series onto a regular grid instead of failing",
    )
    g.add_argument(
        "--prefetch",
        type=int,
        default=1,
        metavar="N",
        help="studies read and prepared ahead in background threads while one is attributed "
        "(its predecessor is written meanwhile); 0 for one study at a time",
    )
    _add_explain_options(p, cohort=True)


def _cmd_explain_cohort(args: argparse.Namespace) -> int:
    from medattr.cohort import (
        CohortRunner,
        destroy_process_group,
        init_process_group_from_env,
        load_cohort,
    )
    from medattr.explain import Explainer

    config = _config_from_args(args)
    config.progress = False  # one bar for the cohort, not one per study
    _check_out_dir(args.out)
    options: dict[str, Any] = {"resample": True} if args.resample else {}
    if args.series_description:
        options["series_description"] = args.series_description
    entries = load_cohort(
        args.datalist,
        section=args.section,
        base_dir=args.base_dir,
        study_ids=args.study_id,
        read_options=options,
    )
    config.device, created = init_process_group_from_env(config.device)
    try:
        explainer = Explainer(args.model, config, spec=args.model_spec)
        runner = CohortRunner(explainer, args.out, progress=args.progress, prefetch=args.prefetch)
        summary = runner(entries)
    finally:
        if created:
            destroy_process_group()
    c = summary.counts
    if summary.json_path is not None:
        log.info(
            "%d done, %d skipped, %d failed of %d studies; summary in %s",
            c["done"],
            c["skipped"],
            c["failed"],
            len(entries),
            summary.json_path,
        )
    return summary.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from medattr.explain import ExplainConfig, Explainer
    from medattr.synthetic.demo import demo_study_path

    _check_out_dir(args.out)
    model, baseline = DEMO_RUNS[args.kind]
    config = ExplainConfig(
        method="ig",
        baseline=baseline,
        n_steps=args.steps,
        device=args.device,
        progress=True,
    )
    t = time.perf_counter()
    manifest = Explainer(model, config).run(demo_study_path(args.kind), args.out)
    log.info(_summary(manifest, args.out) + f" ({time.perf_counter() - t:.1f} s)")
    return EXIT_OK


def _cmd_make_dataset(args: argparse.Namespace) -> int:
    from medattr.synthetic import generate_dataset

    datalist = generate_dataset(
        args.out,
        kind=args.kind,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        seed=args.seed,
        lesion_fraction=args.lesion_fraction,
        shape=args.shape,
        spacing=args.spacing,
        overwrite=args.overwrite,
        num_workers=args.num_workers,
    )
    log.info("wrote %s", datalist)
    return EXIT_OK


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from medattr.benchmarking import config_from_args, run_benchmark, write_report

    if args.report_only:
        summary = write_report(args.out, docs=args.docs)
    else:
        summary = run_benchmark(config_from_args(args), args.out, docs=args.docs)
    log.info(
        "benchmark: %d lesion and %d healthy studies; report in %s",
        len(summary.get("studies", [])),
        len(summary.get("healthy_studies", [])),
        Path(args.out) / "results.md",
    )
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from medattr.models import load_model

    model = load_model(args.model)
    print(json.dumps(model.describe(), indent=2))
    return EXIT_OK


_HANDLERS: list[logging.Handler] = []


def configure_logging(verbose: int = 0, quiet: bool = False, log_file: Path | None = None) -> None:
    """Log to stderr (``medattr: message``) and optionally to ``log_file``, every record
    through :class:`medattr.phi.RedactingFilter`; third-party loggers (highdicom, pydicom,
    MONAI …) and captured warnings from WARNING only, unless ``verbose``.

    ``verbose=0``: medattr's INFO; ``1``: medattr's DEBUG and third-party INFO, tracebacks of
    internal errors; ``2``: everything. ``quiet``: errors only on stderr.
    """
    from medattr.phi import RedactingFilter

    root = logging.getLogger()
    for h in _HANDLERS:
        root.removeHandler(h)
        h.close()
    _HANDLERS.clear()
    for h in list(root.handlers):  # what an earlier basicConfig left
        root.removeHandler(h)
    third_party = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else 0
    own = logging.DEBUG if verbose else logging.INFO
    root.setLevel(third_party or logging.DEBUG)  # third-party records below it are not made
    logging.getLogger("medattr").setLevel(own)
    logging.captureWarnings(True)

    def add(handler: logging.Handler, fmt: str) -> None:
        handler.setFormatter(logging.Formatter(fmt))
        handler.addFilter(RedactingFilter(third_party_level=third_party))
        root.addHandler(handler)
        _HANDLERS.append(handler)

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.ERROR if quiet else logging.NOTSET)
    add(stderr, "medattr: %(message)s")
    if log_file is not None:  # after stderr: a log file that cannot be opened is reported there
        log_file.parent.mkdir(parents=True, exist_ok=True)
        add(
            logging.FileHandler(log_file, encoding="utf-8"),
            "%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _report(exc: BaseException, verbose: int) -> int:
    """Log ``exc`` as its kind of failure (:func:`medattr.failures.classify`); the status."""
    from medattr.failures import classify

    failure = classify(exc)
    if failure.kind == "internal" and verbose:
        log.error("%s", failure.line(), exc_info=exc)
    elif failure.kind == "internal":
        log.error("%s; run with -v for the traceback", failure.line())
    else:
        log.error("%s", failure.line())
    return failure.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medattr`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(exc.code or 0)
    try:
        configure_logging(args.verbose, args.quiet, args.log_file)
    except OSError as exc:
        return _report(exc, args.verbose)

    handlers = {
        "explain": _cmd_explain,
        "explain-cohort": _cmd_explain_cohort,
        "demo": _cmd_demo,
        "info": _cmd_info,
        "make-dataset": _cmd_make_dataset,
        "benchmark": _cmd_benchmark,
    }
    try:
        return handlers[args.command](args)
    except (Exception, KeyboardInterrupt) as exc:
        return _report(exc, args.verbose)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
