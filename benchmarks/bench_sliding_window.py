"""Benchmark: sliding-window attribution at clinical size.

A generated CT of 512 x 512 x 300 voxels of 0.8 x 0.8 x 1.5 mm goes through a spleen-sized MONAI
UNet (channels 16-32-64-128-256, strides 2, two residual units; ``--net small`` for a lighter
one; seeded random weights, eval mode) applied by 96^3 windows at 1.5 mm (MONAI's
SlidingWindowInferer: sw_batch_size 4, overlap 0.25), explained with Integrated Gradients for
a segmentation target (the sum of one label's logits over the region the network predicts)
against a zero baseline.

Three measurements, each in its own process so each memory peak is its own:

* ``raw``: one forward and backward of the network on one window batch (sw_batch_size windows),
  repeated for every window batch of the volume: the cost per path point no engine can beat,
  and the peak resident memory of one window batch;
* ``medattr``: ``medattr.Explainer`` on the study (read, resample to 1.5 mm, the path points, the
  mapping back), reporting the seconds per path point of the attribution stage and its peak
  resident memory;
* the ratio of the two per-point costs (target <= 1.2) and of the memory peaks (a small
  multiple of one window batch whatever the volume).

``--steps`` path points are computed (32 for the issue's setting; fewer make a CPU run
feasible: the per-point cost does not depend on the number of points).

Examples
--------
CPU (a few points; about 20 minutes on two cores)::

    python benchmarks/bench_sliding_window.py --steps 2 --json sw_cpu.json --markdown sw_cpu.md

GPU::

    python benchmarks/bench_sliding_window.py --device cuda --steps 32 --json sw_gpu.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


NETS = {
    # MONAI's spleen_ct_segmentation bundle's UNet
    "spleen": {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2},
    # a lighter UNet of the same family, for CPU runs at full volume size
    "small": {"channels": (8, 16, 32, 64), "strides": (2, 2, 2), "num_res_units": 1},
}


def _network(kind: str) -> Any:
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    return UNet(3, 1, 2, **NETS[kind]).eval()


def _write_ct(path: Path, shape: tuple[int, int, int], spacing: tuple[float, ...]) -> None:
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    grid = np.indices(shape, dtype=np.float32)
    centre = [(s - 1) / 2 for s in shape]
    r = np.sqrt(
        sum(((g - c) * sp / 150.0) ** 2 for g, c, sp in zip(grid, centre, spacing, strict=True))
    )
    data = np.where(r < 1.0, 40.0, -1000.0).astype(np.float32)
    data += rng.normal(0, 10, shape).astype(np.float32)
    organ = np.sqrt(
        sum(((g - c) * sp / 40.0) ** 2 for g, c, sp in zip(grid, centre, spacing, strict=True))
    )
    data[organ < 1.0] += 60.0
    nib.save(nib.Nifti1Image(data, np.diag([*spacing, 1.0])), str(path))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _raw(args: argparse.Namespace, queue: Any) -> None:
    import torch
    from monai.data.utils import dense_patch_slices

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    net = _network(args.net).to(dev)
    for p in net.parameters():
        p.requires_grad_(False)
    roi = (args.roi,) * 3
    size = tuple(round(n * s / 1.5) for n, s in zip(args.shape, args.spacing, strict=True))
    size = tuple(max(a, r) for a, r in zip(size, roi, strict=True))
    interval = tuple(max(int(r * 0.75), 1) for r in roi)
    windows = len(dense_patch_slices(size, roi, interval))
    batches = -(-windows // 4)
    x = torch.rand(4, 1, *roi, device=dev, requires_grad=True)
    net(x)[:, 1].sum().backward()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.raw_batches):
        x.grad = None
        net(x)[:, 1].sum().backward()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_batch = (time.perf_counter() - t0) / args.raw_batches
    queue.put(
        {
            "model_grid": list(size),
            "windows_per_point": windows,
            "window_batches_per_point": batches,
            "seconds_per_window_batch": per_batch,
            "raw_seconds_per_point": per_batch * batches,
            "peak_mib": _peak_mib(),
        }
    )


def _medattr(args: argparse.Namespace, study: str, queue: Any) -> None:
    import torch

    from medattr import ExplainConfig, Explainer
    from medattr.models import ModelSpec
    from medattr.models.loading import from_module

    torch.set_num_threads(args.threads)
    spec = ModelSpec(
        task="segmentation",
        class_names=["background", "organ"],
        pixdim=(1.5, 1.5, 1.5),
        intensity={"a_min": -57, "a_max": 164},
        inferer={"roi_size": [args.roi] * 3, "sw_batch_size": 4, "overlap": 0.25},
    )
    model = from_module(_network(args.net), args.device, spec)
    config = ExplainConfig(
        baseline="zero",
        target=1,
        n_steps=args.steps,
        device=args.device,
        formats=("nifti",),
        display_mapping="adjoint",  # the NIfTI output uses the adjoint anyway
    )
    explainer = Explainer(model, config)
    from medattr import read_volume

    volume = read_volume(study)
    result = explainer.explain(volume)
    exp = result.explanation
    queue.put(
        {
            "steps": args.steps,
            "chunk_sizes": exp.chunk_sizes,
            "attribution_seconds": result.timings["attribution"],
            # the path points alone (the engine's run); the stage also evaluates f at the
            # input and at the baseline, a forward over every window each
            "engine_seconds": exp.extras["engine_seconds"],
            "seconds_per_point": exp.extras["engine_seconds"] / exp.n_evaluations,
            "timings_s": result.timings,
            "relative_delta": float(exp.relative_delta[0]),
            "peak_mib": _peak_mib(),
        }
    )


def _run(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    p.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.5])
    p.add_argument("--roi", type=int, default=96, help="window edge in voxels (at 1.5 mm)")
    p.add_argument("--net", choices=sorted(NETS), default="spleen")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--raw-batches", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "ct.nii.gz"
        _write_ct(study, tuple(args.shape), tuple(args.spacing))
        raw = _run(_raw, args)
        ours = _run(_medattr, args, str(study))
    import torch

    device = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {args.threads} threads)"
    )
    report = {
        "device": device,
        "torch": torch.__version__,
        "study": {"shape": args.shape, "spacing_mm": args.spacing},
        "roi": args.roi,
        "net": {
            "kind": args.net,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in NETS[args.net].items()},
        },
        "raw": raw,
        "medattr": ours,
        "time_ratio": ours["seconds_per_point"] / raw["raw_seconds_per_point"],
        "memory_ratio": ours["peak_mib"] / raw["peak_mib"],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(_markdown(report))
    return 0


def _markdown(r: dict[str, Any]) -> str:
    raw, ours = r["raw"], r["medattr"]
    return (
        f"Device: {r['device']}, torch {r['torch']}. MONAI UNet {r['net']}. "
        f"Study {r['study']['shape']} voxels of "
        f"{r['study']['spacing_mm']} mm; model grid {raw['model_grid']} at 1.5 mm; "
        f"{raw['windows_per_point']} windows of {r['roi']}^3 per path point "
        f"({raw['window_batches_per_point']} batches of 4).\n\n"
        "| | seconds per path point | peak resident memory |\n| --- | --- | --- |\n"
        f"| raw window forward + backward | {raw['raw_seconds_per_point']:.1f} | "
        f"{raw['peak_mib']:.0f} MiB (one window batch) |\n"
        f"| medattr IG, path points ({ours['steps']}, chunks {ours['chunk_sizes']}) | "
        f"{ours['seconds_per_point']:.1f} | {ours['peak_mib']:.0f} MiB (whole run) |\n"
        f"| ratio | **{r['time_ratio']:.2f}x** | **{r['memory_ratio']:.1f}x** |\n\n"
        f"The attribution stage took {ours['attribution_seconds']:.0f} s in all: "
        f"{ours['engine_seconds']:.0f} s for the path points, the rest for f at the input and "
        "at the baseline (a forward over every window each, amortised over the points).\n"
    )


if __name__ == "__main__":
    sys.exit(main())
