"""Brain studies built on the MNI152 template that ships inside nilearn (no download).

Reference grid
    nilearn's skull-stripped MNI152 T1 template (ICBM 2009a nonlinear symmetric) at 2 mm,
    lightly smoothed against aliasing and resampled (trilinear) onto an axial RAS grid of
    ``shape`` voxels of ``spacing`` mm centred on the bounding box of nilearn's MNI152 brain mask
    (default 64³ at 3 mm: 192 mm, which holds the whole brain). Intensities are mapped to
    ``[0, 1]`` by dividing by the largest resampled value (nilearn stores the template as
    ``uint8 / 255``; the background is 0). The brain mask is resampled the same way and
    thresholded at 0.5.

Healthy subject (``seed``), in this order, all seeded:
    1. one resampling of template and mask together (MONAI ``RandAffineGrid`` + ``Resample``,
       bilinear): a random affine (rotations up to ±6°, sampling scales 0.98–1.08, so subjects
       are up to 2 % larger and 7 % smaller than the template; shifts ±1 voxel) composed with
       a smooth elastic displacement (0.8–1.8 voxels rms, correlation length 7–9 voxels; see
       :func:`_elastic_displacement`); the mask is re-thresholded at 0.5. With the default
       192 mm field of view, about one subject in ten loses a sliver of the frontal or
       occipital pole at the grid's edge (the region mask shows what remains);
    2. MONAI ``RandBiasField`` (multiplicative, smooth, degree 3, typically within ±15 %);
    3. MONAI ``RandAdjustContrast`` (gamma 0.7–1.5 on the min–max normalised image);
    4. clipping to ``[0, 1]``.

Lesion, ``lesions="classic"`` (independent stream of the same seed; generator version 1)
    An ellipsoid or lobulated blob (mean radius 8–20 mm, see :mod:`medattr.synthetic._lesion`)
    centred where it fits inside the deformed brain mask, and cut to that mask. Its tissue is
    replaced by ``m·(1 ± c)`` (clipped to ``[0.03, 1]``) plus a faint texture, where ``m`` is the
    mean healthy intensity under the lesion and ``c`` is 0.25–0.6: ``hyper`` (+) or ``hypo`` (−)
    intense relative to the tissue it replaces. The blend weight has a soft edge; the mask is
    its support, so every voxel the lesion changed is in the mask and none outside it is.

Lesions, ``lesions="widened"`` (the same stream; generator version 2)
    One to four lesions of one *category* (location ``deep`` / ``cortical`` /
    ``infratentorial``, count ``single`` / ``multiple``, shape ``round`` / ``elongated`` /
    ``irregular``, contrast ``low`` / ``medium`` / ``high``, polarity ``hyper`` / ``hypo``),
    recorded under ``params["lesion"]["category"]``; see :mod:`medattr.synthetic._mni_lesions`
    for the classes and their ranges. A lesion replaces the tissue under it by the tissue's mean
    ``m`` plus or minus an absolute contrast (0.06–0.35 on the [0, 1] scale, raised where needed
    so that every lesion is visible at the grid's resolution and the study's noise), clipped to
    ``[0.03, 1]``, plus a faint texture. The blend weight has a soft edge; the mask is its
    support, so every voxel a lesion changed is in the mask and none outside it is. Grey and
    white matter probability (nilearn's ICBM 2009a tissue templates) and an approximate
    infratentorial compartment (cerebellum and brainstem, below a tentorium drawn as planes in
    MNI space) are resampled with the template and deformed with each subject, to place the
    lesions.

Noise
    Gaussian white noise (std 0.01–0.04) added after the lesion, the same realisation to the
    image and its healthy twin; the result is not clipped, so ``image − healthy`` is exactly the
    lesion's change.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from medattr.errors import InputError
from medattr.synthetic._fields import SinusoidField, stream_rng, stream_seed32, validate_seed
from medattr.synthetic._lesion import sample_lesion_shape
from medattr.synthetic._mni_lesions import insert_brain_lesions
from medattr.synthetic.study import Study, centred_affine, validate_grid, world_points
from medattr.volume import Volume

__all__ = [
    "LESION_KINDS",
    "MNI_GENERATOR_VERSION",
    "MNI_LESION_RADIUS_MM",
    "make_mni_study",
    "mni_reference",
]

MNI_LESION_RADIUS_MM = (8.0, 20.0)
_CONTRAST = (0.25, 0.6)
#: ``lesions=`` of :func:`make_mni_study`: one lesion as in generator version 1, or the
#: widened lesions of :mod:`medattr.synthetic._mni_lesions`.
LESION_KINDS = ("classic", "widened")

#: Version of the studies this module renders; bumped whenever a seed's study changes (2: the
#: ``lesions="widened"`` option; healthy and ``"classic"`` studies as in 1).
MNI_GENERATOR_VERSION = 2
_NOISE_STD = (0.01, 0.04)
_ELASTIC_FACTOR = 4


def _nilearn_datasets() -> Any:
    try:
        from nilearn import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "MNI studies need nilearn for its bundled MNI152 template; install it with "
            "`pip install 'medattr[data]'` (or `pip install nilearn`)"
        ) from exc
    return datasets


@dataclass(frozen=True)
class _Reference:
    template: np.ndarray  # (I, J, K) float32 in [0, 1], read-only
    brain: np.ndarray  # (I, J, K) bool, read-only
    affine: np.ndarray
    # (3, I, J, K) float32, read-only: grey and white matter probability (nilearn's ICBM 2009a
    # tissue templates) and the infratentorial indicator (see _infratentorial); resampled like
    # the template, they travel with each subject's deformation to place lesions
    compartments: np.ndarray


#: The tentorium, approximated in MNI mm: below ``z = a - b·|x| + c·min(0, y + 60)`` and behind
#: ``y = -34`` lies the cerebellum; the brainstem is ``|x| < 16``, ``-34 <= y < -10``,
#: ``z < -8``. Checked by eye on sagittal and coronal slices of the template.
_TENTORIUM = (-5.0, 0.5, 0.3)


def _infratentorial(world: np.ndarray) -> np.ndarray:
    """1.0 where ``(3, N)`` MNI points lie in the cerebellum or brainstem (approximately)."""
    x, y, z = world
    a, b, c = _TENTORIUM
    cerebellum = (y < -34.0) & (z < a - b * np.abs(x) + c * np.minimum(0.0, y + 60.0))
    stem = (np.abs(x) < 16.0) & (y >= -34.0) & (y < -10.0) & (z < -8.0)
    return (cerebellum | stem).astype(np.float64)


@functools.lru_cache(maxsize=4)
def _reference(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> _Reference:
    datasets = _nilearn_datasets()
    t_img = datasets.load_mni152_template(resolution=2)
    m_img = datasets.load_mni152_brain_mask(resolution=2)
    src = np.asarray(t_img.get_fdata(), dtype=np.float64)
    src_mask = np.asarray(m_img.get_fdata(), dtype=np.float64) > 0
    src_aff = np.asarray(t_img.affine, dtype=np.float64)
    src_sp = np.linalg.norm(src_aff[:3, :3], axis=0)
    idx = np.array(np.nonzero(src_mask))
    lo = src_aff[:3, :3] @ idx.min(1) + src_aff[:3, 3]
    hi = src_aff[:3, :3] @ idx.max(1) + src_aff[:3, 3]
    affine = centred_affine(shape, spacing, (lo + hi) / 2.0)
    # anti-alias: Gaussian whose variance makes up the difference between the voxel sizes
    sigma = np.sqrt(np.maximum(np.asarray(spacing) ** 2 - src_sp**2, 0.0)) / 2.355 / src_sp
    smooth = ndimage.gaussian_filter(src, sigma) if np.any(sigma > 0) else src
    world = world_points(shape, affine)
    coords = np.linalg.inv(src_aff)[:3, :3] @ world + np.linalg.inv(src_aff)[:3, 3:4]
    tmpl = ndimage.map_coordinates(smooth, coords, order=1, mode="constant", cval=0.0)
    mask = ndimage.map_coordinates(src_mask.astype(np.float64), coords, order=1, mode="constant")
    tmpl = np.clip(tmpl / tmpl.max(), 0.0, 1.0).reshape(shape).astype(np.float32)
    brain = (mask >= 0.5).reshape(shape)
    src_world = world_points(src.shape, src_aff)
    maps = [
        np.asarray(datasets.load_mni152_gm_template(resolution=2).get_fdata(), np.float64),
        np.asarray(datasets.load_mni152_wm_template(resolution=2).get_fdata(), np.float64),
        _infratentorial(src_world).reshape(src.shape),
    ]
    compartments = np.stack(
        [ndimage.map_coordinates(m, coords, order=1, mode="constant").reshape(shape) for m in maps]
    ).astype(np.float32)
    for arr in (tmpl, brain, compartments):
        arr.flags.writeable = False
    return _Reference(tmpl, brain, affine, compartments)


def mni_reference(
    shape: Sequence[int] = (64, 64, 64), spacing: float | Sequence[float] = 3.0
) -> tuple[Volume, Volume]:
    """The resampled MNI152 template (intensities in ``[0, 1]``) and its brain mask.

    Examples
    --------
    >>> template, brain = mni_reference()  # doctest: +SKIP
    >>> template.spatial_shape, template.spacing  # doctest: +SKIP
    ((64, 64, 64), (3.0, 3.0, 3.0))
    """
    shp, sp = _grid_key(shape, spacing)
    ref = _reference(shp, sp)
    return (
        Volume(ref.template[None].copy(), ref.affine.copy()),
        Volume(ref.brain[None].astype(np.float32), ref.affine.copy()),
    )


def make_mni_study(
    seed: int,
    *,
    lesion: bool,
    shape: Sequence[int] = (64, 64, 64),
    spacing: float | Sequence[float] = 3.0,
    augment: bool = True,
    noise: bool = True,
    lesions: str = "classic",
) -> Study:
    """A seeded "subject" made from the MNI152 template, with or without its lesion.

    See the module docstring for exactly what is done and in which order.

    Parameters
    ----------
    seed
        Non-negative integer; the same seed gives identical arrays on every call.
    lesion
        Whether to insert the subject's lesion; ``lesion=False`` gives exactly the healthy twin
        of ``lesion=True``.
    shape, spacing
        The grid (voxels, mm); axial RAS, centred on the brain.
    augment
        Apply the spatial and intensity augmentation (off: the template itself is the subject).
    noise
        Add Gaussian noise (the same realisation to the image and its twin).
    lesions
        ``"classic"``: one lesion of 8–20 mm placed deep in the brain, 25–60 % brighter or
        darker than its tissue (generator version 1; the benchmark's and the demo's studies);
        ``"widened"``: the lesions of :mod:`medattr.synthetic._mni_lesions` (anywhere in the
        brain, one to four, three shape and three contrast classes, with a recorded category;
        what ``builtin:mni`` is trained and tested on). Healthy studies do not depend on it.

    Returns
    -------
    Study
        Image, healthy twin, lesion mask, brain mask (``region``), label and parameters.

    Raises
    ------
    ImportError
        If nilearn is not installed.

    Examples
    --------
    >>> s = make_mni_study(0, lesion=True)  # doctest: +SKIP
    >>> s.image.array.shape, s.label  # doctest: +SKIP
    ((1, 64, 64, 64), 1)
    """
    seed = validate_seed(seed)
    if not isinstance(lesion, bool | np.bool_):
        raise InputError(f"lesion must be True or False, got {lesion!r}")
    if lesions not in LESION_KINDS:
        raise InputError(f"lesions must be one of {LESION_KINDS}, got {lesions!r}")
    widened = bool(lesion) and lesions == "widened"
    shp, sp = _grid_key(shape, spacing)
    ref = _reference(shp, sp)
    aff = ref.affine
    params: dict[str, Any] = {
        "kind": "mni",
        "seed": seed,
        "label": int(bool(lesion)),
        "units": "normalised [0, 1] T1 intensity",
        "template": "MNI152 ICBM 2009a nonlinear symmetric (nilearn), skull-stripped",
        "noise": bool(noise),
        "grid": {"shape": list(shp), "affine": aff.round(6).tolist()},
        "augmentation": None,
        "lesion": None,
    }
    if augment:
        clean, brain, compartments, params["augmentation"] = _augment(ref, seed, widened)
    else:
        clean, brain = ref.template.astype(np.float64), ref.brain.copy()
        compartments = ref.compartments
    healthy = clean
    weight = np.zeros_like(clean)
    noise_rng = stream_rng(seed, "noise")
    std = float(noise_rng.uniform(*_NOISE_STD))
    if widened:
        values, weight, params["lesion"] = insert_brain_lesions(
            clean, brain, compartments, aff, seed, std
        )
    elif lesion:
        values, weight, params["lesion"] = _insert_lesion(clean, brain, aff, seed)
    else:
        values = healthy
    if noise:
        eps = noise_rng.standard_normal(shp) * std
        healthy = healthy + eps
        values = values + eps if lesion else healthy
        params["noise_std"] = round(std, 6)
    img = values.astype(np.float32)[None]
    twin = healthy.astype(np.float32)[None]
    mask = (weight > 0).astype(np.float32)[None]
    if lesion:
        diff = (img - twin)[mask > 0]
        vox_mm3 = float(np.prod(sp))
        params["lesion"].update(
            voxels=int(mask.sum()),
            volume_mm3=round(float(mask.sum()) * vox_mm3, 3),
            mean_difference=round(float(diff.mean()), 6) if diff.size else 0.0,
        )
    return Study(
        image=Volume(img, aff.copy(), meta={"kind": "mni", "seed": seed}),
        healthy=Volume(twin, aff.copy()),
        mask=Volume(mask, aff.copy()),
        label=int(bool(lesion)),
        params=params,
        region=Volume(brain.astype(np.float32)[None], aff.copy()),
    )


# ---------------------------------------------------------------------- private helpers
def _grid_key(
    shape: Sequence[int], spacing: float | Sequence[float]
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    shp, aff = validate_grid(shape, spacing, None)
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    return shp, (float(sp[0]), float(sp[1]), float(sp[2]))


def _elastic_displacement(
    shape: tuple[int, int, int], rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """A smooth random displacement field ``(3, I, J, K)`` in voxels.

    White noise on a grid 4× coarser, Gaussian-smoothed (sigma 1.75–2.25 coarse voxels, i.e.
    7–9 voxels), scaled to an rms of 0.8–1.8 voxels and upsampled trilinearly. This is the
    construction of MONAI's ``Rand3DElastic`` with the smoothing done on the coarse grid, which
    makes it ~10× faster and independent of the number of threads (bit-identical output).
    """
    import torch

    coarse = tuple(max(2, -(-n // _ELASTIC_FACTOR)) for n in shape)
    sigma = float(rng.uniform(1.75, 2.25))
    rms = float(rng.uniform(0.8, 1.8))
    noise = rng.uniform(-1.0, 1.0, size=(3, *coarse))
    field = np.stack([ndimage.gaussian_filter(c, sigma, mode="wrap") for c in noise])
    field *= rms / max(float(np.sqrt(np.mean(np.sum(field**2, axis=0)))), 1e-12)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(field[None]), size=shape, mode="trilinear", align_corners=True
    )[0]
    return up.numpy(), {
        "elastic_sigma_vox": round(sigma * _ELASTIC_FACTOR, 6),
        "elastic_rms_vox": round(rms, 6),
    }


def _augment(
    ref: _Reference, seed: int, compartments: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """The subject's image, brain mask, compartment maps (deformed with it; empty unless
    ``compartments``) and parameters."""
    import torch
    from monai.transforms import RandAdjustContrast, RandAffineGrid, RandBiasField, Resample
    from monai.transforms.utils import create_grid
    from monai.utils import convert_to_numpy

    rng = stream_rng(seed, "augment")
    s = stream_seed32(seed, "augment")
    i, j, k = ref.template.shape
    shape = (int(i), int(j), int(k))
    disp, elastic_info = _elastic_displacement(shape, rng)
    grid = torch.as_tensor(create_grid(spatial_size=shape, dtype=np.float32))
    grid[:3] += torch.from_numpy(disp.astype(np.float32))
    affine_grid = RandAffineGrid(
        rotate_range=(np.deg2rad(6.0),) * 3,
        scale_range=((-0.02, 0.08),) * 3,
        translate_range=(1.0,) * 3,
    )
    affine_grid.set_random_state(seed=s)
    bias = RandBiasField(degree=3, coeff_range=(-0.08, 0.08), prob=1.0)
    bias.set_random_state(seed=(s + 1) % 2**32)
    gamma = RandAdjustContrast(prob=1.0, gamma=(0.7, 1.5))
    gamma.set_random_state(seed=(s + 2) % 2**32)
    # each channel is resampled on its own: the compartments do not change the image
    channels = [np.stack([ref.template, ref.brain.astype(np.float32)])]
    if compartments:
        channels.append(ref.compartments)
    stacked = torch.from_numpy(np.concatenate(channels))
    with torch.no_grad():
        warp = affine_grid(grid=grid)
        warped = convert_to_numpy(
            Resample(mode="bilinear", padding_mode="zeros")(stacked, warp), dtype=np.float32
        )
        img = convert_to_numpy(bias(warped[:1]), dtype=np.float32)
        img = convert_to_numpy(gamma(torch.from_numpy(img)), dtype=np.float32)
    brain = warped[1] >= 0.5
    info: dict[str, Any] = {
        "transforms": [
            "elastic displacement",
            "RandAffineGrid + Resample",
            "RandBiasField",
            "RandAdjustContrast",
        ],
        "monai_seed": s,
        "rotate_rad": _rounded(affine_grid.rotate_params),
        "scale": _rounded(affine_grid.scale_params),
        "translate_vox": _rounded(affine_grid.translate_params),
        **elastic_info,
        "bias_coefficients": _rounded(bias._coeff),
        "gamma": round(float(gamma.gamma_value), 6),
    }
    return np.clip(img[0].astype(np.float64), 0.0, 1.0), brain, warped[2:], info


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 6) for v in np.ravel(np.asarray(values if values is not None else []))]


def _insert_lesion(
    clean: np.ndarray, brain: np.ndarray, affine: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    rng = stream_rng(seed, "lesion")
    shape = sample_lesion_shape(rng, MNI_LESION_RADIUS_MM)
    polarity = "hyper" if rng.random() < 0.5 else "hypo"
    contrast = float(rng.uniform(*_CONTRAST))
    tex = SinusoidField.random(
        rng, n_waves=8, wavelength_mm=(4.0, 12.0), std=float(rng.uniform(0.005, 0.02))
    )
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    depth = ndimage.distance_transform_edt(np.pad(brain, 1), sampling=sp)[1:-1, 1:-1, 1:-1]
    while True:
        ok = np.flatnonzero(depth.ravel() >= shape.extent_mm + float(sp.max()))
        if ok.size or min(shape.ellipsoid.radii) * 0.85 < 3.0:
            break
        shape = shape.scaled(0.85)
    if ok.size == 0:
        ok = np.flatnonzero(depth.ravel() == depth.max())
    pick = np.array(np.unravel_index(int(ok[int(rng.integers(ok.size))]), brain.shape), float)
    pick += rng.uniform(-0.5, 0.5, size=3)  # anywhere within the chosen voxel
    center = affine[:3, :3] @ pick + affine[:3, 3]
    shape = shape.with_center(center)
    # evaluate only in the lesion's bounding box
    half = np.ceil(shape.extent_mm / sp).astype(int) + 1
    vc = np.round(pick).astype(int)
    lo = np.maximum(vc - half, 0)
    hi = np.minimum(vc + half + 1, brain.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sub_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
    sub_aff = affine.copy()
    sub_aff[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    pts = world_points(sub_shape, sub_aff)
    w = shape.weight(pts).reshape(sub_shape) * brain[box]
    weight = np.zeros_like(clean)
    weight[box] = w
    values = clean.copy()
    support = w > 0
    params: dict[str, Any] = {
        "polarity": polarity,
        "contrast": round(contrast, 6),
        **shape.to_params(),
    }
    if support.any():
        local = clean[box]
        m = float(local[support].mean())
        level = float(
            np.clip(m * (1.0 + contrast if polarity == "hyper" else 1.0 - contrast), 0.03, 1.0)
        )
        target = level + tex(pts).reshape(sub_shape)
        values[box] = local + w * (target - local)
        params.update(tissue_mean=round(m, 6), lesion_level=round(level, 6))
    return values, weight, params
