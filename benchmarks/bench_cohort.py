"""Benchmark: a cohort with studies read ahead and written behind, against one at a time.

Twenty generated brain studies (64^3 voxels of 3 mm, written as NIfTI like a real cohort) are
explained with the shipped brain classifier (``builtin:mni``), IG with a blur baseline, and the
NIfTI and PNG outputs, by ``medattr.cohort.CohortRunner`` with ``prefetch=0`` (read, explain,
write, one study after the other) and ``prefetch=N`` (the next studies read and prepared in
background threads while one is attributed, the previous one written meanwhile). Each run
starts from an empty output directory, after one uncounted warm-up; the two take turns for
``--rounds`` rounds (A B, then B A), so the ratio is measured under the same machine load.
Reported: the wall time of each run (median over rounds), their ratio, and the fraction of
the wall time spent in the attribution stage (the device's work) in each.

Examples
--------
CPU::

    python benchmarks/bench_cohort.py --json cohort_cpu.json --markdown cohort_cpu.md

GPU::

    python benchmarks/bench_cohort.py --device cuda --steps 64 --json cohort_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _studies(folder: Path, n: int) -> list[str]:
    from medattr.io import write_nifti
    from medattr.synthetic import make_mni_study

    paths = []
    for k in range(n):
        study = make_mni_study(700_000 + k, lesion=k % 2 == 0)
        path = folder / f"study{k:02d}.nii.gz"
        write_nifti(path, study.image.array[0], study.image.affine)
        paths.append(str(path))
    return paths


def _run(args: argparse.Namespace, paths: list[str], out: Path, prefetch: int) -> dict[str, Any]:
    from medattr import ExplainConfig, Explainer
    from medattr.cohort import CohortRunner, load_cohort

    config = ExplainConfig(
        method="ig",
        baseline="blur",
        n_steps=args.steps,
        device=args.device,
        formats=("nifti", "png"),
        progress=False,
    )
    explainer = Explainer("builtin:mni", config)
    entries = load_cohort(paths, base_dir=out.parent)
    t0 = time.perf_counter()
    summary = CohortRunner(explainer, out, prefetch=prefetch)(entries)
    wall = time.perf_counter() - t0
    attribution = sum(r["timings_s"]["attribution"] for r in summary.studies)
    return {
        "wall_s": wall,
        "attribution_s": attribution,
        "attribution_fraction": attribution / wall,
        "done": summary.counts["done"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--studies", type=int, default=20)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    import torch

    runs: dict[int, list[dict[str, Any]]] = {0: [], args.prefetch: []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = _studies(root, args.studies)
        _run(args, paths[:2], root / "warm-up", 0)  # imports, first calls: not counted
        for r in range(args.rounds):
            order = [0, args.prefetch] if r % 2 == 0 else [args.prefetch, 0]
            for prefetch in order:
                out = root / f"out_{prefetch}"
                shutil.rmtree(out, ignore_errors=True)
                runs[prefetch].append(_run(args, paths, out, prefetch))
    serial, ahead = runs[0], runs[args.prefetch]
    wall_serial = statistics.median(x["wall_s"] for x in serial)
    wall_ahead = statistics.median(x["wall_s"] for x in ahead)
    ratios = [a["wall_s"] / s["wall_s"] for a, s in zip(ahead, serial, strict=True)]
    device = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    report = {
        "device": device,
        "torch": torch.__version__,
        "studies": args.studies,
        "steps": args.steps,
        "prefetch": args.prefetch,
        "rounds": args.rounds,
        "serial": serial,
        "prefetched": ahead,
        "wall_serial_s": wall_serial,
        "wall_prefetched_s": wall_ahead,
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "attribution_fraction_serial": statistics.median(x["attribution_fraction"] for x in serial),
        "attribution_fraction_prefetched": statistics.median(
            x["attribution_fraction"] for x in ahead
        ),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(_markdown(report))
    return 0


def _markdown(r: dict[str, Any]) -> str:
    return (
        f"Device: {r['device']}, torch {r['torch']}. {r['studies']} studies (64^3, builtin:mni), "
        f"IG {r['steps']} points, blur baseline, NIfTI + PNG outputs; medians of "
        f"{r['rounds']} interleaved rounds.\n\n"
        "| cohort | wall time | attribution share of the wall time |\n| --- | --- | --- |\n"
        f"| one study at a time | {r['wall_serial_s']:.1f} s | "
        f"{100 * r['attribution_fraction_serial']:.0f} % |\n"
        f"| prefetch {r['prefetch']} (read ahead, write behind) | {r['wall_prefetched_s']:.1f} s"
        f" | {100 * r['attribution_fraction_prefetched']:.0f} % |\n"
        f"| ratio (prefetched / serial, paired) | **{r['ratio_median']:.2f}x** | |\n"
    )


if __name__ == "__main__":
    sys.exit(main())
