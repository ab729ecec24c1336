"""Probe: can a voxel-level lesion segmenter, trained on crops of the widened-lesion pairs, be
the brain classifier (its study score: the largest voxel logit)? A negative result, kept so that
it can be rerun; see ``docs/models.md`` ("A classifier for the widened lesions").

The data are the training and validation splits of ``--split-config`` (the widened-lesion
classifier config: 1600 subjects, each with and without its lesion; 200 validation studies),
rendered through :func:`medattr.training.data.render_split` (pass the same ``--cache`` as the
classifier training to reuse its renders). Each step takes ``--pairs`` lesion-centred crops of a
lesion study and the same crop of its twin, plus ``--random`` crops anywhere (lesion study or
twin, at random); the target of every voxel is "the pair differs here by more than 0.02". The
loss is binary cross-entropy with ``--pos-weight``, plus ``--dice`` times MONAI's soft Dice.
After every epoch the network runs on the whole validation volumes and prints the validation
AUC of four study scores (the largest voxel logit, the mean of the 30 largest, the largest
after a 3³ mean filter, a soft maximum ``4·logsumexp(e/4)``), and, from the training batches,
the mean logit on lesion voxels and on the rest and the largest on the rest.

Run (2 CPU cores, about 45 s per epoch at 24³ crops, 95 s at 32³)::

    python benchmarks/probe_voxel_segmenter.py --cache cache --epochs 10 --crop 24 \
        --pos-weight 30 --dice 1 --lr 1e-3 --schedule onecycle
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> None:
    from monai.losses import DiceLoss
    from monai.networks.nets import UNet

    from medattr.training.classifier import ClassifierTrainingConfig, _roc_auc
    from medattr.training.data import render_split

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--split-config", type=Path, default=Path("configs/train_mni_classifier_widened.json")
    )
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--crop", type=int, default=24)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--random", type=int, default=4)
    ap.add_argument("--pos-weight", type=float, default=30.0)
    ap.add_argument("--dice", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", choices=("onecycle", "constant"), default="onecycle")
    args = ap.parse_args(argv)
    print(json.dumps(vars(args), default=str), flush=True)

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = ClassifierTrainingConfig(**json.loads(args.split_config.read_text()))
    seeds, labels = cfg.split_seeds(), cfg.split_labels()
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim, **cfg.render_options}

    def split(name: str, arrays: tuple[str, ...]) -> dict[str, np.ndarray]:
        return render_split(
            cfg.kind,
            seeds[name],
            labels[name],
            workers=cfg.workers,
            options=opts,
            cache_dir=args.cache,
            arrays=arrays,
        )

    tr = split("train", ("image", "healthy"))
    va = split("val", ("image",))
    x = torch.from_numpy(tr["image"]).unsqueeze(1)  # lesion studies
    h = torch.from_numpy(tr["healthy"]).unsqueeze(1)  # their twins
    xv = torch.from_numpy(va["image"]).unsqueeze(1)
    yv = va["label"]
    lesion = (x - h).abs() > 0.02
    vox = [m[0].nonzero() for m in lesion]
    n, size = len(x), args.crop
    dims = torch.tensor(x.shape[2:])

    net = UNet(3, 1, 1, channels=(16, 32, 64, 64), strides=(2, 2, 2), num_res_units=1, norm="batch")
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    total = args.epochs * math.ceil(n / args.pairs)
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1)
        if args.schedule == "onecycle"
        else torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    )
    g = torch.Generator().manual_seed(1)
    pos_weight = torch.tensor(args.pos_weight)
    dice = DiceLoss(sigmoid=True, batch=True)

    def box_at(c: torch.Tensor) -> tuple[slice, ...]:
        lo = (c - size // 2).clamp(min=torch.zeros(3, dtype=torch.long), max=dims - size)
        return (slice(None), *(slice(int(a), int(a) + size) for a in lo))

    def val_scores() -> dict[str, np.ndarray]:
        net.eval()
        out: dict[str, list[torch.Tensor]] = {"max": [], "top30": [], "smax": [], "lse4": []}
        with torch.no_grad():
            for i in range(0, len(xv), 8):
                ev = net(xv[i : i + 8])
                e = ev.flatten(1)
                out["max"].append(e.max(1).values)
                out["top30"].append(e.topk(30, dim=1).values.mean(1))
                smooth = torch.nn.functional.avg_pool3d(ev, 3, 1, 1).flatten(1)
                out["smax"].append(smooth.max(1).values)
                out["lse4"].append(4 * torch.logsumexp(e / 4, 1))
        net.train()
        return {k: torch.cat(v).numpy() for k, v in out.items()}

    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=g)
        losses, stats, t0 = [], [], time.time()
        for i in range(0, n, args.pairs):
            idx = perm[i : i + args.pairs].tolist()
            les, twin, target = [], [], []
            for j in idx:
                v = vox[j]
                c = v[int(torch.randint(len(v), (1,), generator=g))] if len(v) else dims // 2
                c = c + torch.randint(-8, 9, (3,), generator=g)
                box = box_at(c)
                les.append(x[j][box])
                twin.append(h[j][box])
                target.append(lesion[j][box])
            r_img, r_lab = [], []
            for _ in range(args.random):
                j = int(torch.randint(n, (1,), generator=g))
                box = box_at(torch.randint(12, 52, (3,), generator=g))
                if torch.rand(1, generator=g) < 0.5:
                    r_img.append(x[j][box])
                    r_lab.append(lesion[j][box])
                else:
                    r_img.append(h[j][box])
                    r_lab.append(torch.zeros_like(lesion[j][box]))
            k = len(idx)
            s = 1 + 0.05 * torch.randn(k, 1, 1, 1, 1, generator=g)
            sr = 1 + 0.05 * torch.randn(len(r_img), 1, 1, 1, 1, generator=g)
            parts = [torch.stack(les) * s, torch.stack(twin) * s, torch.stack(r_img) * sr]
            batch = torch.cat(parts)
            tgt = torch.cat(
                [
                    torch.stack(target).float(),
                    torch.zeros(k, 1, size, size, size),
                    torch.stack(r_lab).float(),
                ]
            )
            if torch.rand(1, generator=g) < 0.5:
                batch, tgt = batch.flip(2), tgt.flip(2)
            e = net(batch)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                e, tgt, pos_weight=pos_weight
            ) + args.dice * dice(e, tgt)
            with torch.no_grad():
                m = tgt > 0
                pos = e[m].mean().item() if m.any() else 0.0
                stats.append((pos, e[~m].mean().item(), e[~m].max().item()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        st = np.mean(stats, 0)
        aucs = {k: _roc_auc(v, yv) for k, v in val_scores().items()}
        print(
            f"epoch {epoch + 1} loss {np.mean(losses):.4f} logit: lesion {st[0]:.2f} "
            f"rest {st[1]:.2f} rest max {st[2]:.2f} ({time.time() - t0:.0f} s) val AUC "
            + " ".join(f"{k}={v:.3f}" for k, v in aucs.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
