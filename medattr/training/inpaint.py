"""Train the healthy inpainter behind the mask-and-infill counterfactual baselines.

Only healthy volumes are seen (the generator's healthy subjects, a seed block of their own),
with holes from :class:`~medattr.training.masks.LesionLikeMaskGenerator` (not the benchmark's
lesion generator); the loss is the in-hole L1 of the prediction plus the Laplace negative
log-likelihood of the predicted error scale and the leave-block-out pattern the anomaly map uses
(:func:`medattr.generative.anomaly.block_pattern`). Training runs on random crops, which is
what makes it affordable on two CPU cores; the network is fully convolutional and evaluated on
whole volumes. After training, :func:`train_inpainter` measures in-mask L1 / SSIM / PSNR on
held-out healthy volumes with seeded random masks, calibrates the anomaly threshold on
another held-out healthy block (:func:`medattr.generative.anomaly.calibrate_anomaly`) and
stores both, with the whole config, in the exported TorchScript's spec.

Seeds (with the default ``seed_base`` 600000): training 600000-600599, validation (model
selection) 600600-600639, test (the reported metrics) 600640-600699, anomaly calibration
600700-600799. No other model and no benchmark split uses this block.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medattr.errors import InputError
from medattr.generative.anomaly import AnomalySettings, block_pattern, calibrate_anomaly
from medattr.generative.inpaint import HealthyInpainter
from medattr.models import IntensitySpec, ModelSpec, export_torchscript
from medattr.training.data import render_split, to_model_units
from medattr.training.masks import LesionLikeMaskGenerator
from medattr.training.quality import masked_image_quality

__all__ = [
    "InpainterTrainingConfig",
    "evaluate_inpainter",
    "export_checkpoint",
    "train_inpainter",
]

log = logging.getLogger("medattr.training")


@dataclass
class InpainterTrainingConfig:
    """Everything that determines a trained inpainter and its anomaly calibration (JSON-able).

    Seeds: ``seed_base`` + ``[0, n_train)`` training, then ``n_val`` validation (best step),
    ``n_test`` test (reported metrics) and ``n_calibration`` anomaly calibration, consecutive.
    ``block_probability`` of the training holes are leave-block-out patterns of cubes of
    ``train_block_mm`` (one size drawn per hole), the rest lesion-like masks with radii
    ``mask_radius_mm``. ``anomaly`` holds :class:`~medattr.generative.anomaly.AnomalySettings`
    fields; they decide the calibration only, not the trained weights.
    """

    kind: str = "mni"
    spatial_size: tuple[int, int, int] = (64, 64, 64)
    pixdim: tuple[float, float, float] = (3.0, 3.0, 3.0)
    intensity: dict[str, Any] = field(default_factory=lambda: {"a_min": 0.0, "a_max": 1.0})
    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 0
    seed_base: int = 600_000
    n_train: int = 600
    n_val: int = 40
    n_test: int = 60
    n_calibration: int = 100
    crop: int = 40
    batch_size: int = 8
    steps: int = 2000
    lr: float = 2e-3
    block_probability: float = 0.3
    train_block_mm: tuple[float, ...] = (18.0, 24.0, 36.0)
    mask_radius_mm: tuple[float, float] = (4.0, 24.0)
    val_every: int = 250
    torch_seed: int = 0
    workers: int = 2
    anomaly: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # JSON (bundle configs) gives lists; the stored form is tuples
        self.spatial_size = tuple(self.spatial_size)  # type: ignore[assignment]
        self.pixdim = tuple(self.pixdim)  # type: ignore[assignment]
        self.channels = tuple(self.channels)
        self.strides = tuple(self.strides)
        self.mask_radius_mm = tuple(self.mask_radius_mm)  # type: ignore[assignment]
        self.train_block_mm = tuple(float(b) for b in self.train_block_mm)
        k = int(np.prod(self.strides))
        if self.crop % k or self.crop > min(self.spatial_size):
            raise InputError(
                f"crop must be a multiple of {k} (the product of strides) and at most the grid "
                f"{self.spatial_size}, got {self.crop}"
            )
        if any(n % k for n in self.spatial_size):
            raise InputError(f"spatial_size must be multiples of {k}, got {self.spatial_size}")
        AnomalySettings(**self.anomaly)  # validates the names and values early

    def split_seeds(self) -> dict[str, range]:
        """The seed range of each split."""
        a, out = self.seed_base, {}
        for name, n in (
            ("train", self.n_train),
            ("val", self.n_val),
            ("test", self.n_test),
            ("calibration", self.n_calibration),
        ):
            out[name] = range(a, a + n)
            a += n
        return out


def brain_region(x: np.ndarray) -> np.ndarray:
    """Rough foreground of a ``(I, J, K)`` volume in ``[0, 1]`` (smoothed > 0.1, holes filled),
    used only to place training holes inside the head."""
    fg = ndimage.gaussian_filter(x.astype(np.float32), 1.0) > 0.1
    return ndimage.binary_fill_holes(fg)


def _random_blocks(
    rng: np.random.Generator, shape: tuple[int, ...], blocks: list[tuple[int, int, int]]
) -> np.ndarray:
    """One parity class of one of the anomaly map's tilings, randomly shifted."""
    b = blocks[int(rng.integers(len(blocks)))]
    offset = tuple(int(rng.integers(0, bb)) for bb in b)
    return block_pattern(shape, b, offset, tuple(int(v) for v in rng.integers(0, 2, 3)))


def _eval_masks(
    images: torch.Tensor, seed: int, cfg: InpainterTrainingConfig, kind: str
) -> torch.Tensor:
    """Seeded holes for evaluation: lesion-like (``kind="lesion"``) or block patterns."""
    rng = np.random.default_rng(seed)
    gen = LesionLikeMaskGenerator(radius_mm=cfg.mask_radius_mm)
    blocks = AnomalySettings(block_mm=cfg.train_block_mm).blocks_vox(cfg.pixdim)
    out = torch.zeros_like(images, dtype=torch.bool)
    for i in range(len(images)):
        region = brain_region(images[i, 0].numpy())
        if kind == "lesion":
            m = gen(rng, images.shape[2:], cfg.pixdim, region)
        else:
            m = _random_blocks(rng, tuple(images.shape[2:]), blocks)
            m &= ndimage.binary_dilation(region, iterations=2)
        out[i, 0] = torch.from_numpy(m)
    return out


def evaluate_inpainter(
    net: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor, batch: int = 4
) -> dict[str, float]:
    """Mean in-mask L1, SSIM and PSNR of ``net(x, mask)`` against ``x`` over volumes."""
    rows: dict[str, list[float]] = {"l1": [], "ssim": [], "psnr": []}
    net.eval()
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x, m = images[i : i + batch], masks[i : i + batch].float()
            q = masked_image_quality(net(x, m).clamp(0, 1), x, m)
            for k in rows:
                rows[k].extend(q[k])
    return {k: float(np.mean(v)) for k, v in rows.items()}


class _Batches:
    """Random training crops with holes; all randomness from one seeded generator."""

    def __init__(self, images: torch.Tensor, cfg: InpainterTrainingConfig) -> None:
        self.images = images
        self.cfg = cfg
        self.regions = [brain_region(images[i, 0].numpy()) for i in range(len(images))]
        self.rng = np.random.default_rng(cfg.torch_seed)
        self.gen = LesionLikeMaskGenerator(radius_mm=cfg.mask_radius_mm)
        self.blocks = AnomalySettings(block_mm=cfg.train_block_mm).blocks_vox(cfg.pixdim)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        c, rng = self.cfg.crop, self.rng
        xs, ms = [], []
        for _ in range(self.cfg.batch_size):
            i = int(rng.integers(len(self.images)))
            vol, region = self.images[i, 0], self.regions[i]
            inside = np.flatnonzero(region)
            centre = np.array(
                np.unravel_index(int(inside[rng.integers(inside.size)]), region.shape)
            )
            lo = np.clip(centre - c // 2 + rng.integers(-c // 4, c // 4 + 1, 3), 0, None)
            lo = np.minimum(lo, np.array(region.shape) - c)
            box = tuple(slice(int(a), int(a) + c) for a in lo)
            x, reg = vol[box], region[box]
            if rng.random() < self.cfg.block_probability:
                m = _random_blocks(rng, (c, c, c), self.blocks)
            else:
                m = self.gen(rng, (c, c, c), self.cfg.pixdim, reg)
            mt = torch.from_numpy(m)
            if rng.random() < 0.5:  # left-right flip (RAS axis 0); the brains are near-symmetric
                x, mt = x.flip(0), mt.flip(0)
            xs.append(x)
            ms.append(mt)
        return torch.stack(xs)[:, None], torch.stack(ms)[:, None].float()


def _loss(
    mean: torch.Tensor, scale: torch.Tensor, x: torch.Tensor, m: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """In-hole L1 of the mean plus the Laplace negative log-likelihood of the scale given the
    (detached) error, so that the scale learns the error's size without reweighting the mean;
    returns the loss and the L1 alone."""
    n = m.sum().clamp_min(1.0)
    err = (mean - x).abs()
    l1 = (err * m).sum() / n
    nll = ((err.detach() / scale + torch.log(scale)) * m).sum() / n
    return l1 + nll, float(l1.detach())


def _render(cfg: InpainterTrainingConfig, split: str, cache_dir: str | Path | None) -> torch.Tensor:
    """The healthy volumes of one split, in model units."""
    s = cfg.split_seeds()[split]
    opts = {"shape": cfg.spatial_size, "spacing": cfg.pixdim}
    data = render_split(
        cfg.kind, s, [False] * len(s), workers=cfg.workers, options=opts, cache_dir=cache_dir
    )
    return to_model_units(data["image"], cfg.intensity)


def train_inpainter(
    cfg: InpainterTrainingConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    pair_spec: ModelSpec | None = None,
    cache_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    resume: str | Path | None = None,
    time_limit_s: float | None = None,
) -> dict[str, Any]:
    """Render healthy volumes, train, measure, calibrate, export ``out``; returns the metrics.

    ``cache_dir`` keeps the rendered volumes (:func:`~medattr.training.render_split`);
    ``checkpoint`` receives the best weights so far (``torch.save`` of ``{"state", "step",
    "val_l1", "config", "history"}``) at every validation, for looking at a long run while it
    trains. ``resume`` continues a stopped run from such a checkpoint: its weights, step and
    best validation L1; the optimiser's moments start afresh, the one-cycle schedule resumes at
    that step and the crops are drawn from a generator seeded with the step. ``time_limit_s``
    stops training after that many seconds, with a validation at the step reached.
    """
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    x_train, x_val, x_test, x_cal = (
        _render(cfg, n, cache_dir) for n in ("train", "val", "test", "calibration")
    )
    log.info("rendered inpainter data in %.0f s", time.perf_counter() - t0)
    val_masks = _eval_masks(x_val, cfg.seed_base + 1, cfg, "lesion")

    torch.manual_seed(cfg.torch_seed)
    dev = torch.device(device)
    cl = torch.channels_last_3d
    net = HealthyInpainter(cfg.channels, cfg.strides, cfg.num_res_units).to(dev)
    net = net.to(memory_format=cl)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    batches = _Batches(x_train, cfg)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"val_l1": float("inf"), "step": 0, "state": None}
    start = 0
    if resume is not None:
        saved = torch.load(Path(resume), map_location="cpu", weights_only=False)
        net.load_state_dict(saved["state"])
        start = int(saved["step"])
        best = {"val_l1": float(saved["val_l1"]), "step": start, "state": saved["state"]}
        history = [*saved.get("history", []), {"resumed_at_step": start}]
        batches.rng = np.random.default_rng([cfg.torch_seed, start])
        with warnings.catch_warnings():  # stepping the schedule without optimiser steps
            warnings.simplefilter("ignore")
            for _ in range(start):
                sched.step()
    losses: list[float] = []
    t_train = time.perf_counter()
    for step in range(start + 1, cfg.steps + 1):
        out_of_time = time_limit_s is not None and time.perf_counter() - t_train > time_limit_s
        net.train()
        xb, mb = batches.sample()
        xb = xb.to(dev).contiguous(memory_format=cl)
        mb = mb.to(dev).contiguous(memory_format=cl)
        mean, scale = net.predict_with_scale(xb, mb)
        loss, l1 = _loss(mean, scale, xb, mb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(l1)
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            val = evaluate_inpainter(net, x_val.to(dev), val_masks.to(dev))
            history.append(
                {
                    "step": step,
                    "train_l1": float(np.mean(losses)),
                    "val_l1": val["l1"],
                    "seconds": round(time.perf_counter() - t_train, 1),
                }
            )
            log.info(
                "step %d train l1 %.4f val l1 %.4f ssim %.3f (%.0f s)",
                step,
                np.mean(losses),
                val["l1"],
                val["ssim"],
                time.perf_counter() - t_train,
            )
            losses = []
            if val["l1"] < best["val_l1"]:
                state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                best = {"val_l1": val["l1"], "step": step, "state": state}
                if checkpoint is not None:
                    from medattr._fs import atomic_path

                    with atomic_path(Path(checkpoint), suffix=".pt") as tmp:
                        torch.save({**best, "config": asdict(cfg), "history": history}, tmp)
        if out_of_time:
            log.info("time limit reached at step %d", step)
            break
    net.load_state_dict(best["state"])
    head = {
        "val_l1": best["val_l1"],
        "best_step": best["step"],
        "history": history,
        "train_seconds": round(time.perf_counter() - t_train, 1),
        "train_cpu_seconds": round(time.process_time() - cpu0, 1),
        "device": str(dev),
        "n_train_healthy": len(x_train),
    }
    return _finish(net, cfg, out, x_test, x_cal, head, pair_spec, t0)


def _finish(
    net: HealthyInpainter,
    cfg: InpainterTrainingConfig,
    out: str | Path,
    x_test: torch.Tensor,
    x_cal: torch.Tensor,
    head: dict[str, Any],
    pair_spec: ModelSpec | None,
    t0: float,
) -> dict[str, Any]:
    """Measure on the test split, calibrate the anomaly threshold, export with the spec."""
    net = net.cpu().to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    test_lesion = evaluate_inpainter(
        net, x_test, _eval_masks(x_test, cfg.seed_base + 2, cfg, "lesion")
    )
    test_block = evaluate_inpainter(
        net, x_test, _eval_masks(x_test, cfg.seed_base + 3, cfg, "block")
    )
    settings = AnomalySettings(**cfg.anomaly)
    calibration = calibrate_anomaly(net, x_cal, settings, cfg.pixdim)
    metrics = {
        **head,
        "test_l1": test_lesion["l1"],
        "test_ssim": test_lesion["ssim"],
        "test_psnr": test_lesion["psnr"],
        "test_block_l1": test_block["l1"],
        "test_block_ssim": test_block["ssim"],
        "test_block_psnr": test_block["psnr"],
        "anomaly_threshold": calibration["threshold"],
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    spec = ModelSpec(
        task="classification" if pair_spec is None else pair_spec.task,
        class_names=["healthy"],
        default_target=0,
        orientation="RAS",
        pixdim=cfg.pixdim,
        spatial_size=cfg.spatial_size,
        intensity=IntensitySpec(**cfg.intensity),
        name=f"medattr-{cfg.kind}-healthy-inpainter",
        description=(
            f"3D U-Net inpainter trained on healthy {cfg.kind} volumes only: (image with a hole, "
            "mask) -> healthy tissue in the hole; every voxel outside the hole is kept"
        ),
        extra={
            "strides": list(cfg.strides),
            "metrics": metrics,
            "training": asdict(cfg),
            "anomaly": calibration,
        },
    )
    sha = export_torchscript(net, spec, out)
    metrics["sha256"] = sha
    Path(str(out) + ".metrics.json").write_text(
        json.dumps({**metrics, "anomaly": calibration}, indent=2)
    )
    return metrics


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    *,
    pair_spec: ModelSpec | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Export the weights of a training checkpoint (``train_inpainter(checkpoint=...)``) as
    :func:`train_inpainter` exports its best model: test metrics, anomaly calibration, spec.

    For a run stopped before its last step; the metrics record ``best_step`` (the checkpoint's
    step) and ``stopped_early`` (``True`` when that is before ``steps``).
    """
    t0 = time.perf_counter()
    saved = torch.load(Path(checkpoint), map_location="cpu", weights_only=False)
    cfg = InpainterTrainingConfig(**saved["config"])
    net = HealthyInpainter(cfg.channels, cfg.strides, cfg.num_res_units)
    net.load_state_dict(saved["state"])
    head = {
        "val_l1": float(saved["val_l1"]),
        "best_step": int(saved["step"]),
        "stopped_early": int(saved["step"]) < cfg.steps,
        "history": list(saved.get("history", [])),
        "device": "cpu",
        "n_train_healthy": cfg.n_train,
    }
    return _finish(
        net,
        cfg,
        out,
        _render(cfg, "test", cache_dir),
        _render(cfg, "calibration", cache_dir),
        head,
        pair_spec,
        t0,
    )
