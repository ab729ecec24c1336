"""The healthy inpainter: fill a masked region with healthy tissue, keep every other voxel.

The region is first blanked and filled by push-pull normalised convolution (local averages of
the known voxels, divided by the known fraction, coarse to fine; :meth:`HealthyInpainter.
prefill`), a smooth guess from the surroundings; a 3D MONAI ``UNet`` reads that pre-filled
image and the binary mask and predicts the correction to the guess and, per voxel, the scale
``b`` of a Laplace distribution of its error (trained by negative log-likelihood): how far
healthy tissue typically lies from the prediction there. That scale is what the anomaly map
divides by (:mod:`medattr.generative.anomaly`). Nothing of the original content of the
region reaches the network. Trained on healthy volumes only with random lesion-like holes
(:mod:`medattr.training.inpaint`), it can only draw healthy anatomy, continued from what
surrounds the hole. :meth:`HealthyInpainter.forward` stitches
the prediction into the input with ``torch.where``, so every voxel outside the mask is the
input's own value, bit for bit, whatever the network computes.

Counterfactual baselines built on it live in :mod:`medattr.baselines.counterfactual.inpaint`;
the anomaly mask that says where to inpaint is :mod:`medattr.generative.anomaly`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medattr.errors import InputError, ModelError
from medattr.generative._files import open_scripted, spec_of
from medattr.models import ModelSpec
from medattr.models.loading import file_sha256

__all__ = ["HealthyInpainter", "LoadedInpainter", "load_inpainter"]


class HealthyInpainter(torch.nn.Module):
    """3D U-Net inpainter: ``(x, mask) -> x`` with the masked voxels replaced by healthy tissue.

    Parameters
    ----------
    channels, strides
        U-Net widths per level and the strides between levels (MONAI ``UNet``).
    num_res_units
        Residual units per level (0 keeps CPU training affordable).
    norm
        Normalisation layer (MONAI name); batch norm keeps inference independent of the crop.
    min_scale
        Smallest predicted error scale (intensity units).
    pyramid
        Levels of 2× pooling of the push-pull prefill (holes up to about ``3 * 2**pyramid``
        voxels across are filled from their own surroundings).

    Examples
    --------
    >>> net = HealthyInpainter(channels=(4, 8), strides=(2,)).eval()
    >>> x, m = torch.rand(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 8)
    >>> m[..., 2:5, 2:5, 2:5] = 1
    >>> out = net(x, m)
    >>> bool(torch.equal(out[m == 0], x[m == 0]))
    True
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        num_res_units: int = 0,
        norm: str = "batch",
        pyramid: int = 4,
        min_scale: float = 0.005,
    ) -> None:
        super().__init__()
        if int(pyramid) < 0:
            raise InputError(f"pyramid must be >= 0, got {pyramid}")
        self.pyramid = int(pyramid)
        from monai.networks.nets import UNet

        if len(strides) != len(channels) - 1:
            raise InputError(
                f"strides must have one entry fewer than channels ({len(channels) - 1}), "
                f"got {len(strides)}"
            )
        self.min_scale = float(min_scale)
        self.net = UNet(
            spatial_dims=3,
            in_channels=2,
            out_channels=2,
            channels=tuple(int(c) for c in channels),
            strides=tuple(int(s) for s in strides),
            num_res_units=int(num_res_units),
            norm=norm,
        )

    @torch.jit.export
    def prefill(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` with the holes filled from the rest by push-pull normalised convolution.

        Known voxels and their weights are averaged over 3×3×3 neighbourhoods, then pooled by
        2 up to ``pyramid`` times; going back up, each level keeps its own normalised average
        where at least 10 % of its neighbourhood is known and blends in the coarser level's
        (trilinear) elsewhere (Gortler et al. 1996's push-pull; Knutsson & Westin 1993).
        """
        keep = (mask <= 0.5).to(x.dtype)
        w = torch.nn.functional.avg_pool3d(keep, 3, stride=1, padding=1)
        v = torch.nn.functional.avg_pool3d(x * keep, 3, stride=1, padding=1)
        ws = [w]
        vs = [v]
        for _ in range(self.pyramid):
            if (
                min(w.shape[2], w.shape[3], w.shape[4]) < 4
                or (w.shape[2] % 2 + w.shape[3] % 2 + w.shape[4] % 2) > 0
            ):
                break
            w = torch.nn.functional.avg_pool3d(w, 2)
            v = torch.nn.functional.avg_pool3d(v, 2)
            ws.append(w)
            vs.append(v)
        total = ws[-1].sum(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
        mean = vs[-1].sum(dim=(2, 3, 4), keepdim=True) / total
        a = (ws[-1] / 0.1).clamp(0.0, 1.0)
        est = a * vs[-1] / ws[-1].clamp_min(1e-6) + (1.0 - a) * mean
        for i in range(len(ws) - 2, -1, -1):
            up = torch.nn.functional.interpolate(
                est, size=ws[i].shape[2:], mode="trilinear", align_corners=False
            )
            a = (ws[i] / 0.1).clamp(0.0, 1.0)
            est = a * vs[i] / ws[i].clamp_min(1e-6) + (1.0 - a) * up
        return torch.where(keep > 0.5, x, est)

    @torch.jit.export
    def predict(self, x: Tensor, mask: Tensor) -> Tensor:
        """The network's healthy estimate everywhere (meaningful inside ``mask``).

        ``x`` and ``mask`` are ``(B, 1, D, H, W)``; mask voxels above 0.5 are holes. The
        estimate is the normalised-convolution prefill plus the U-Net's correction.
        """
        return self.predict_with_scale(x, mask)[0]

    @torch.jit.export
    def predict_with_scale(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Healthy estimate and the Laplace scale of its error, both ``(B, 1, D, H, W)``."""
        m = (mask > 0.5).to(x.dtype)
        guess = self.prefill(x, mask)
        out = self.net(torch.cat([guess, m], dim=1))
        scale = torch.nn.functional.softplus(out[:, 1:2]) + self.min_scale
        return guess + out[:, :1], scale

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` with the voxels of ``mask`` (> 0.5) replaced by the network's prediction."""
        return torch.where(mask > 0.5, self.predict(x, mask), x)


@dataclass
class LoadedInpainter:
    """An inpainter ready for counterfactuals: module, grid contract, identity, calibration.

    Attributes
    ----------
    module
        The TorchScript (or plain) :class:`HealthyInpainter`.
    spec
        Its grid and intensity contract; ``spec.extra["anomaly"]`` holds the anomaly-mask
        calibration computed at training time (see :mod:`medattr.generative.anomaly`).
    path, sha256
        What was loaded.
    """

    module: Any
    spec: ModelSpec
    path: str
    sha256: str

    @property
    def multiple(self) -> int:
        """Spatial sizes the network accepts are multiples of this (the product of strides)."""
        strides = self.spec.extra.get("strides") if isinstance(self.spec.extra, dict) else None
        prod = 1
        for s in strides or (2, 2, 2):
            prod *= int(s)
        return prod

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The anomaly-mask calibration stored with the weights, if any."""
        cal = self.spec.extra.get("anomaly") if isinstance(self.spec.extra, dict) else None
        return dict(cal) if isinstance(cal, dict) else None

    def _run(self, fn: str, x: Tensor, mask: Tensor) -> Any:
        if x.dim() != 5 or x.shape[1] != 1:
            raise InputError(f"x must be (B, 1, D, H, W), got shape {tuple(x.shape)}")
        if tuple(mask.shape) != tuple(x.shape):
            raise InputError(
                f"mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}"
            )
        k = self.multiple
        pad = [(-n) % k for n in x.shape[2:]]
        first = next(iter(self.module.parameters()), None)  # none in a parameter-free module
        dev = first.device if first is not None else x.device
        xin, min_ = x.to(dev, torch.float32), mask.to(dev, torch.float32)
        if any(pad):
            spec = [v for p in reversed(pad) for v in (0, p)]
            xin = torch.nn.functional.pad(xin, spec, mode="replicate")
            min_ = torch.nn.functional.pad(min_, spec)
        with torch.no_grad():
            out = getattr(self.module, fn)(xin, min_)
        outs = out if isinstance(out, tuple) else (out,)
        cut = tuple(
            o[..., : x.shape[2], : x.shape[3], : x.shape[4]].to(x.device, x.dtype) for o in outs
        )
        return cut if isinstance(out, tuple) else cut[0]

    def predict(self, x: Tensor, mask: Tensor) -> Tensor:
        """Healthy estimate everywhere (``(B, 1, *spatial)``), any grid size (padded inside)."""
        return self._run("predict", x, mask)

    def predict_with_scale(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Healthy estimate and the Laplace scale of its error (see
        :meth:`HealthyInpainter.predict_with_scale`)."""
        if not hasattr(self.module, "predict_with_scale"):
            mean = self._run("predict", x, mask)
            return mean, torch.ones_like(mean)
        mean, scale = self._run("predict_with_scale", x, mask)
        return mean, scale

    def infill(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x`` with the voxels of ``mask`` (> 0.5) replaced; every other voxel exactly ``x``."""
        pred = self._run("predict", x, mask)
        return torch.where(mask.to(x.device) > 0.5, pred, x)

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "name": self.spec.name}


def load_inpainter(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> LoadedInpainter:
    """Load an inpainter saved as TorchScript (``builtin:NAME`` for a shipped one).

    A bundle directory is read from its ``models/inpainter.ts``.

    Raises
    ------
    ModelError
        If the file is missing, not TorchScript, or has no ``predict`` method.
    """
    module, meta, file = open_scripted(path, "inpainter", "inpainter.ts", device)
    if not hasattr(module, "predict"):
        raise ModelError("the TorchScript module has no predict method; not an inpainter", file)
    for prm in module.parameters():
        prm.requires_grad_(False)
    return LoadedInpainter(module, spec_of(meta, file), str(file), file_sha256(file))
