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
from medattr.training._crops import crop_epoch, lesion_voxels
from medattr.training.data import render_split, to_model_units

__all__ = [
    "ClassifierTrainingConfig",
    "build_classifier",
    "evaluate_classifier",
    "predict_probabilities",
    "train_classifier",
]

log = logging.getLogger("medattr.training")


@dataclass
class ClassifierTrainingConfig:
    """Everything that determines a trained classifier (JSON-able).

    Seeds of the three splits are disjoint ranges starting at ``seed_base``; half of the
    validation and test studies have a lesion (alternating), and a fraction
    ``train_lesion_fraction`` of the training studies (0.5: alternating; 1.0: all). With
    ``paired`` (the default) training uses the lesion studies of the train split each together
    with its exact healthy twin, both in the same batch: without the twins, the networks tried
    here memorised their training subjects and stayed at chance on new ones
    (``docs/models.md``). So ``paired`` with ``train_lesion_fraction=1.0`` trains on
    ``n_train`` subjects, each seen with and without its lesion.

    ``jitter`` is the training augmentation, a random intensity scale (``intensity_jitter``, 1
    sd): ``"independent"`` per study, ``"pair"`` one scale shared by a lesion study and its
    twin, or ``"none"``. Independent scales make the two members of a pair differ everywhere,
    which on the brain studies drowned the lesion (loss stuck at log 2); the phantom
    classifier was trained with them. ``lr_schedule`` is ``"onecycle"`` or ``"constant"``.

    ``pool`` is the detector's spatial pooling (``"mean"`` or ``"lse"``, see
    :class:`~medattr.models.networks.LesionDetector3D`). ``dense_weight`` > 0 adds, for paired
    training, a loss on the detector's evidence map itself: binary cross-entropy of each cell
    against "this cell holds lesion voxels" (where the pair differs; positives weighted by
    ``dense_pos_weight``), so every lesion tells the network where it is, not only that the
    study has one. It is training signal only: the exported model is the same classifier.
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
    train_lesion_fraction: float = 0.5
    crop_epochs: int = 0
    crop_size: int = 32
    crop_shift: int = 4
    crop_pairs: int = 8
    pool: str = "mean"
    dense_weight: float = 0.0
    dense_pos_weight: float = 10.0

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
        if not 0.0 < float(self.train_lesion_fraction) <= 1.0:
            raise ValueError(
                f"train_lesion_fraction must be in (0, 1], not {self.train_lesion_fraction!r}"
            )
        if self.dense_weight < 0 or (self.dense_weight and not self.paired):
            raise ValueError(
                f"dense_weight must be >= 0 and needs paired=True, got {self.dense_weight!r}"
            )
        if self.dense_weight and self.architecture != "detector":
            raise ValueError("dense_weight needs the 'detector' architecture (an evidence map)")
        if self.crop_epochs < 0 or (self.crop_epochs and not self.paired):
            raise ValueError(
                f"crop_epochs must be >= 0 and needs paired=True, got {self.crop_epochs!r} "
                f"with paired={self.paired!r}"
            )
        if self.crop_epochs and not 0 < self.crop_size <= min(self.spatial_size):
            raise ValueError(
                f"crop_size must be in [1, {min(self.spatial_size)}], got {self.crop_size!r}"
            )

    def split_labels(self) -> dict[str, list[bool]]:
        """Which study of each split (in :meth:`split_seeds` order) has a lesion."""
        seeds = self.split_seeds()
        f = float(self.train_lesion_fraction)
        # floor((i + 1) f) > floor(i f): f = 0.5 gives every second study (i odd), f = 1 all
        train = [int((i + 1) * f) > int(i * f) for i in range(len(seeds["train"]))]
        return {
            "train": train,
            "val": [i % 2 == 1 for i in range(len(seeds["val"]))],
            "test": [i % 2 == 1 for i in range(len(seeds["test"]))],
        }

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

        return LesionDetector3D(1, cfg.channels, cfg.strides, pool=cfg.pool)
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


def predict_probabilities(
    net: torch.nn.Module, images: torch.Tensor, batch_size: int = 32
) -> np.ndarray:
    """Lesion probability (softmax of class 1) of ``net`` on model-space ``images``."""
    net.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            probs.append(torch.softmax(net(images[i : i + batch_size]), 1)[:, 1])
    return torch.cat(probs).numpy()


def evaluate_classifier(
    net: torch.nn.Module, images: torch.Tensor, labels: np.ndarray, batch_size: int = 32
) -> dict[str, float]:
    """AUC and accuracy (threshold 0.5 on softmax) of ``net`` on model-space ``images``."""
    p = predict_probabilities(net, images, batch_size)
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


#: A voxel belongs to a lesion for the dense loss where the lesion study and its twin differ by
#: more than this (on the [0, 1] scale: the faintest lesions differ by 0.06 at full weight; the
#: pair shares its noise, so elsewhere they differ by exactly 0).
_LESION_DIFF = 0.03


def _lesion_cells(pairs: torch.Tensor) -> torch.Tensor:
    """``(2n, 1, *spatial)`` batch of n lesion studies followed by their twins -> the lesion
    voxels of the first half, ``(n, 1, *spatial)`` float. Whole-volume batches are passed
    before the intensity jitter; crops after it, which scales both members of a pair alike
    (``jitter="pair"``), so the difference is the lesion's, scaled by a few per cent."""
    n = len(pairs) // 2
    return ((pairs[:n] - pairs[n:]).abs() > _LESION_DIFF).float()


def _dense_loss(evidence: torch.Tensor, lesion: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Binary cross-entropy of each evidence cell against "this cell holds lesion voxels" for
    the lesion studies and "no lesion" everywhere in their twins (``evidence`` ``(2n, 1, ...)``
    with the lesion studies first)."""
    cells = torch.nn.functional.adaptive_max_pool3d(lesion, evidence.shape[2:])
    target = torch.cat([cells, torch.zeros_like(cells)])
    weight = torch.tensor(float(pos_weight), device=evidence.device)
    return torch.nn.functional.binary_cross_entropy_with_logits(evidence, target, pos_weight=weight)


def _operating_points(
    net: torch.nn.Module,
    x: dict[str, torch.Tensor],
    y: dict[str, np.ndarray],
    categories: dict[str, dict[str, np.ndarray]],
) -> dict[str, Any]:
    """Test sensitivity and specificity at 0.5 and at the validation's Youden threshold, overall
    and per lesion category (where the generator records categories)."""
    from medattr.training.evaluation import (
        category_sensitivity,
        operating_point_metrics,
        youden_threshold,
    )

    p_val = predict_probabilities(net, x["val"])
    p_test = predict_probabilities(net, x["test"])
    threshold = youden_threshold(p_val, y["val"])
    out: dict[str, Any] = {"val_threshold": threshold, "test_operating_points": {}}
    for name, t in (("p0.5", 0.5), ("val_youden", threshold)):
        row = operating_point_metrics(p_test, y["test"], t)
        if categories["test"]:
            row["by_category"] = category_sensitivity(p_test, y["test"], categories["test"], t)
        out["test_operating_points"][name] = row
    return out


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
    labels = cfg.split_labels()
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim, **cfg.render_options}
    x: dict[str, torch.Tensor] = {}
    y: dict[str, np.ndarray] = {}
    categories: dict[str, dict[str, np.ndarray]] = {}
    for k, v in seeds.items():
        keep = ("image", "healthy") if k == "train" and cfg.paired else ("image",)
        data = render_split(
            cfg.kind,
            v,
            labels[k],
            workers=cfg.workers,
            options=opts,
            cache_dir=cache_dir,
            arrays=keep,
        )
        y[k] = data["label"]
        categories[k] = {
            name.removeprefix("category_"): arr
            for name, arr in data.items()
            if name.startswith("category_")
        }
        if k == "train" and cfg.paired:
            # each lesion study with its exact healthy twin: the pair differs only in the
            # lesion, so remembering a subject's anatomy cannot separate them (validation and
            # test stay independent, unpaired studies)
            les = np.flatnonzero(y[k] == 1)
            n = len(les)
            x[k] = torch.empty((2 * n, 1, *data["image"].shape[1:]), dtype=torch.float32)
            for name, rows in (("image", slice(0, n)), ("healthy", slice(n, 2 * n))):
                arr = data.pop(name)
                to_model_units(arr if n == len(arr) else arr[les], cfg.intensity, out=x[k][rows])
                del arr
            y[k] = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
        else:
            x[k] = to_model_units(data["image"], cfg.intensity)
        del data
    log.info(
        "rendered %s studies in %.0f s",
        sum(len(v) for v in seeds.values()),
        time.perf_counter() - t0,
    )

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
    voxels = lesion_voxels(x["train"][:units], x["train"][units:]) if cfg.crop_epochs else []

    def batch_loss(
        xb: torch.Tensor, labels: torch.Tensor, lesion: torch.Tensor | None
    ) -> torch.Tensor:
        """Cross-entropy of the study labels; with the pairs' ``lesion`` voxels (lesion studies
        first, their twins after them) plus the weighted dense loss on the evidence map."""
        if lesion is None:
            return torch.nn.functional.cross_entropy(net(xb), labels.to(dev))
        e = net.evidence(xb)
        loss = torch.nn.functional.cross_entropy(net.pool_logits(e), labels.to(dev))
        return loss + cfg.dense_weight * _dense_loss(e, lesion, cfg.dense_pos_weight)

    def crop_step(batch: torch.Tensor, labels: torch.Tensor) -> float:
        batch = batch.to(dev).contiguous(memory_format=torch.channels_last_3d)
        loss = batch_loss(batch, labels, _lesion_cells(batch) if cfg.dense_weight else None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    for epoch in range(cfg.crop_epochs + cfg.epochs):
        t_epoch = time.perf_counter()
        net.train()
        phase = "crop" if epoch < cfg.crop_epochs else "full"
        losses: list[float] = []
        if phase == "crop":  # lesion-centred crops first (medattr.training._crops)
            losses = crop_epoch(
                crop_step,
                x["train"],
                units,
                voxels,
                size=cfg.crop_size,
                shift=cfg.crop_shift,
                pairs_per_step=cfg.crop_pairs,
                scale=lambda n: _jitter(cfg, 2 * n, g)[:n],
                generator=g,
            )
        perm = torch.randperm(units, generator=g) if phase == "full" else torch.empty(0)
        for i in range(0, len(perm), step):
            idx = perm[i : i + step]
            if cfg.paired:  # lesion studies come first, their twins after them
                idx = torch.cat([idx, idx + units])
            xb = x["train"][idx].to(dev).contiguous(memory_format=torch.channels_last_3d)
            lesion_cells = _lesion_cells(xb) if cfg.dense_weight else None
            xb = xb * _jitter(cfg, len(idx), g).to(dev)
            loss = batch_loss(xb, yt[idx], lesion_cells)
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
                **({"phase": phase} if cfg.crop_epochs else {}),
            }
        )
        log.info(
            "epoch %d (%s) loss %.4f val auc %.4f acc %.3f (%.0f s)",
            epoch + 1,
            phase,
            np.mean(losses),
            val["auc"],
            val["accuracy"],
            time.perf_counter() - t_epoch,
        )
        # the crop phase is a start: the shipped weights come from whole-volume epochs, which
        # set the calibration (a crop's mean evidence is not a whole brain's)
        if phase == "full" and val["auc"] > best["auc"]:
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
        **_operating_points(net, x, y, categories),
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
