"""How a network is applied to a volume: whole, or by sliding windows with window-wise gradients.

Most clinical segmentation networks run by sliding windows (MONAI's
``sliding_window_inference``): the volume is cut into overlapping windows, each window's output
is weighted by an importance map, and the blended output is normalised by the summed weights.
A target that is a sum of one label's logits over a region is *linear* in that blended output,
so its input gradient is the sum over windows of each window's gradient, weighted by
importance / count inside the region. :meth:`SlidingWindowModel.value_and_grad` computes it
window batch by window batch and scatter-adds, so memory stays one window batch whatever the
volume size; the path engine uses it whenever the bound target says it is linear
(:class:`~medattr.targets.SegmentationTarget` on logits). Any other target goes through MONAI's
``sliding_window_inference`` and plain autograd.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from medattr.errors import ModelError

__all__ = ["SLIDING_WINDOW", "SlidingWindowModel", "check_inferer", "inferer_from_monai"]

SLIDING_WINDOW = "sliding_window"
_DEFAULTS: dict[str, Any] = {
    "sw_batch_size": 4,
    "overlap": 0.25,
    "mode": "constant",
    "sigma_scale": 0.125,
    "padding_mode": "constant",
    "cval": 0.0,
}


def check_inferer(config: Mapping[str, Any]) -> dict[str, Any]:
    """A validated sliding-window description (defaults filled in).

    Examples
    --------
    >>> check_inferer({"type": "sliding_window", "roi_size": [96, 96, 96]})["overlap"]
    0.25
    """
    if not isinstance(config, Mapping):
        raise ModelError(f"the model spec's inferer must be an object, got {config!r}")
    out = {**_DEFAULTS, **dict(config)}
    kind = out.pop("type", SLIDING_WINDOW)
    if kind != SLIDING_WINDOW:
        raise ModelError(f"inferer type must be {SLIDING_WINDOW!r}, got {kind!r}")
    unknown = set(out) - {*_DEFAULTS, "roi_size"}
    if unknown:
        raise ModelError(f"unknown inferer setting(s): {', '.join(sorted(unknown))}")
    roi: Any = out.get("roi_size")
    if isinstance(roi, int):
        roi = [roi] * 3
    if (
        not isinstance(roi, Sequence)
        or not roi
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in roi)
    ):
        raise ModelError(f"inferer roi_size must be positive integers, got {roi!r}")
    if not isinstance(out["sw_batch_size"], int) or out["sw_batch_size"] < 1:
        raise ModelError(f"inferer sw_batch_size must be >= 1, got {out['sw_batch_size']!r}")
    overlap = out["overlap"]
    overlaps = overlap if isinstance(overlap, Sequence) else [overlap]
    if not all(isinstance(o, int | float) and 0 <= o < 1 for o in overlaps):
        raise ModelError(f"inferer overlap must be in [0, 1), got {overlap!r}")
    if out["mode"] not in ("constant", "gaussian"):
        raise ModelError(f"inferer mode must be 'constant' or 'gaussian', got {out['mode']!r}")
    return {"type": SLIDING_WINDOW, **out, "roi_size": [int(v) for v in roi]}


def inferer_from_monai(inferer: Any) -> dict[str, Any] | None:
    """The sliding-window description of a MONAI inferer object (``None`` for a simple one)."""
    from monai.inferers import SimpleInferer, SlidingWindowInferer

    if inferer is None or isinstance(inferer, SimpleInferer):
        return None
    if isinstance(inferer, SlidingWindowInferer):
        roi: Any = inferer.roi_size
        return check_inferer(
            {
                "roi_size": [roi] * 3 if isinstance(roi, int) else list(roi),
                "sw_batch_size": int(inferer.sw_batch_size),
                "overlap": inferer.overlap,
                "mode": str(getattr(inferer.mode, "value", inferer.mode)),
                "sigma_scale": inferer.sigma_scale,
                "padding_mode": str(getattr(inferer.padding_mode, "value", inferer.padding_mode)),
                "cval": float(inferer.cval),
            }
        )
    raise ModelError(
        f"the bundle's inferer {type(inferer).__name__} is not supported; medattr applies "
        "networks whole or by SlidingWindowInferer"
    )


class SlidingWindowModel(torch.nn.Module):
    """A network applied by overlapping windows, blended as MONAI blends them.

    Parameters
    ----------
    network
        The network (maps a window ``(n, C, *roi_size)`` to ``(n, K, *roi_size)``).
    roi_size, sw_batch_size, overlap, mode, sigma_scale, padding_mode, cval
        As :func:`monai.inferers.sliding_window_inference` takes them.
    """

    windowed = True

    def __init__(
        self,
        network: torch.nn.Module,
        roi_size: Sequence[int],
        sw_batch_size: int = 4,
        overlap: float | Sequence[float] = 0.25,
        mode: str = "constant",
        sigma_scale: float | Sequence[float] = 0.125,
        padding_mode: str = "constant",
        cval: float = 0.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.roi_size = tuple(int(v) for v in roi_size)
        self.sw_batch_size = int(sw_batch_size)
        self.overlap = overlap
        self.mode = mode
        self.sigma_scale = sigma_scale
        self.padding_mode = padding_mode
        self.cval = float(cval)

    def describe(self) -> dict[str, Any]:
        return {
            "type": SLIDING_WINDOW,
            "roi_size": list(self.roi_size),
            "sw_batch_size": self.sw_batch_size,
            "overlap": self.overlap,
            "mode": self.mode,
        }

    def forward(self, x: Tensor) -> Tensor:
        from monai.inferers import sliding_window_inference

        out = sliding_window_inference(
            x,
            self.roi_size,
            self.sw_batch_size,
            self.network,
            overlap=self.overlap,
            mode=self.mode,
            sigma_scale=self.sigma_scale,
            padding_mode=self.padding_mode,
            cval=self.cval,
        )
        return out if isinstance(out, Tensor) else torch.as_tensor(out)

    def value_and_grad(
        self, x: Tensor, channel: int, weights: Tensor, scale: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """``T = sum_v weights[m, v] * out[m, channel, v]`` for each input ``m`` and its
        gradient with respect to ``x``, one window batch at a time.

        Parameters
        ----------
        x
            Inputs ``(M, C, *spatial)``.
        channel
            Output channel of the target.
        weights
            ``(M, *spatial)`` weight of each voxel of the blended output (a region mask, or
            mask / voxel count for a mean).

        Returns
        -------
        values, grads
            ``(M,)`` float64 values and ``(M, C, *spatial)`` gradients.
        """
        from monai.data.utils import compute_importance_map, dense_patch_slices
        from monai.utils import fall_back_tuple

        nd = x.dim() - 2
        image_size_ = tuple(int(v) for v in x.shape[2:])
        roi = tuple(int(v) for v in fall_back_tuple(self.roi_size, image_size_))
        if len(roi) != nd:
            raise ModelError(f"sliding window roi_size {roi} does not fit a {nd}D input")
        image_size = tuple(max(i, r) for i, r in zip(image_size_, roi, strict=True))
        pad: list[int] = []
        for k in range(nd - 1, -1, -1):
            diff = max(roi[k] - image_size_[k], 0)
            pad += [diff // 2, diff - diff // 2]
        overlap = self.overlap if isinstance(self.overlap, Sequence) else [self.overlap] * nd
        interval = tuple(
            r if r == i else max(int(r * (1 - float(o))), 1)
            for r, i, o in zip(roi, image_size, overlap, strict=True)
        )
        slices = dense_patch_slices(image_size, roi, interval)
        x_req = x.detach().float().requires_grad_(True)
        x_pad = F.pad(x_req, pad, mode=self.padding_mode, value=self.cval) if any(pad) else x_req
        w = weights.detach().float().to(x.device)
        w_pad = F.pad(w[:, None], pad)[:, 0] if any(pad) else w
        importance = compute_importance_map(
            roi, mode=self.mode, sigma_scale=self.sigma_scale, device=x.device, dtype=torch.float32
        )
        count = torch.zeros(image_size, dtype=torch.float32, device=x.device)
        for s in slices:
            count[s] += importance
        g = w_pad / count  # d T / d (importance * window output), per voxel
        grad_pad = torch.zeros_like(x_pad)
        values = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        frames = x_pad.detach()
        windows = [(m, s) for m in range(x.shape[0]) for s in slices]
        for start in range(0, len(windows), self.sw_batch_size):
            batch = windows[start : start + self.sw_batch_size]
            xw = torch.stack([frames[m][_window(s)] for m, s in batch]).requires_grad_(True)
            out = self.network(xw)
            if not isinstance(out, Tensor) or tuple(out.shape[2:]) != roi:
                raise ModelError(
                    "window-wise gradients need a network whose output has the window's "
                    f"spatial shape {roi}; got {getattr(out, 'shape', type(out).__name__)}"
                )
            wts = torch.stack([g[m][s] for m, s in batch]) * importance
            contrib = (out[:, channel].float() * wts).flatten(1).sum(1)
            (gw,) = torch.autograd.grad(contrib.sum() * scale, xw)
            for j, (m, s) in enumerate(batch):
                grad_pad[m][_window(s)] += gw[j]
                values[m] += contrib[j].detach().double()
        if any(pad):
            (grads,) = torch.autograd.grad(x_pad, x_req, grad_outputs=grad_pad)
        else:
            grads = grad_pad
        if scale != 1.0:
            grads = grads / scale
        return values, grads


def _window(s: Sequence[slice]) -> tuple[slice, ...]:
    """Index of a window (all channels) in a ``(C, *spatial)`` tensor."""
    return (slice(None), *s)
