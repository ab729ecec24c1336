"""Lesions of the MNI brain studies: where, how many, what shape, how bright and which way.

Each lesion study draws one *category* from the ``lesion`` random stream of its seed, and all
of its lesions share it (so per-category sensitivity is well defined):

location (1/3 each)
    ``deep``: centre in white matter (probability ≥ 0.5) or deep grey matter (≥ 25 mm from the
    surface, ≥ 8 mm off the midline) of the cerebrum, the whole lesion inside the brain
    (deeper than its own extent plus a voxel); ``cortical``: centre in the
    cortical ribbon of the cerebrum (grey-matter probability ≥ 0.5, at most 20 mm from the
    brain's outer surface, sulci included), so the lesion touches the cortex and may reach the
    surface; ``infratentorial``: centre in the cerebellum or brainstem (see
    ``mni._infratentorial``). A lesion is cut to the brain and to its side of the tentorium.
count
    ``single`` (one lesion, probability 1/2, mean radius 6–18 mm, at most 13 mm below the
    tentorium) or ``multiple`` (2–4 lesions, each 4–11 mm), never overlapping.
shape (1/3 each)
    ``round``, ``elongated`` or ``irregular``
    (:func:`medattr.synthetic._lesion.sample_shape_class`).
contrast (1/3 each)
    the absolute intensity difference ``Δ`` between the lesion and the healthy tissue it
    replaces (its mean ``m`` under the lesion), on the studies' [0, 1] scale where grey and
    white matter differ by about 0.22: ``low`` 0.06–0.10, ``medium`` 0.10–0.18, ``high``
    0.18–0.35. Every lesion must be visible at 3 mm: ``Δ`` is raised, where needed, to satisfy
    the Rose criterion ``Δ / σ · √A ≥ 5`` (``σ`` the study's noise std, ``A`` the area of the
    lesion's largest cross-section in voxels of the grid); 0.06 is the floor in any case.
    The recorded class is that of the largest *realised* ``Δ`` among the study's lesions.
polarity (1/2 each)
    ``hyper`` (lesion level ``m + Δ``) or ``hypo`` (``m − Δ``), clipped to ``[0.03, 1]``. A
    lesion whose clipped level cannot realise its ``Δ`` (a bright lesion in bright white
    matter) is placed elsewhere in its location class (up to 40 tries, then the try with the
    largest realised contrast is kept).

The lesion's tissue is its level plus a faint texture (std 0.005–0.02), blended into the healthy
image with the shape's soft-edged weight; the mask is the weight's support.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medattr.errors import InputError
from medattr.synthetic._fields import SinusoidField, stream_rng
from medattr.synthetic._lesion import SHAPE_CLASSES, LesionShape, sample_shape_class
from medattr.synthetic.study import world_points

__all__ = [
    "CONTRAST_CLASSES",
    "COUNTS",
    "LOCATIONS",
    "POLARITIES",
    "SHAPE_CLASSES",
    "contrast_class",
    "insert_brain_lesions",
]

LOCATIONS = ("deep", "cortical", "infratentorial")
COUNTS = ("single", "multiple")
POLARITIES = ("hyper", "hypo")
#: Absolute lesion-to-tissue intensity difference per contrast class ([0, 1] scale).
CONTRAST_CLASSES = {"low": (0.06, 0.10), "medium": (0.10, 0.18), "high": (0.18, 0.35)}
RADIUS_MM = {"single": (6.0, 18.0), "multiple": (4.0, 11.0)}
MAX_LESIONS = 4
_INFRA_MAX_RADIUS_MM = 13.0
_FLOOR = 0.06
_ROSE_K = 5.0
_LEVEL = (0.03, 1.0)
_TRIES = 40
_CORTEX_MAX_DEPTH_MM = 20.0
_DEEP_GM_DEPTH_MM = 25.0
_MIDLINE_MM = 8.0


def contrast_class(delta: float) -> str:
    """The class of :data:`CONTRAST_CLASSES` an absolute contrast falls in (below the lowest
    class: ``"low"``, above the highest: ``"high"``)."""
    for name, (_, hi) in CONTRAST_CLASSES.items():
        if delta < hi:
            return name
    return "high"


@dataclass
class _Anatomy:
    """Where lesions of one location class may be centred, on one subject's grid."""

    clean: np.ndarray
    brain: np.ndarray
    infra: np.ndarray  # cerebellum + brainstem, within the brain
    gm: np.ndarray
    wm: np.ndarray
    depth: np.ndarray  # mm from the outside of the lesion's compartment (brain or infra)
    affine: np.ndarray
    spacing: np.ndarray
    off_midline: np.ndarray  # |x| >= 8 mm

    @classmethod
    def of(
        cls,
        clean: np.ndarray,
        brain: np.ndarray,
        compartments: np.ndarray,
        affine: np.ndarray,
        location: str,
    ) -> _Anatomy:
        sp = np.linalg.norm(affine[:3, :3], axis=0)
        gm, wm, infra = (np.asarray(c, dtype=np.float64) for c in compartments)
        infra_mask = (infra >= 0.5) & brain
        # depth below the brain's surface (cerebrum), or inside the infratentorial compartment
        outer = infra_mask if location == "infratentorial" else brain
        depth = ndimage.distance_transform_edt(np.pad(outer, 1), sampling=sp)
        x = world_points(brain.shape, affine)[0].reshape(brain.shape)
        return cls(
            clean,
            brain,
            infra_mask,
            gm,
            wm,
            np.asarray(depth)[1:-1, 1:-1, 1:-1],
            affine,
            sp,
            np.abs(x) >= _MIDLINE_MM,
        )

    def candidates(self, location: str, shape: LesionShape) -> np.ndarray:
        """Flat indices of the voxels a lesion of this class and shape may be centred on."""
        parenchyma = (self.gm + self.wm) >= 0.5
        supra = self.brain & ~self.infra
        if location == "deep":
            # white matter, or grey matter deep in the brain off the midline (basal ganglia,
            # thalami; not the medial cortex along the falx)
            deep_gm = (self.gm >= 0.5) & (self.depth >= _DEEP_GM_DEPTH_MM) & self.off_midline
            inner = (self.wm >= 0.5) | deep_gm
            ok = supra & parenchyma & inner & (self.depth >= shape.extent_mm + self.spacing.max())
        elif location == "cortical":
            ok = supra & (self.gm >= 0.5) & (self.depth <= _CORTEX_MAX_DEPTH_MM)
        else:
            r = float(np.cbrt(np.prod(shape.ellipsoid.radii)))
            ok = self.infra & parenchyma & (self.depth >= 0.6 * r)
        return np.flatnonzero(ok.ravel())

    def compartment(self, location: str) -> np.ndarray:
        """The region a lesion of this class is cut to (its side of the tentorium)."""
        return self.infra if location == "infratentorial" else self.brain & ~self.infra


def _visibility_floor(shape: LesionShape, noise_std: float, spacing: np.ndarray) -> float:
    """The smallest contrast that meets the Rose criterion on the lesion's largest section."""
    radii = np.sort(np.asarray(shape.ellipsoid.radii, dtype=np.float64))
    reach = 1.0 + shape.lobe_amplitude / 3.0  # the core of a lobulated lesion is shrunk by this
    area_px = np.pi * radii[1] * radii[2] * reach**2 / float(np.prod(np.sort(spacing)[:2]))
    return max(_FLOOR, _ROSE_K * noise_std / float(np.sqrt(area_px)))


def _weight_in_box(
    anat: _Anatomy, shape: LesionShape, pick: np.ndarray, allowed: np.ndarray
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """The lesion's blend weight in its bounding box (and the box's world points)."""
    sp = anat.spacing
    half = np.ceil(shape.extent_mm / sp).astype(int) + 1
    vc = np.round(pick).astype(int)
    lo = np.maximum(vc - half, 0)
    hi = np.minimum(vc + half + 1, anat.brain.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sub_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    sub_aff = anat.affine.copy()
    sub_aff[:3, 3] = anat.affine[:3, :3] @ lo + anat.affine[:3, 3]
    pts = world_points(sub_shape, sub_aff)
    w = shape.weight(pts).reshape(sub_shape) * allowed[box]
    return box, w, pts


def _voxel(pick: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.clip(np.round(pick), 0, np.asarray(shape) - 1))


def _draw_category(rng: np.random.Generator) -> tuple[str, int, str, str, str]:
    location = LOCATIONS[int(rng.integers(len(LOCATIONS)))]
    n = 1 if rng.random() < 0.5 else int(rng.integers(2, MAX_LESIONS + 1))
    shape = SHAPE_CLASSES[int(rng.integers(len(SHAPE_CLASSES)))]
    contrast = tuple(CONTRAST_CLASSES)[int(rng.integers(len(CONTRAST_CLASSES)))]
    polarity = POLARITIES[int(rng.integers(len(POLARITIES)))]
    return location, n, shape, contrast, polarity


def insert_brain_lesions(
    clean: np.ndarray,
    brain: np.ndarray,
    compartments: np.ndarray,
    affine: np.ndarray,
    seed: int,
    noise_std: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Draw the study's lesion category and lesions and paint them into ``clean``.

    Parameters
    ----------
    clean : array of shape (I, J, K)
        The healthy subject (noise-free).
    brain : bool array of shape (I, J, K)
        Its brain mask.
    compartments : array of shape (3, I, J, K)
        Its grey-matter and white-matter probability and infratentorial indicator.
    affine
        Voxel-to-world (RAS mm) matrix of the grid.
    seed
        The study seed (the ``lesion`` stream is used).
    noise_std
        The noise std the study gets (sets the visibility floor; the same whether or not the
        noise is added, so the lesion does not depend on it).

    Returns
    -------
    values, weight, params
        The image with the lesions, their blend weight (its support is the mask) and a JSON-able
        description (``category`` and one entry per lesion under ``lesions``).

    Raises
    ------
    InputError
        If not even one lesion fits (a grid far coarser than the lesions).
    """
    rng = stream_rng(seed, "lesion")
    location, n_wanted, shape_class, contrast_wanted, polarity = _draw_category(rng)
    anat = _Anatomy.of(clean, brain, compartments, affine, location)
    allowed = anat.compartment(location)
    count = "single" if n_wanted == 1 else "multiple"
    lo_r, hi_r = RADIUS_MM[count]
    if location == "infratentorial":
        hi_r = min(hi_r, _INFRA_MAX_RADIUS_MM)
    values = clean.copy()
    weight = np.zeros_like(clean)
    placed: list[tuple[np.ndarray, float]] = []  # (centre mm, extent mm)
    lesions: list[dict[str, Any]] = []
    for _ in range(n_wanted):
        shape = sample_shape_class(rng, shape_class, (lo_r, hi_r))
        wanted = float(rng.uniform(*CONTRAST_CLASSES[contrast_wanted]))
        tex = SinusoidField.random(
            rng, n_waves=8, wavelength_mm=(4.0, 12.0), std=float(rng.uniform(0.005, 0.02))
        )
        lesion = _place(rng, anat, location, shape, placed, allowed, polarity, wanted, noise_std)
        if lesion is None:
            continue
        box, w, pts, shape, info = lesion
        target = info["lesion_level"] + tex(pts).reshape(w.shape)
        local = values[box]
        values[box] = local + w * (target - local)
        weight[box] = np.maximum(weight[box], w)
        placed.append((np.asarray(shape.ellipsoid.center), shape.extent_mm))
        lesions.append({**shape.to_params(), **info})
    if not lesions:
        raise InputError(
            f"no room for a {location} lesion in study {seed} on this grid (too coarse or too "
            "small a field of view)"
        )
    best = max(les["contrast"] for les in lesions)
    category = {
        "location": location,
        "count": "single" if len(lesions) == 1 else "multiple",
        "shape": shape_class,
        "contrast": contrast_class(best),
        "polarity": polarity,
    }
    params: dict[str, Any] = {
        "category": category,
        "requested": {"count": n_wanted, "contrast": contrast_wanted},
        "n_lesions": len(lesions),
        "polarity": polarity,
        "shape": shape_class,
        "location": location,
        "contrast": round(best, 6),
        "center_mm": lesions[0]["center_mm"],
        "lesions": lesions,
    }
    return values, weight, params


def _place(
    rng: np.random.Generator,
    anat: _Anatomy,
    location: str,
    shape: LesionShape,
    placed: list[tuple[np.ndarray, float]],
    allowed: np.ndarray,
    polarity: str,
    wanted: float,
    noise_std: float,
) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray, LesionShape, dict[str, Any]] | None:
    """Centre one lesion in its class, apart from ``placed``, with its contrast realised."""
    while True:  # shrink a lesion too large for the room its class offers (as a deep one)
        ok = anat.candidates(location, shape)
        if ok.size or min(shape.ellipsoid.radii) * 0.85 < 2.0:
            break
        shape = shape.scaled(0.85)
    if ok.size == 0:
        return None
    floor = _visibility_floor(shape, noise_std, anat.spacing)
    delta = max(wanted, floor)
    sign = 1.0 if polarity == "hyper" else -1.0
    idx = np.array(np.unravel_index(ok, anat.brain.shape), dtype=np.float64)
    world_ok = anat.affine[:3, :3] @ idx + anat.affine[:3, 3:4]
    for centre, extent in placed:  # never overlap an earlier lesion
        far = np.linalg.norm(world_ok - centre[:, None], axis=0) >= extent + shape.extent_mm + 2.0
        idx, world_ok = idx[:, far], world_ok[:, far]
    best: tuple[float, Any] | None = None
    for _ in range(min(_TRIES, idx.shape[1])):
        pick = idx[:, int(rng.integers(idx.shape[1]))] + rng.uniform(-0.5, 0.5, size=3)
        moved = shape.with_center(anat.affine[:3, :3] @ pick + anat.affine[:3, 3])
        box, w, pts = _weight_in_box(anat, moved, pick, allowed)
        support = w > 0
        if not support.any():
            continue
        m = float(anat.clean[box][support].mean())
        level = float(np.clip(m + sign * delta, *_LEVEL))
        realised = abs(level - m)
        if best is None or realised > best[0]:
            info = {
                "tissue_mean": round(m, 6),
                "lesion_level": level,
                "contrast": round(realised, 6),
                "contrast_wanted": round(wanted, 6),
                "visibility_floor": round(floor, 6),
                "depth_mm": round(float(anat.depth[_voxel(pick, anat.brain.shape)]), 3),
            }
            best = (realised, (box, w, pts, moved, info))
        if realised >= delta - 1e-9:
            break
    if best is None:
        return None
    box, w, pts, moved, info = best[1]
    info["lesion_level"] = round(info["lesion_level"], 6)
    return box, w, pts, moved, info
