"""Train the small 3D lesion classifier that medattr ships, and export it with its spec.

The network is MONAI's ``Classifier`` (strided residual conv units, batch norm, a linear head);
studies are rendered by :mod:`medattr.synthetic` on the model grid, mapped through the model's
intensity window, and the checkpoint with the best validation AUC is exported as TorchScript
with a :class:`~medattr.models.ModelSpec` and the measured metrics.
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

from medattr.models import IntensitySpec, ModelSpec, export_torchscript
from medattr.training.data import render_split, to_model_units

__all__ = [
    "ClassifierTrainingConfig",
    "build_classifier",
    "evaluate_classifier",
    "train_classifier",
]

log = logging.getLogger("medattr.training")


@dataclass
class ClassifierTrainingConfig:
    """Everything that determines a trained classifier (JSON-able).

    Seeds of the three splits are disjoint ranges starting at ``seed_base``; half of each split
    has a lesion (alternating). With ``paired`` (the default) training uses the lesion studies
    of the train split each together with its exact healthy twin, both in the same batch:
    without the twins, the networks tried here memorised their training subjects and stayed
    at chance on new ones (``docs/models.md``).

    ``jitter`` is the training augmentation, a random intensity scale (``intensity_jitter``, 1
    sd): ``"independent"`` per study, ``"pair"`` one scale shared by a lesion study and its
    twin, or ``"none"``. Independent scales make the two members of a pair differ everywhere,
    which on the brain studies drowned the lesion (loss stuck at log 2); the phantom
    classifier was trained with them. ``lr_schedule`` is ``"onecycle"`` or ``"constant"``.
    """

    kind: str = "phantom"
    spatial_size: tuple[int, int, int] = (48, 48, 48)
    pixdim: tuple[float, float, float] = (4.0, 4.0, 4.0)
    intensity: dict[str, Any] = field(default_factory=lambda: {"a_min": -200.0, "a_max": 300.0})
    architecture: str = "detector"
    channels: tuple[int, ...] = (8, 16, 32)
    strides: tuple[int, ...] = (2, 2, 2)
    n_train: int = 1200
    n_val: int = 200
    n_test: int = 400
    seed_base: int = 0
    epochs: int = 16
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    paired: bool = True
    jitter: str = "independent"
    intensity_jitter: float = 0.05
    lr_schedule: str = "onecycle"
    torch_seed: int = 0
    workers: int = 2
    render_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # JSON (bundle configs) gives lists; the stored form is tuples
        self.spatial_size = tuple(self.spatial_size)  # type: ignore[assignment]
        self.pixdim = tuple(self.pixdim)  # type: ignore[assignment]
        self.channels = tuple(self.channels)
        self.strides = tuple(self.strides)
        if self.jitter not in ("independent", "pair", "none"):
            raise ValueError(f"jitter must be 'independent', 'pair' or 'none', not {self.jitter!r}")
        if self.lr_schedule not in ("onecycle", "constant"):
            raise ValueError(
                f"lr_schedule must be 'onecycle' or 'constant', not {self.lr_schedule!r}"
            )

    def split_seeds(self) -> dict[str, list[int]]:
        a = self.seed_base
        return {
            "train": list(range(a, a + self.n_train)),
            "val": list(range(a + self.n_train, a + self.n_train + self.n_val)),
            "test": list(
                range(a + self.n_train + self.n_val, a + self.n_train + self.n_val + self.n_test)
            ),
        }


def build_classifier(cfg: ClassifierTrainingConfig) -> torch.nn.Module:
    """``"detector"``: :class:`~medattr.models.networks.LesionDetector3D` (evidence map, mean);
    ``"classifier"``: MONAI's ``Classifier`` (flatten + linear head)."""
    if cfg.architecture == "detector":
        from medattr.models.networks import LesionDetector3D

        return LesionDetector3D(1, cfg.channels, cfg.strides)
    if cfg.architecture == "classifier":
        from monai.networks.nets import Classifier

        return Classifier(
            in_shape=(1, *cfg.spatial_size),
            classes=2,
            channels=cfg.channels,
            strides=cfg.strides,
            num_res_units=1,
            norm="batch",
            act="relu",
            dropout=cfg.dropout,
        )
    raise ValueError(f"architecture must be 'detector' or 'classifier', got {cfg.architecture!r}")


def _spec(cfg: ClassifierTrainingConfig, metrics: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        task="classification",
        class_names=["healthy", "lesion"],
        default_target=1,
        orientation="RAS",
        pixdim=cfg.pixdim,
        spatial_size=cfg.spatial_size,
        intensity=IntensitySpec(**cfg.intensity),
        name=f"medattr-{cfg.kind}-lesion-classifier",
        description=f"3D lesion-vs-healthy classifier trained on generated {cfg.kind} studies",
        extra={"metrics": metrics, "training": asdict(cfg)},
    )


def _roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from medattr.metrics import roc_auc_scores

    s = torch.as_tensor(scores, dtype=torch.float64)[None]
    y = torch.as_tensor(labels, dtype=torch.bool)[None]
    return float(roc_auc_scores(s, y)[0])


def evaluate_classifier(
    net: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, batch_size: int = 32
) -> dict[str, float]:
    """AUC and accuracy (threshold 0.5 on softmax) of ``net`` on model-space ``images``."""
    net.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            probs.append(torch.softmax(net(images[i : i + batch_size]), 1)[:, 1])
    p = torch.cat(probs).numpy()
    return {
        "auc": _roc_auc(p, labels),
        "accuracy": float(((p > 0.5) == (labels == 1)).mean()),
        "n": len(labels),
    }


def _jitter(cfg: ClassifierTrainingConfig, n: int, g: torch.Generator) -> torch.Tensor:
    """Per-sample intensity scales ``(n, 1, 1, 1, 1)`` for one batch (see ``jitter``)."""
    if cfg.jitter == "none" or cfg.intensity_jitter == 0:
        return torch.ones(n, 1, 1, 1, 1)
    if cfg.jitter == "pair" and cfg.paired:  # lesion studies first, their twins after them
        half = torch.randn(n // 2, 1, 1, 1, 1, generator=g)
        return 1 + cfg.intensity_jitter * torch.cat([half, half])
    return 1 + cfg.intensity_jitter * torch.randn(n, 1, 1, 1, 1, generator=g)


def train_classifier(
    cfg: ClassifierTrainingConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    paired_vae: str | None = None,
) -> dict[str, Any]:
    """Render data, train, export ``out`` (TorchScript with spec); returns the metrics.

    ``paired_vae`` (e.g. ``"builtin:mni-vae"``) is recorded in the spec as the VAE that the
    counterfactual baselines use with this classifier by default."""
    t0 = time.perf_counter()
    seeds = cfg.split_seeds()
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim, **cfg.render_options}
    data = {
        k: render_split(
            cfg.kind,
            v,
            [i % 2 == 1 for i in range(len(v))],
            workers=cfg.workers,
            options=opts,
            cache_dir=cache_dir,
        )
        for k, v in seeds.items()
    }
    log.info(
        "rendered %s studies in %.0f s",
        sum(len(v) for v in seeds.values()),
        time.perf_counter() - t0,
    )
    x = {k: to_model_units(v["image"], cfg.intensity) for k, v in data.items()}
    y = {k: v["label"] for k, v in data.items()}
    if cfg.paired:
        # each lesion study with its exact healthy twin: the pair differs only in the lesion, so
        # remembering a subject's anatomy cannot separate them (validation and test stay
        # independent, unpaired studies)
        les = y["train"] == 1
        twins = to_model_units(data["train"]["healthy"][les], cfg.intensity)
        x["train"] = torch.cat([x["train"][les], twins])
        y["train"] = np.concatenate([np.ones(les.sum(), np.int64), np.zeros(les.sum(), np.int64)])

    torch.manual_seed(cfg.torch_seed)
    dev = torch.device(device)
    net = build_classifier(cfg).to(dev).to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # paired: batches of batch_size // 2 pairs, both members of each pair together
    units = len(x["train"]) // 2 if cfg.paired else len(x["train"])
    step = max(cfg.batch_size // 2, 1) if cfg.paired else cfg.batch_size
    steps = cfg.epochs * int(np.ceil(units / step))
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
        if cfg.lr_schedule == "onecycle"
        else None
    )
    g = torch.Generator().manual_seed(cfg.torch_seed)
    yt = torch.from_numpy(y["train"])
    best: dict[str, Any] = {"auc": -1.0}
    history = []
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        net.train()
        perm = torch.randperm(units, generator=g)
        losses = []
        for i in range(0, len(perm), step):
            idx = perm[i : i + step]
            if cfg.paired:  # lesion studies come first, their twins after them
                idx = torch.cat([idx, idx + units])
            xb = x["train"][idx].to(dev).contiguous(memory_format=torch.channels_last_3d)
            xb = xb * _jitter(cfg, len(idx), g).to(dev)
            loss = torch.nn.functional.cross_entropy(net(xb), yt[idx].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.item())
        val = evaluate_classifier(net, x["val"].to(dev), y["val"])
        history.append(
            {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                **{f"val_{k}": v for k, v in val.items()},
            }
        )
        log.info(
            "epoch %d loss %.4f val auc %.4f acc %.3f (%.0f s)",
            epoch + 1,
            np.mean(losses),
            val["auc"],
            val["accuracy"],
            time.perf_counter() - t_epoch,
        )
        if val["auc"] > best["auc"]:
            best = {
                "auc": val["auc"],
                "epoch": epoch + 1,
                "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            }
    net.load_state_dict(best["state"])
    net = net.cpu().to(memory_format=torch.contiguous_format).eval()
    test = evaluate_classifier(net, x["test"], y["test"])
    metrics = {
        "val_auc": best["auc"],
        "best_epoch": best["epoch"],
        "test_auc": test["auc"],
        "test_accuracy": test["accuracy"],
        "n_test": test["n"],
        "history": history,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "device": str(dev),
    }
    spec = _spec(cfg, metrics)
    if paired_vae:
        spec.extra["paired_vae"] = paired_vae
    sha = export_torchscript(net, spec, out)
    metrics["sha256"] = sha
    Path(str(out) + ".metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
