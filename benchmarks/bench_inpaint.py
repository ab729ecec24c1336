"""Mask-and-infill counterfactuals on a validation set of their own: does the mask find the
lesion, does the infill remove it, and is everything else left alone?

Lesion studies (``--lesion-seed-base``, default 610000) and healthy studies
(``--healthy-seed-base``, default 611000) come from :func:`medattr.synthetic.make_mni_study`
on the classifier's grid. These seeds are disjoint from every shipped model's training and
validation seeds and from the baseline benchmark's test split (the classifier's test seeds
1000-1299 and the blocks from 3000000 on), so tuning on them never touches a test split.

Measured per lesion study: Dice of the anomaly mask against the true lesion (and the
fraction of the lesion it covers), and for each baseline (``inpaint``, the two ablations with
the same mask ``inpaint-mask-blur`` and ``inpaint-mask-vae``, the inpainter with the true
lesion mask as an upper bound for the mask, and optionally ``vae-guided-residual-masked``):
mean |x - x'| inside the brain outside the lesion, mean |x' - twin| inside the lesion against
the input's |x - twin|, p(disease | x') and whether it is still called diseased, and seconds
per study. Per healthy study: whether the mask is empty and the baseline is exactly the input.

Run (about 10 minutes for 40 + 40 studies on 2 CPU cores)::

    python benchmarks/bench_inpaint.py --out benchmarks/results/bench_inpaint_cpu.json \
        --figure benchmarks/results/bench_inpaint_examples.png
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

log = logging.getLogger("bench_inpaint")

FILLS = ("inpaint", "inpaint-mask-blur", "inpaint-mask-vae")


def _mean(x: torch.Tensor, m: torch.Tensor) -> float:
    return float(x[m].double().mean()) if bool(m.any()) else float("nan")


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def _summary(rows: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    from medattr.metrics import bootstrap_ci

    vals = [r[key] for r in rows if key in r and r[key] is not None]
    vals = [float(v) for v in vals if not (isinstance(v, float) and np.isnan(v))]
    if not vals:
        return None
    ci = bootstrap_ci(np.asarray(vals), n_boot=2000, seed=0)
    return {"mean": ci.mean, "lo": ci.lo, "hi": ci.hi, "n": len(vals)}


def _studies(spec: Any, base: int, n: int, lesion: bool) -> list[Any]:
    from medattr.benchmarking.studies import load_study
    from medattr.errors import InputError

    out: list[Any] = []
    seed = base
    while len(out) < n:
        try:
            out.append(load_study(spec, "mni", seed, lesion))
        except InputError:
            log.info("seed %d skipped (no lesion placement)", seed)
        seed += 1
        if seed - base > 3 * n + 10:
            raise RuntimeError(f"too few studies from seed {base}")
    return out


def _p_disease(model: Any, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(x).float(), 1)[0, 1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from medattr.baselines import BaselineContext
    from medattr.baselines.counterfactual.inpaint import (
        InpaintCounterfactualBaseline,
        MaskedBlurBaseline,
        MaskedVAEBaseline,
    )
    from medattr.generative import load_inpainter, load_vae
    from medattr.models import load_model

    torch.set_num_threads(args.threads)
    clf = load_model(args.classifier)
    model = clf.module
    inp = load_inpainter(args.inpainter)
    vae = load_vae(args.vae)
    over = {
        "anomaly_threshold": args.anomaly_threshold,
        "rounds": args.rounds,
        "dilation_mm": args.dilation_mm,
    }
    if args.threshold_factor is not None:
        over["anomaly_threshold"] = args.threshold_factor * float(
            (inp.calibration or {})["threshold"]
        )
    over = {k: v for k, v in over.items() if v is not None}
    fills = {
        "inpaint": InpaintCounterfactualBaseline(inp, feather_mm=args.feather_mm, **over),
        "inpaint-mask-blur": MaskedBlurBaseline(inp, feather_mm=args.feather_mm, **over),
        "inpaint-mask-vae": MaskedVAEBaseline(inp, vae=vae, feather_mm=args.feather_mm, **over),
    }
    masked_res = None
    if args.masked_residual:
        from medattr.baselines.counterfactual.masked_residual import VAEGuidedMaskedResidualBaseline

        masked_res = VAEGuidedMaskedResidualBaseline(
            vae, inp, max_steps=args.cf_steps, feather_mm=args.feather_mm, **over
        )
    main = fills["inpaint"]
    t0 = time.perf_counter()
    lesions = _studies(clf.spec, args.lesion_seed_base, args.n_lesion, True)
    healthy = _studies(clf.spec, args.healthy_seed_base, args.n_healthy, False)
    log.info(
        "generated %d + %d studies in %.0f s", len(lesions), len(healthy), time.perf_counter() - t0
    )
    sp = lesions[0].spacing
    ctx = BaselineContext(spacing=sp, forward_func=model)
    lesion_rows, healthy_rows, examples = [], [], []
    for k, st in enumerate(lesions):
        lesion, region = st.mask[0], st.region[0]
        outside = region & ~lesion
        row: dict[str, Any] = {"seed": st.seed, "lesion_voxels": int(lesion.sum())}
        row.update(
            (
                st.lesion
                and {"polarity": st.lesion.get("polarity"), "contrast": st.lesion.get("contrast")}
            )
            or {}
        )
        t = time.perf_counter()
        masks = main.masks(st.x, sp)
        row["seconds_mask"] = time.perf_counter() - t
        m = torch.from_numpy(masks[0].mask)
        row.update(
            mask_voxels=int(m.sum()),
            dice=_dice(m, lesion),
            lesion_covered=float((m & lesion).sum()) / max(int(lesion.sum()), 1),
            mask_steps=masks[0].steps,
            p_input=_p_disease(model, st.x),
            p_twin=_p_disease(model, st.twin),
            input_twin_error_lesion=_mean((st.x - st.twin).abs()[0, 0], lesion),
        )
        outs = {}
        for name, base in fills.items():
            t = time.perf_counter()
            res = base.from_masks(st.x, masks, None, sp)
            row[f"{name}:seconds"] = time.perf_counter() - t + row["seconds_mask"]
            outs[name] = res.baselines
        t = time.perf_counter()
        true_mask = torch.from_numpy(
            __import__("scipy").ndimage.binary_dilation(lesion.numpy(), iterations=1)
        )[None, None]
        outs["inpaint-true-mask"] = main.from_masks(st.x, true_mask, None, sp).baselines
        if masked_res is not None:
            t = time.perf_counter()
            res = masked_res.from_masks(st.x, m[None, None], ctx, sp)
            row["vae-guided-residual-masked:seconds"] = (
                time.perf_counter() - t + row["seconds_mask"]
            )
            outs["vae-guided-residual-masked"] = res.baselines
        for name, b in outs.items():
            d = (st.x - b).abs()[0, 0]
            row[f"{name}:distance_outside"] = _mean(d, outside)
            row[f"{name}:distance_lesion"] = _mean(d, lesion)
            row[f"{name}:twin_error_lesion"] = _mean((b - st.twin).abs()[0, 0], lesion)
            row[f"{name}:twin_error_outside"] = _mean((b - st.twin).abs()[0, 0], outside)
            p = _p_disease(model, b)
            row[f"{name}:p_disease"] = p
            row[f"{name}:still_diseased"] = float(p > 0.5)
        lesion_rows.append(row)
        if k < args.examples:
            examples.append((st, m, outs["inpaint"], outs["inpaint-mask-blur"]))
        log.info(
            "lesion %d/%d seed %d: dice %.2f covered %.2f, |x-x'| out %.4f, twin err %.3f -> "
            "%.3f, p %.2f -> %.2f (twin %.2f), %.1f s",
            k + 1,
            len(lesions),
            st.seed,
            row["dice"],
            row["lesion_covered"],
            row["inpaint:distance_outside"],
            row["input_twin_error_lesion"],
            row["inpaint:twin_error_lesion"],
            row["p_input"],
            row["inpaint:p_disease"],
            row["p_twin"],
            row["inpaint:seconds"],
        )
    for k, st in enumerate(healthy):
        t = time.perf_counter()
        res = main.generate(st.x, BaselineContext(spacing=sp))
        sec = time.perf_counter() - t
        unchanged = bool(torch.equal(res.baselines, st.x))
        healthy_rows.append(
            {
                "seed": st.seed,
                "mask_voxels": res.info["mask_voxels"][0],
                "empty_and_unchanged": float(res.info["mask_empty"][0] and unchanged),
                "p_input": _p_disease(model, st.x),
                "seconds": sec,
            }
        )
        log.info(
            "healthy %d/%d seed %d: mask %d voxels (%.1f s)",
            k + 1,
            len(healthy),
            st.seed,
            res.info["mask_voxels"][0],
            sec,
        )
    names = [*FILLS, "inpaint-true-mask"] + (["vae-guided-residual-masked"] if masked_res else [])
    keys = [
        "distance_outside",
        "distance_lesion",
        "twin_error_lesion",
        "twin_error_outside",
        "p_disease",
        "still_diseased",
        "seconds",
    ]
    summary: dict[str, Any] = {
        "mask": {
            k: _summary(lesion_rows, k)
            for k in ("dice", "lesion_covered", "mask_voxels", "lesion_voxels", "seconds_mask")
        },
        "input": {
            k: _summary(lesion_rows, k) for k in ("input_twin_error_lesion", "p_input", "p_twin")
        },
        "baselines": {n: {k: _summary(lesion_rows, f"{n}:{k}") for k in keys} for n in names},
        "healthy": {
            k: _summary(healthy_rows, k)
            for k in ("empty_and_unchanged", "mask_voxels", "p_input", "seconds")
        },
    }
    if args.figure and examples:
        _figure(examples, args.figure)
    return {
        "settings": {**vars(args), "anomaly": main.masker.describe()},
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": args.threads,
            "load_average_at_end": list(os.getloadavg()),
            "note": "this project's CPU machine, shared with other jobs while measuring",
        },
        "inpainter": inp.describe(),
        "summary": summary,
        "lesion_studies": lesion_rows,
        "healthy_studies": healthy_rows,
    }


def _figure(examples: list[Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["input", "mask", "inpaint x'", "|x - x'|", "twin", "blur-fill x'"]
    fig, axes = plt.subplots(
        len(examples), len(cols), figsize=(2.2 * len(cols), 2.3 * len(examples))
    )
    axes = np.atleast_2d(axes)
    for r, (st, m, b, blur) in enumerate(examples):
        k = int(st.mask[0].sum(dim=(0, 1)).argmax())
        x = st.x[0, 0, :, :, k].T
        panels = [
            x,
            x,
            b[0, 0, :, :, k].T,
            (st.x - b).abs()[0, 0, :, :, k].T,
            st.twin[0, 0, :, :, k].T,
            blur[0, 0, :, :, k].T,
        ]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            if c == 3:
                ax.imshow(img, cmap="magma", origin="lower", vmin=0, vmax=0.3)
            else:
                ax.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=1)
            if c == 1:
                ax.contour(m[:, :, k].T.float(), [0.5], colors="r", linewidths=0.8)
                ax.contour(st.mask[0, :, :, k].T.float(), [0.5], colors="c", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=9)
        axes[r, 0].set_ylabel(f"seed {st.seed}", fontsize=8)
    fig.suptitle("mask (red) vs true lesion (cyan)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--inpainter", default="builtin:mni-inpainter")
    p.add_argument("--classifier", default="builtin:mni")
    p.add_argument("--vae", default="builtin:mni-vae")
    p.add_argument("--n-lesion", type=int, default=40)
    p.add_argument("--n-healthy", type=int, default=40)
    p.add_argument("--lesion-seed-base", type=int, default=610_000)
    p.add_argument("--healthy-seed-base", type=int, default=611_000)
    p.add_argument("--feather-mm", type=float, default=4.5)
    p.add_argument("--anomaly-threshold", type=float, default=None, help="override (absolute)")
    p.add_argument(
        "--threshold-factor",
        type=float,
        default=None,
        help="override: this multiple of the calibrated threshold",
    )
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--dilation-mm", type=float, default=None)
    p.add_argument(
        "--masked-residual",
        action="store_true",
        help="also vae-guided-residual-masked (needs the classifier; slower)",
    )
    p.add_argument("--cf-steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--figure", default=None, help="PNG of example studies")
    p.add_argument("--out", default=None, help="JSON with every row and the summary")
    args = p.parse_args(argv)
    for n in ("lesion_seed_base", "healthy_seed_base"):
        v = getattr(args, n)
        if not 601_000 <= v < 3_000_000:  # the inpainter's own seeds are 600000-600799
            p.error(
                f"--{n.replace('_', '-')} {v} is outside the validation block [601000, 3000000)"
            )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args)
    text = json.dumps(result, indent=1, default=float)
    if args.out:
        from medattr._fs import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
