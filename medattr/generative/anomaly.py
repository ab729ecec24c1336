"""Where is the anomaly? A mask from the healthy inpainter, with no ground truth.

1. **Residual map.** The volume is tiled into cubic blocks; the blocks of one parity class
   (every other block along each axis: 8 classes partition the volume) are blanked together
   and inpainted from their surroundings, so every voxel gets a healthy prediction made
   without seeing it, with the scale ``b`` of its expected error (what the inpainter learned
   about how predictable each place is: white matter well, cortex poorly). Predictions are
   averaged over a few shifts of the tiling (and block sizes); the normalised residual
   ``(x - healthy) / b`` is smoothed with a Gaussian (``sigma_mm``) and its absolute value is
   the anomaly score. (Leave-block-out inpainting after the region-masking
   idea of IterMask3D, Liang et al. 2025; smoothing the signed residual averages out noise.)
2. **Threshold.** Calibrated on healthy validation volumes (:func:`calibrate_anomaly`): the
   smallest threshold at which at most ``healthy_fpr`` of them produce any connected component
   of at least ``min_volume_mm3`` (a conformal order statistic, as AutoDDPM sets its threshold
   from healthy false positives, Bercea et al. 2023).
3. **Mask.** Components at least ``min_volume_mm3`` large, holes filled, dilated by
   ``dilation_mm``. Then ``rounds`` of refinement: inpaint the whole mask, recompute the
   residual inside it (now against a prediction that saw none of the masked tissue), keep
   what is above ``refine_factor`` × threshold, fill holes, dilate; stop when the mask no
   longer changes.

A volume whose residual has no component above the threshold gets an empty mask: nothing is
invented where there is nothing to find.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from medattr.errors import InputError

__all__ = [
    "AnomalyMask",
    "AnomalyMasker",
    "AnomalySettings",
    "anomaly_score",
    "block_pattern",
    "calibrate_anomaly",
    "candidate_components",
    "component_stats",
    "residual_map",
]


class _Predictor(Protocol):
    def predict(self, x: Tensor, mask: Tensor) -> Tensor: ...


def _mean_and_scale(g: Any, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The inpainter's healthy estimate and error scale (scale 1 if it predicts none)."""
    if hasattr(g, "predict_with_scale"):
        mean, scale = g.predict_with_scale(x, mask)
        return mean, scale
    mean = g.predict(x, mask)
    return mean, torch.ones_like(mean)


@dataclass(frozen=True)
class AnomalySettings:
    """How the anomaly map and mask are made (JSON-able; stored with the calibration).

    Attributes
    ----------
    block_mm
        Edge lengths (mm) of the leave-block-out tilings; one tiling per entry.
    shifts
        Shifts of each tiling (by ``k / shifts`` of a block along every axis).
    sigma_mm
        Gaussian smoothing of the signed residual.
    min_volume_mm3
        Smallest component counted as an anomaly.
    healthy_fpr
        Largest fraction of healthy calibration volumes allowed to produce a component.
    dilation_mm
        Margin added around the found anomaly.
    rounds
        Refinement rounds (0: the first mask is final).
    refine_factor
        Threshold inside the mask during refinement, as a multiple of the calibrated one.
    edge_fraction
        A component keeps only the voxels whose score is at least this fraction of its peak
        (a half-maximum edge for 0.5): smoothing spreads a strong lesion's residual beyond
        its edge, and this puts the edge back where the contrast halves.
    batch
        Volumes per inpainter call.
    """

    block_mm: tuple[float, ...] = (24.0,)
    shifts: int = 2
    sigma_mm: float = 4.5
    min_volume_mm3: float = 300.0
    healthy_fpr: float = 0.05
    dilation_mm: float = 4.5
    rounds: int = 3
    refine_factor: float = 1.0
    edge_fraction: float = 0.5
    batch: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_mm", tuple(float(b) for b in self.block_mm))
        if not self.block_mm or min(self.block_mm) <= 0:
            raise InputError(f"block_mm must be positive sizes in mm, got {self.block_mm!r}")
        for name in ("shifts", "batch"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sigma_mm", "min_volume_mm3", "dilation_mm", "refine_factor"):
            if float(getattr(self, name)) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.edge_fraction < 1.0:
            raise InputError(f"edge_fraction must be in [0, 1), got {self.edge_fraction}")
        if not 0.0 < self.healthy_fpr < 1.0:
            raise InputError(f"healthy_fpr must be in (0, 1), got {self.healthy_fpr}")
        if int(self.rounds) < 0:
            raise InputError(f"rounds must be >= 0, got {self.rounds}")

    def blocks_vox(self, spacing: Sequence[float]) -> list[tuple[int, int, int]]:
        """Block edge in voxels per axis for each tiling, on a grid of ``spacing`` mm."""
        return [
            tuple(max(2, round(b / float(s))) for s in spacing)  # type: ignore[misc]
            for b in self.block_mm
        ]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["block_mm"] = list(self.block_mm)
        return d


def block_pattern(
    shape: Sequence[int],
    block: int | Sequence[int],
    offset: Sequence[int] = (0, 0, 0),
    parity: Sequence[int] = (0, 0, 0),
) -> np.ndarray:
    """Bool mask of the blocks of one parity class of a cubic tiling.

    Voxel ``v`` is in the mask when ``((v + offset) // block) % 2 == parity`` on every axis;
    the 8 parities partition the grid.
    """
    b = [int(block)] * 3 if isinstance(block, int | np.integer) else [int(v) for v in block]
    axes = [
        ((np.arange(int(n)) + int(o)) // bb) % 2 == int(p)
        for n, bb, o, p in zip(shape, b, offset, parity, strict=True)
    ]
    return axes[0][:, None, None] & axes[1][None, :, None] & axes[2][None, None, :]


def _gauss(x: Tensor, sigma_vox: Sequence[float]) -> Tensor:
    out = x
    for axis, s in enumerate(sigma_vox):
        if s <= 0:
            continue
        r = max(1, math.ceil(3.0 * s))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-0.5 * (t / s) ** 2)
        k = k / k.sum()
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k.numel()
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r
        out = torch.nn.functional.conv3d(
            torch.nn.functional.pad(out, pad, mode="replicate"), k.view(shape)
        )
    return out


def _check(x: Tensor, spacing: Sequence[float]) -> tuple[float, float, float]:
    if x.dim() != 5 or x.shape[1] != 1:
        raise InputError(f"x must be (B, 1, D, H, W), got shape {tuple(x.shape)}")
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or min(sp) <= 0:
        raise InputError(f"spacing must be three positive sizes in mm, got {spacing!r}")
    return sp


def _predict_batched(g: _Predictor, x: Tensor, masks: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    means, scales = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            mean, scale = _mean_and_scale(g, x[i : i + batch], masks[i : i + batch])
            means.append(mean)
            scales.append(scale)
    return torch.cat(means), torch.cat(scales)


def residual_map(
    inpainter: _Predictor,
    x: Tensor,
    spacing: Sequence[float],
    settings: AnomalySettings | None = None,
) -> Tensor:
    """Anomaly score ``|smooth((x - healthy) / b)|`` of each voxel, ``(B, 1, D, H, W)`` float32.

    ``healthy`` and its error scale ``b`` are the leave-block-out predictions described in the
    module docstring, averaged over the tilings.
    """
    st = settings or AnomalySettings()
    sp = _check(x, spacing)
    x = x.detach().float()
    shape = tuple(x.shape[2:])
    healthy = torch.zeros_like(x)
    scale = torch.zeros_like(x)
    n = 0
    parities = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
    for block in st.blocks_vox(sp):
        for k in range(st.shifts):
            offset = tuple(int(bb * k // st.shifts) for bb in block)
            pats = torch.from_numpy(
                np.stack([block_pattern(shape, block, offset, p) for p in parities])
            ).to(x.device)
            masks = pats[None, :, None].expand(x.shape[0], -1, -1, -1, -1, -1).float()
            reps = x[:, None].expand(-1, len(parities), -1, -1, -1, -1)
            pred, b = _predict_batched(
                inpainter, reps.reshape(-1, 1, *shape), masks.reshape(-1, 1, *shape), st.batch
            )
            view = (x.shape[0], len(parities), 1, *shape)
            healthy += (pred.float().view(view) * masks).sum(1)
            scale += (b.float().view(view) * masks).sum(1)
            n += 1
    return _smoothed_abs((x - healthy / n) / (scale / n), sp, st.sigma_mm)


def _smoothed_abs(diff: Tensor, spacing: Sequence[float], sigma_mm: float) -> Tensor:
    return _gauss(diff, [sigma_mm / s for s in spacing]).abs()


def _components(mask: np.ndarray, min_vox: float) -> np.ndarray:
    """``mask`` without the connected components (26-connected) smaller than ``min_vox``."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_vox
    keep[0] = False
    return keep[lab]


def _core(r: np.ndarray, threshold: float, min_vox: float, edge_fraction: float) -> np.ndarray:
    """Components of ``r > threshold`` of at least ``min_vox`` voxels, each cut at
    ``edge_fraction`` of its own peak, small remnants dropped, holes filled."""
    big = _components(r > threshold, min_vox)
    if not big.any() or edge_fraction <= 0:
        return ndimage.binary_fill_holes(big)
    lab, n = ndimage.label(big, structure=np.ones((3, 3, 3), bool))
    peaks = np.asarray(ndimage.maximum(r, lab, index=np.arange(1, n + 1)), dtype=np.float64)
    level = np.concatenate([[np.inf], edge_fraction * peaks])
    core = big & (r >= level[lab])
    return ndimage.binary_fill_holes(_components(core, min_vox))


def _has_component(r: np.ndarray, t: float, min_vox: float) -> bool:
    return bool(_components(r > t, min_vox).any())


def _clear_level(r: np.ndarray, min_vox: float, iters: int = 30) -> float:
    """Smallest threshold (to bisection precision) at which ``r > t`` has no large component."""
    hi = float(r.max())
    if not _has_component(r, 0.0, min_vox):
        return 0.0
    lo = 0.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if _has_component(r, mid, min_vox):
            lo = mid
        else:
            hi = mid
    return hi


def anomaly_score(
    scorer: Any, x: Tensor, spacing: Sequence[float], settings: AnomalySettings
) -> Tensor:
    """The anomaly score map of ``x`` ``(B, 1, D, H, W)``: ``scorer.score(x, spacing)`` when the
    scorer has one (:class:`~medattr.generative.normative.NormativeResidual`), else the
    leave-block-out :func:`residual_map` of an inpainter."""
    if hasattr(scorer, "score"):
        return scorer.score(x, spacing)
    return residual_map(scorer, x, spacing, settings)


def calibrate_anomaly(
    inpainter: Any,
    healthy: Tensor,
    settings: AnomalySettings | None = None,
    spacing: Sequence[float] = (3.0, 3.0, 3.0),
) -> dict[str, Any]:
    """Calibrate the anomaly threshold on healthy volumes ``(N, 1, D, H, W)``.

    ``inpainter`` is the scorer: an inpainter (leave-block-out residual) or an object with
    ``score(x, spacing)`` (see :func:`anomaly_score`).

    For each volume the *clearing level* is the smallest threshold at which its residual map
    has no component of ``min_volume_mm3`` or more. The threshold is the
    ``ceil((N + 1)(1 - healthy_fpr))``-th smallest clearing level (the largest one when that
    exceeds N), so at most ``healthy_fpr`` of the calibration volumes - and, for exchangeable
    new healthy volumes, that fraction in expectation - produce a component.

    Returns
    -------
    dict
        The settings, ``threshold``, ``spacing``, ``n_healthy``, each volume's clearing level
        (in input order) and their quantiles, and the fraction of calibration volumes left with
        a component; JSON-able, stored in the inpainter's spec as ``extra["anomaly"]``.
    """
    st = settings or AnomalySettings()
    sp = _check(healthy, spacing)
    if len(healthy) < 1:
        raise InputError("calibration needs at least one healthy volume")
    min_vox = st.min_volume_mm3 / float(np.prod(sp))
    levels: list[float] = []
    for i in range(0, len(healthy), st.batch):
        r = anomaly_score(inpainter, healthy[i : i + st.batch], sp, st)
        levels.extend(_clear_level(ri[0].numpy(), min_vox) for ri in r.cpu())
    lv = np.sort(np.asarray(levels))
    n = len(lv)
    k = math.ceil((n + 1) * (1.0 - st.healthy_fpr))
    threshold = float(lv[min(k, n) - 1])
    return {
        **st.to_dict(),
        "threshold": threshold,
        "spacing": list(sp),
        "n_healthy": n,
        "flagged_fraction": float(np.mean(lv > threshold)),
        "clearing_level_quantiles": {
            q: float(np.quantile(lv, float(q))) for q in ("0.5", "0.9", "0.95", "1.0")
        },
        "clearing_levels": [float(v) for v in levels],
    }


def component_stats(mask: np.ndarray, spacing: Sequence[float]) -> list[dict[str, Any]]:
    """Connected components (26-connected) of a bool ``(I, J, K)`` mask: voxels, mm³, centroid
    (voxel indices), largest first."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    vox = float(np.prod([float(s) for s in spacing]))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    centroids = ndimage.center_of_mass(mask, lab, range(1, n + 1))
    rows = [
        {
            "voxels": int(s),
            "volume_mm3": round(float(s) * vox, 3),
            "centroid_vox": [round(float(c), 2) for c in cen],
        }
        for s, cen in zip(sizes, centroids, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["voxels"])


@dataclass
class AnomalyMask:
    """The anomaly mask of one volume and how it was reached."""

    mask: np.ndarray  # (I, J, K) bool
    residual: np.ndarray  # (I, J, K) float32, the first residual map
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not bool(self.mask.any())


def _dilate(mask: np.ndarray, radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    if radius_mm <= 0 or not mask.any():
        return mask
    d = ndimage.distance_transform_edt(~mask, sampling=[float(s) for s in spacing])
    return d <= radius_mm + 1e-6


def candidate_components(
    score: np.ndarray,
    threshold: float,
    spacing: Sequence[float],
    settings: AnomalySettings,
) -> list[tuple[float, np.ndarray]]:
    """The components an anomaly mask would keep from ``score`` ``(I, J, K)`` at ``threshold``,
    one by one: each cut at ``settings.edge_fraction`` of its own peak, at least
    ``settings.min_volume_mm3``, holes filled, dilated by ``settings.dilation_mm``; returned as
    ``(peak score, bool mask)``, strongest first (for growing a mask one component at a time).
    """
    sp = tuple(float(s) for s in spacing)
    min_vox = settings.min_volume_mm3 / float(np.prod(sp))
    core = _core(np.asarray(score, np.float64), threshold, min_vox, settings.edge_fraction)
    lab, n = ndimage.label(core, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    peaks = np.asarray(ndimage.maximum(score, lab, index=np.arange(1, n + 1)), np.float64)
    order = np.argsort(-peaks, kind="stable")
    return [(float(peaks[k]), _dilate(lab == k + 1, settings.dilation_mm, sp)) for k in order]


class AnomalyMasker:
    """Anomaly masks from a healthy inpainter and its calibration (settings-first).

    Parameters
    ----------
    inpainter
        An object with ``predict(x, mask)`` (:class:`~medattr.generative.LoadedInpainter`).
    calibration
        The dict :func:`calibrate_anomaly` returned (default: the one stored with the
        inpainter, ``inpainter.calibration``).
    threshold
        Overrides the calibrated threshold (for experiments; the calibrated one is the default).
    rounds, dilation_mm, refine_factor
        Override the calibration's settings of the same name.
    scorer
        Where the score comes from, if not the inpainter's leave-block-out residual: an object
        with ``score(x, spacing)`` and its own ``calibration``
        (:class:`~medattr.generative.normative.NormativeResidual`). Refinement rounds
        re-score with the inpainter, on the inpainter's scale, so they need its own score.
    """

    def __init__(
        self,
        inpainter: Any,
        calibration: dict[str, Any] | None = None,
        threshold: float | None = None,
        rounds: int | None = None,
        dilation_mm: float | None = None,
        refine_factor: float | None = None,
        scorer: Any = None,
    ) -> None:
        source = scorer if scorer is not None else inpainter
        cal = calibration if calibration is not None else getattr(source, "calibration", None)
        if not isinstance(cal, dict) or "threshold" not in cal:
            raise InputError(
                "the anomaly mask needs a calibration (calibrate_anomaly's result); this "
                f"{'scorer' if scorer is not None else 'inpainter'} carries none"
            )
        names = set(AnomalySettings.__dataclass_fields__)
        base = {k: v for k, v in cal.items() if k in names}
        over = {"rounds": rounds, "dilation_mm": dilation_mm, "refine_factor": refine_factor}
        base.update({k: v for k, v in over.items() if v is not None})
        self.settings = AnomalySettings(**base)
        self.threshold = float(cal["threshold"] if threshold is None else threshold)
        if not self.threshold > 0:
            raise InputError(f"threshold must be > 0, got {self.threshold}")
        if scorer is not None and self.settings.rounds > 0:
            raise InputError(
                "refinement rounds re-score with the inpainter's own residual; with another "
                "anomaly score set rounds to 0"
            )
        self.inpainter = inpainter
        self.scorer = scorer if scorer is not None else inpainter
        self.calibration = dict(cal)

    def describe(self) -> dict[str, Any]:
        info = {**self.settings.to_dict(), "threshold": self.threshold}
        if hasattr(self.scorer, "describe") and self.scorer is not self.inpainter:
            info["score"] = self.scorer.describe()
        else:
            info["score"] = {"score": "inpainter-leave-block-out"}
        return info

    def __call__(self, x: Tensor, spacing: Sequence[float]) -> list[AnomalyMask]:
        """One :class:`AnomalyMask` per volume of ``x`` ``(B, 1, D, H, W)``."""
        sp = _check(x, spacing)
        st = self.settings
        min_vox = st.min_volume_mm3 / float(np.prod(sp))
        res = anomaly_score(self.scorer, x, sp, st).cpu().numpy()[:, 0]
        out = []
        for i in range(len(x)):
            core = _core(res[i], self.threshold, min_vox, st.edge_fraction)
            mask = _dilate(core, st.dilation_mm, sp)
            steps = [
                {"step": "threshold", "voxels": int(core.sum())},
                {"step": "dilate", "voxels": int(mask.sum())},
            ]
            for k in range(st.rounds):
                if not mask.any():
                    break
                new = self._refine(x[i : i + 1], mask, sp, min_vox)
                steps.append({"step": f"refine {k + 1}", "voxels": int(new.sum())})
                if np.array_equal(new, mask):
                    steps[-1]["converged"] = True
                    break
                mask = new
            out.append(AnomalyMask(mask, res[i].astype(np.float32), steps))
        return out

    def _refine(
        self, x: Tensor, mask: np.ndarray, spacing: Sequence[float], min_vox: float
    ) -> np.ndarray:
        st = self.settings
        m = torch.from_numpy(mask)[None, None].to(x.device, torch.float32)
        with torch.no_grad():
            pred, b = _mean_and_scale(self.inpainter, x.float(), m)
        z = (x.float() - pred.float()) / b.float()
        diff = torch.where(m > 0.5, z, torch.zeros_like(z))
        r = _smoothed_abs(diff, spacing, st.sigma_mm)[0, 0].cpu().numpy()
        r = np.where(mask, r, 0.0)
        core = _core(r, st.refine_factor * self.threshold, min_vox, st.edge_fraction)
        return _dilate(core, st.dilation_mm, spacing)
