"""Train the healthy-only VAE behind the counterfactual baselines.

Only healthy volumes are seen in training (the generators' healthy subjects), so the decoder
has no way to draw a lesion: reconstructing a lesion study moves it toward its healthy twin.
The exported TorchScript carries the same :class:`~medattr.models.ModelSpec` grid and
intensity contract as the classifier it is paired with, and its measured metrics.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medattr.generative.vae import HealthyVAE
from medattr.models import IntensitySpec, ModelSpec, export_torchscript
from medattr.training.data import render_split, to_model_units

__all__ = ["VAETrainingConfig", "lesion_recovery", "train_vae"]

log = logging.getLogger("medattr.training")


@dataclass
class VAETrainingConfig:
    """Everything that determines a trained VAE (JSON-able)."""

    kind: str = "mni"
    spatial_size: tuple[int, int, int] = (64, 64, 64)
    pixdim: tuple[float, float, float] = (3.0, 3.0, 3.0)
    intensity: dict[str, Any] = field(default_factory=lambda: {"a_min": 0.0, "a_max": 1.0})
    latent_size: int = 128
    channels: tuple[int, ...] = (16, 32, 64, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2)
    num_res_units: int = 0
    n_train: int = 400
    n_val: int = 50
    n_lesion_eval: int = 40
    seed_base: int = 500_000
    epochs: int = 15
    batch_size: int = 8
    lr: float = 2e-3
    beta: float = 1e-3
    torch_seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        # JSON (bundle configs) gives lists; the stored form is tuples
        self.spatial_size = tuple(self.spatial_size)  # type: ignore[assignment]
        self.pixdim = tuple(self.pixdim)  # type: ignore[assignment]
        self.channels = tuple(self.channels)
        self.strides = tuple(self.strides)


def _elbo(vae: HealthyVAE, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, float, float]:
    recon, mu, logvar = vae.training_forward(x)
    rec = torch.nn.functional.l1_loss(recon, x, reduction="mean")
    kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
    return rec + beta * kl, float(rec.detach()), float(kl.detach())


def lesion_recovery(
    vae: torch.nn.Module, image: torch.Tensor, healthy: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """How far reconstruction moves lesion voxels toward the healthy twin.

    Returns the mean |x - healthy| and |D(mu(x)) - healthy| inside the lesion masks, and their
    ratio (< 1: the reconstruction is closer to healthy than the input is).
    """
    with torch.no_grad():
        recon = torch.cat([vae(image[i : i + 8]) for i in range(0, len(image), 8)])
    m = mask > 0.5
    before = (image - healthy).abs()[m].mean().item()
    after = (recon - healthy).abs()[m].mean().item()
    outside = (recon - healthy).abs()[~m].mean().item()
    return {
        "lesion_error_input": before,
        "lesion_error_reconstruction": after,
        "lesion_error_ratio": after / before if before > 0 else float("nan"),
        "error_outside_lesion": outside,
    }


def train_vae(
    cfg: VAETrainingConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    pair_spec: ModelSpec | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Render healthy volumes, train, export ``out`` (TorchScript); returns the metrics."""
    t0 = time.perf_counter()
    a = cfg.seed_base
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim}
    train = render_split(
        cfg.kind,
        range(a, a + cfg.n_train),
        [False] * cfg.n_train,
        workers=cfg.workers,
        options=opts,
        cache_dir=cache_dir,
    )
    val = render_split(
        cfg.kind,
        range(a + cfg.n_train, a + cfg.n_train + cfg.n_val),
        [False] * cfg.n_val,
        workers=cfg.workers,
        options=opts,
        cache_dir=cache_dir,
    )
    les_seeds = range(a + cfg.n_train + cfg.n_val, a + cfg.n_train + cfg.n_val + cfg.n_lesion_eval)
    lesion = render_split(
        cfg.kind,
        les_seeds,
        [True] * cfg.n_lesion_eval,
        workers=cfg.workers,
        options=opts,
        cache_dir=cache_dir,
    )
    log.info("rendered VAE data in %.0f s", time.perf_counter() - t0)
    x_train, x_val = (
        to_model_units(train["image"], cfg.intensity),
        to_model_units(val["image"], cfg.intensity),
    )

    torch.manual_seed(cfg.torch_seed)
    dev = torch.device(device)
    vae = (
        HealthyVAE(
            (1, *cfg.spatial_size),
            cfg.latent_size,
            cfg.channels,
            cfg.strides,
            num_res_units=cfg.num_res_units,
        )
        .to(dev)
        .to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    )
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=1e-5)
    steps = cfg.epochs * int(np.ceil(len(x_train) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    g = torch.Generator().manual_seed(cfg.torch_seed)
    history = []
    best: dict[str, Any] = {"val_l1": float("inf")}
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        vae.train()
        perm = torch.randperm(len(x_train), generator=g)
        recs, kls = [], []
        for i in range(0, len(perm), cfg.batch_size):
            xb = x_train[perm[i : i + cfg.batch_size]].to(dev)
            xb = xb.contiguous(memory_format=torch.channels_last_3d)
            loss, rec, kl = _elbo(vae, xb, cfg.beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            recs.append(rec)
            kls.append(kl)
        vae.eval()
        with torch.no_grad():
            val_l1 = float(
                np.mean(
                    [
                        torch.nn.functional.l1_loss(
                            vae(x_val[i : i + 8].to(dev)), x_val[i : i + 8].to(dev)
                        ).item()
                        for i in range(0, len(x_val), 8)
                    ]
                )
            )
        history.append(
            {
                "epoch": epoch + 1,
                "train_l1": float(np.mean(recs)),
                "train_kl": float(np.mean(kls)),
                "val_l1": val_l1,
            }
        )
        log.info(
            "epoch %d train l1 %.4f kl %.2f val l1 %.4f (%.0f s)",
            epoch + 1,
            np.mean(recs),
            np.mean(kls),
            val_l1,
            time.perf_counter() - t_epoch,
        )
        if val_l1 < best["val_l1"]:
            best = {
                "val_l1": val_l1,
                "epoch": epoch + 1,
                "state": {k: v.detach().cpu().clone() for k, v in vae.state_dict().items()},
            }
    vae.load_state_dict(best["state"])
    vae = vae.cpu().to(memory_format=torch.contiguous_format).eval()
    recovery = lesion_recovery(
        vae,
        to_model_units(lesion["image"], cfg.intensity),
        to_model_units(lesion["healthy"], cfg.intensity),
        torch.from_numpy(lesion["mask"])[:, None],
    )
    metrics = {
        "val_l1": best["val_l1"],
        "best_epoch": best["epoch"],
        **recovery,
        "history": history,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "device": str(dev),
        "n_train_healthy": len(x_train),
    }
    spec = ModelSpec(
        task="classification" if pair_spec is None else pair_spec.task,
        class_names=["healthy"],
        default_target=0,
        orientation="RAS",
        pixdim=cfg.pixdim,
        spatial_size=cfg.spatial_size,
        intensity=IntensitySpec(**cfg.intensity),
        name=f"medattr-{cfg.kind}-healthy-vae",
        description=f"VAE trained on healthy {cfg.kind} volumes only (posterior-mean decoding)",
        extra={"latent_size": cfg.latent_size, "metrics": metrics, "training": asdict(cfg)},
    )
    sha = export_torchscript(vae, spec, out)
    metrics["sha256"] = sha
    Path(str(out) + ".metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
