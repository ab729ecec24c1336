"""A procedural torso phantom in world coordinates, renderable on any voxel grid.

The phantom is a child-sized torso (about 160 × 120 mm across, so that the default
192 mm field of view holds the whole cross-section) made of soft-edged ellipsoids and
elliptical cylinders in RAS millimetres: subcutaneous fat, muscle wall, abdominal cavity,
liver, spleen, kidneys, stomach with a gas cap, aorta, lung bases, heart, vertebral column
(cortical rim, cancellous core, discs, spinal canal and arch) and ribs. Intensities are
HU-like (air −1000, fat ≈ −100, muscle ≈ 50, liver ≈ 60, cortical bone ≈ 700), so a window
such as ``[-200, 300]`` suits it. A smooth texture (a seeded sum of plane waves, a function
of world coordinates) modulates the tissue, and white Gaussian noise is added per voxel of
the grid rendered on.

A lesion lies wholly inside the liver, the spleen or a kidney; it replaces the organ's tissue
by ``organ value ± contrast`` (60–160 HU, hyper- or hypo-intense) plus a faint texture of its
own, blended with the soft-edged weight of :mod:`medattr.synthetic._lesion`. Anatomy, texture,
lesion and noise come from independent random streams of the seed, so ``lesion=False`` renders
exactly the healthy twin of ``lesion=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medattr.errors import InputError
from medattr.synthetic._fields import (
    Ellipsoid,
    SinusoidField,
    fibonacci_sphere,
    small_rotation,
    stream_rng,
    validate_seed,
)
from medattr.synthetic._lesion import LesionShape, sample_lesion_shape
from medattr.synthetic._phantom_parts import Layer, Sector, Shell, Solid, ZBands, paint
from medattr.synthetic.study import Study, validate_grid, world_points
from medattr.volume import Volume

__all__ = ["LESION_ORGANS", "Phantom", "PhantomLesion", "make_phantom"]

INF = float("inf")
AIR_HU = -1000.0
#: Organs a lesion may be placed in, with their probabilities.
LESION_ORGANS = {"liver": 0.55, "spleen": 0.15, "kidney_right": 0.15, "kidney_left": 0.15}
LESION_RADIUS_MM = (8.0, 20.0)
LESION_CONTRAST_HU = (60.0, 160.0)


@dataclass(frozen=True)
class PhantomLesion:
    """Where the lesion is and how it looks (HU relative to its organ)."""

    organ: str
    shape: LesionShape
    polarity: str
    contrast: float
    texture: SinusoidField

    def to_params(self) -> dict[str, Any]:
        return {
            "organ": self.organ,
            "polarity": self.polarity,
            "contrast_hu": round(self.contrast, 4),
            **self.shape.to_params(),
        }


@dataclass(frozen=True)
class Phantom:
    """One subject's anatomy, texture, noise level and (potential) lesion, in world mm.

    Build it with :meth:`from_seed`; render it with :meth:`render`, or evaluate the noise-free
    intensity anywhere with :meth:`intensity`.

    Examples
    --------
    >>> ph = Phantom.from_seed(7)
    >>> study = ph.render((32, 32, 32), spacing=6.0, lesion=True)
    >>> study.image.spatial_shape, study.label
    ((32, 32, 32), 1)
    """

    seed: int
    layers: tuple[Layer, ...]
    texture: SinusoidField
    shading: SinusoidField
    noise_std: float
    lesion: PhantomLesion
    subject: dict[str, Any]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_seed(cls, seed: int) -> Phantom:
        """The subject of ``seed`` (anatomy, texture and lesion drawn from separate streams)."""
        seed = validate_seed(seed)
        rng = stream_rng(seed, "anatomy")
        layers, subject = _sample_anatomy(rng)
        trng = stream_rng(seed, "texture")
        texture = SinusoidField.random(
            trng, n_waves=24, wavelength_mm=(8.0, 30.0), std=float(trng.uniform(5.0, 9.0))
        )
        shading = SinusoidField.random(
            trng, n_waves=6, wavelength_mm=(80.0, 250.0), std=float(trng.uniform(3.0, 8.0))
        )
        noise_std = float(trng.uniform(8.0, 18.0))
        subject["noise_std_hu"] = round(noise_std, 4)
        proto = cls(seed, layers, texture, shading, noise_std, None, subject)  # type: ignore[arg-type]
        lesion = _place_lesion(proto, stream_rng(seed, "lesion"))
        return cls(seed, layers, texture, shading, noise_std, lesion, subject)

    # ------------------------------------------------------------------ evaluation
    def organ_visibility(self, pts: np.ndarray) -> dict[str, np.ndarray]:
        """How much of each lesion-bearing organ is present (uncovered) at ``(3, N)`` points."""
        return paint(self.layers, pts, background=AIR_HU, track=tuple(LESION_ORGANS)).visible

    def intensity(self, pts: np.ndarray, *, lesion: bool) -> np.ndarray:
        """Noise-free HU at ``(3, N)`` world points, with or without the lesion."""
        healthy, lesioned, _, _ = self._evaluate(pts, lesion=lesion)
        return lesioned if lesion else healthy

    def _evaluate(
        self, pts: np.ndarray, *, lesion: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(healthy, with_lesion, lesion_weight, body_occupancy)`` at ``(3, N)`` points.

        Without ``lesion`` the second array is the first and the weight is all zeros.
        """
        p = paint(self.layers, pts, background=AIR_HU, track=(self.lesion.organ,))
        shading = self.shading(pts)
        healthy = p.value + p.gain * self.texture(pts) + p.body * shading
        weight = np.zeros_like(healthy)
        if not lesion:
            return healthy, healthy, weight, p.body
        les = self.lesion
        values = healthy.copy()
        # the lesion's blend weight, confined to where its organ is fully present
        near = _sq_dist(pts, les.shape.ellipsoid.center) < les.shape.extent_mm**2
        sel = np.flatnonzero(near & (p.visible[les.organ] >= 0.999))
        if sel.size:
            q = pts[:, sel]
            weight[sel] = les.shape.weight(q)
            organ_value = next(lay.value for lay in self.layers if lay.name == les.organ)
            sign = 1.0 if les.polarity == "hyper" else -1.0
            target = organ_value + sign * les.contrast + les.texture(q) + shading[sel]
            values[sel] += weight[sel] * (target - values[sel])
        return healthy, values, weight, p.body

    def render(
        self,
        shape: Sequence[int] = (48, 48, 48),
        spacing: float | Sequence[float] = 4.0,
        affine: np.ndarray | None = None,
        *,
        lesion: bool,
        noise: bool = True,
    ) -> Study:
        """Sample the phantom at the voxel centres of a grid; see :func:`make_phantom`."""
        shp, aff = validate_grid(shape, spacing, affine)
        pts = world_points(shp, aff)
        healthy, values, weight, body = self._evaluate(pts, lesion=bool(lesion))
        if noise:
            eps = stream_rng(self.seed, "noise").standard_normal(int(np.prod(shp)))
            eps *= self.noise_std
            healthy = healthy + eps
            values = values + eps if lesion else healthy
        img = values.reshape(shp).astype(np.float32)[None]
        twin = healthy.reshape(shp).astype(np.float32)[None]
        mask = (weight > 0).reshape(shp).astype(np.float32)[None]
        region = (body >= 0.5).reshape(shp).astype(np.float32)[None]
        vox_mm3 = float(abs(np.linalg.det(aff[:3, :3])))
        params: dict[str, Any] = {
            "kind": "phantom",
            "seed": self.seed,
            "label": int(bool(lesion)),
            "units": "HU",
            "noise": bool(noise),
            "grid": {"shape": list(shp), "affine": aff.round(6).tolist()},
            "subject": self.subject,
            "lesion": None,
        }
        if lesion:
            diff = (img - twin)[mask > 0]
            params["lesion"] = {
                **self.lesion.to_params(),
                "voxels": int(mask.sum()),
                "volume_mm3": round(float(mask.sum()) * vox_mm3, 3),
                "mean_difference": round(float(diff.mean()), 4) if diff.size else 0.0,
            }
        return Study(
            image=Volume(img, aff, meta={"kind": "phantom", "seed": self.seed}),
            healthy=Volume(twin, aff),
            mask=Volume(mask, aff),
            label=int(bool(lesion)),
            params=params,
            region=Volume(region, aff),
        )


def make_phantom(
    seed: int,
    *,
    lesion: bool,
    shape: Sequence[int] = (48, 48, 48),
    spacing: float | Sequence[float] = (4.0, 4.0, 4.0),
    affine: np.ndarray | None = None,
    noise: bool = True,
) -> Study:
    """Render the torso phantom of ``seed``, with or without its lesion.

    Parameters
    ----------
    seed
        Non-negative integer; the same seed gives identical arrays on every call.
    lesion
        Whether to insert the subject's lesion. ``lesion=False`` gives exactly the healthy twin
        of ``lesion=True`` (same anatomy, texture and noise).
    shape, spacing
        The default grid: axial (i→R, j→A, k→S), voxel centres centred on the phantom's origin.
    affine
        A 4×4 RAS affine (any orientation, anisotropic or oblique) that replaces the default
        geometry; ``shape`` still gives the number of voxels.
    noise
        Add per-voxel white noise (the same realisation to the image and its twin).

    Returns
    -------
    Study
        Image, healthy twin, lesion mask (``image != healthy`` only inside it), body region,
        label and JSON-able parameters, all on the requested grid.

    Examples
    --------
    >>> s = make_phantom(0, lesion=True)
    >>> s.image.array.shape, float(s.mask.array.max())
    ((1, 48, 48, 48), 1.0)
    """
    if not isinstance(lesion, bool | np.bool_):
        raise InputError(f"lesion must be True or False, got {lesion!r}")
    return Phantom.from_seed(seed).render(shape, spacing, affine, lesion=bool(lesion), noise=noise)


# ---------------------------------------------------------------------- private helpers
def _sq_dist(pts: np.ndarray, center: Sequence[float]) -> np.ndarray:
    return np.sum((pts - np.asarray(center, dtype=np.float64)[:, None]) ** 2, axis=0)


def _cyl(x: float, y: float, rx: float, ry: float) -> Ellipsoid:
    return Ellipsoid((x, y, 0.0), (rx, ry, INF))


def _sample_anatomy(rng: np.random.Generator) -> tuple[tuple[Layer, ...], dict[str, Any]]:
    u = rng.uniform
    ax, ay = u(74.0, 84.0), u(54.0, 62.0)  # body semi-axes (R-L, A-P)
    fat, wall = u(5.0, 11.0), u(8.0, 11.0)  # subcutaneous fat and muscle wall thickness
    cy = u(3.0, 8.0)  # the cavity sits anterior to the body centre
    cx_r, cy_r = ax - fat - wall, ay - fat - wall - cy  # cavity semi-axes
    rb = u(12.0, 15.0)  # vertebral body radius
    yb = cy - cy_r + 0.4 * rb  # vertebral body centre, bulging into the cavity
    rc = u(5.5, 7.0)  # spinal canal radius
    yc = yb - 0.85 * rb - rc - 1.0
    disc = ZBands(u(0.0, 30.0), u(26.0, 32.0), u(5.0, 7.0))
    rib_bands = ZBands(
        u(0.0, 35.0), u(30.0, 38.0), u(7.0, 9.0), z_min_mm=u(-45.0, -25.0), slope=u(0.35, 0.55)
    )
    hu = {
        "fat": u(-115.0, -90.0),
        "muscle": u(45.0, 55.0),
        "cavity": u(-40.0, -5.0),
        "liver": u(55.0, 68.0),
        "spleen": u(42.0, 52.0),
        "kidney": u(28.0, 38.0),
        "stomach": u(5.0, 20.0),
        "aorta": u(120.0, 150.0),
        "lung": u(-870.0, -820.0),
        "heart": u(38.0, 48.0),
        "cortical": u(650.0, 800.0),
        "cancellous": u(200.0, 300.0),
        "disc": u(80.0, 100.0),
        "csf": u(8.0, 18.0),
        "air": AIR_HU,
    }

    def jitter(scale: float) -> np.ndarray:
        return rng.uniform(-scale, scale, size=3)

    body = _cyl(0.0, 0.0, ax, ay)
    inner_wall = _cyl(0.0, 0.0, ax - fat, ay - fat)
    cavity = _cyl(0.0, cy, cx_r, cy_r)
    liver_c = np.array([0.42 * cx_r, cy + 0.1 * cy_r, -5.0]) + jitter(5.0)
    liver_r = np.array([0.55 * cx_r, 0.8 * cy_r, 55.0]) * u(0.9, 1.1, size=3)
    spleen_c = np.array([-0.62 * cx_r, cy - 0.35 * cy_r, 15.0]) + jitter(4.0)
    spleen_r = np.array([14.0, 26.0, 34.0]) * u(0.9, 1.15, size=3)
    kid_r = np.array([15.0, 13.0, 30.0]) * u(0.9, 1.1, size=3)
    kid_z = u(-50.0, -30.0)
    kid_x = rb + 0.8 * kid_r[0] + u(2.0, 6.0)
    kid_y = yb + 0.85 * rb
    stomach_c = np.array([-0.3 * cx_r, cy + 0.45 * cy_r, 20.0]) + jitter(4.0)
    stomach_r = np.array([22.0, 15.0, 22.0]) * u(0.85, 1.15, size=3)
    lung_z = u(95.0, 110.0)
    lung_r = np.array([0.45 * cx_r, 0.85 * cy_r, 80.0])
    ell = {
        "liver": Ellipsoid(tuple(liver_c), tuple(liver_r), small_rotation(rng, 12.0)),
        "spleen": Ellipsoid(tuple(spleen_c), tuple(spleen_r), small_rotation(rng, 15.0)),
        "kidney_right": Ellipsoid((kid_x, kid_y, kid_z), tuple(kid_r), small_rotation(rng, 12.0)),
        "kidney_left": Ellipsoid(
            (-kid_x, kid_y, kid_z + u(0.0, 10.0)), tuple(kid_r), small_rotation(rng, 12.0)
        ),
        "stomach": Ellipsoid(tuple(stomach_c), tuple(stomach_r), small_rotation(rng, 20.0)),
        "lung_right": Ellipsoid((0.5 * cx_r, cy - 4.0, lung_z), tuple(lung_r)),
        "lung_left": Ellipsoid((-0.5 * cx_r, cy - 4.0, lung_z + u(-5.0, 5.0)), tuple(lung_r)),
        "heart": Ellipsoid((-0.1 * cx_r, cy + 0.35 * cy_r, lung_z - 20.0), (40.0, 34.0, 40.0)),
    }
    gas_c = stomach_c + np.array([0.0, 0.55 * stomach_r[1], 0.0])
    ra = u(8.5, 11.0)
    aorta = _cyl(-(0.4 * rb + 4.0), yb + 0.85 * rb + ra + 2.0, ra, ra)
    para = [_cyl(s * (rb + 6.0), yc + 2.0, u(13.0, 16.0), u(11.0, 14.0)) for s in (1.0, -1.0)]
    vb = _cyl(0.0, yb, rb, 0.85 * rb)
    vb_core = _cyl(0.0, yb, rb - 2.5, 0.85 * rb - 2.5)
    arch_outer = _cyl(0.0, yc - 1.0, rc + 4.0, rc + 4.0)
    spinous = _cyl(0.0, yc - rc - 8.0, 3.0, 8.0)
    canal = _cyl(0.0, yc, rc, rc * 0.9)

    layers = (
        Layer("body", hu["fat"], 0.6, (Solid(body),)),
        Layer("muscle", hu["muscle"], 1.0, (Solid(inner_wall),)),
        Layer(
            "ribs",
            hu["cortical"] * 0.9,
            2.0,
            (Shell(inner_wall, wall / 2.0, 6.0), rib_bands, Sector((0.0, cy), 35.0)),
        ),
        Layer("cavity", hu["cavity"], 2.5, (Solid(cavity),)),
        Layer("paraspinal_r", hu["muscle"], 1.0, (Solid(para[0]),)),
        Layer("paraspinal_l", hu["muscle"], 1.0, (Solid(para[1]),)),
        Layer("liver", hu["liver"], 1.0, (Solid(ell["liver"]),), clip="cavity"),
        Layer("spleen", hu["spleen"], 1.0, (Solid(ell["spleen"]),), clip="cavity"),
        Layer("stomach", hu["stomach"], 1.0, (Solid(ell["stomach"]),), clip="cavity"),
        Layer(
            "gas",
            hu["air"] + 50.0,
            0.0,
            (
                Solid(ell["stomach"]),
                Solid(Ellipsoid(tuple(gas_c), (40.0, 0.6 * stomach_r[1], 40.0))),
            ),
            clip="cavity",
        ),
        Layer("kidney_right", hu["kidney"], 1.0, (Solid(ell["kidney_right"]),), clip="cavity"),
        Layer("kidney_left", hu["kidney"], 1.0, (Solid(ell["kidney_left"]),), clip="cavity"),
        Layer("lung_right", hu["lung"], 2.0, (Solid(ell["lung_right"]),), clip="cavity"),
        Layer("lung_left", hu["lung"], 2.0, (Solid(ell["lung_left"]),), clip="cavity"),
        Layer("heart", hu["heart"], 1.0, (Solid(ell["heart"]),), clip="cavity"),
        Layer("aorta", hu["aorta"], 0.5, (Solid(aorta),)),
        Layer("vertebral_body", hu["cortical"], 1.0, (Solid(vb),)),
        Layer("cancellous", hu["cancellous"], 3.0, (Solid(vb_core),)),
        Layer("disc", hu["disc"], 1.0, (Solid(vb), disc)),
        Layer(
            "arch",
            hu["cortical"] * 0.85,
            2.0,
            (
                Solid(arch_outer),
                ZBands(disc.offset_mm, disc.period_mm, disc.thickness_mm, invert=True),
            ),
        ),
        Layer(
            "spinous",
            hu["cortical"] * 0.85,
            2.0,
            (
                Solid(spinous),
                ZBands(disc.offset_mm, disc.period_mm, disc.thickness_mm + 4.0, invert=True),
            ),
        ),
        Layer("canal", hu["csf"], 0.5, (Solid(canal),)),
    )
    subject: dict[str, Any] = {
        "body_semi_axes_mm": [round(ax, 3), round(ay, 3)],
        "fat_mm": round(fat, 3),
        "muscle_wall_mm": round(wall, 3),
        "hu": {k: round(v, 3) for k, v in hu.items()},
        "organs": {k: e.to_params() for k, e in ell.items()},
    }
    return layers, subject


def _place_lesion(ph: Phantom, rng: np.random.Generator) -> PhantomLesion:
    """Draw a lesion that fits wholly inside one lesion-bearing organ."""
    names = list(LESION_ORGANS)
    probs = np.array([LESION_ORGANS[n] for n in names])
    organ = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    shape = sample_lesion_shape(rng, LESION_RADIUS_MM)
    polarity = "hyper" if rng.random() < 0.5 else "hypo"
    contrast = float(rng.uniform(*LESION_CONTRAST_HU))
    tex = SinusoidField.random(
        rng, n_waves=8, wavelength_mm=(4.0, 12.0), std=float(rng.uniform(2.0, 6.0))
    )
    dirs = fibonacci_sphere(96).T
    ell_by_name = {lay.name: lay.factors[0].ell for lay in ph.layers}
    organ_order = [organ] + [n for n in names if n != organ]
    n_try = 48
    for candidate in organ_order:
        org = ell_by_name[candidate]
        rot = org.rotation if org.rotation is not None else np.eye(3)
        trial = shape
        while True:
            # candidate centres uniform in the inner 80 % of the organ's ellipsoid
            v = rng.standard_normal((n_try, 3))
            v *= (rng.uniform(size=n_try) ** (1 / 3) * 0.8 / np.linalg.norm(v, axis=1))[:, None]
            centers = np.asarray(org.center)[None] + (v * np.asarray(org.radii)[None]) @ rot.T
            probe = np.concatenate(
                [np.zeros((3, 1)), dirs * (0.5 * trial.extent_mm), dirs * (trial.extent_mm + 2.0)],
                axis=1,
            )
            pts = (centers.T[:, :, None] + probe[:, None, :]).reshape(3, -1)
            vis = ph.organ_visibility(pts)[candidate].reshape(n_try, -1)
            ok = np.flatnonzero(np.all(vis >= 0.999, axis=1))
            if ok.size:
                return PhantomLesion(
                    candidate, trial.with_center(centers[ok[0]]), polarity, contrast, tex
                )
            if min(trial.ellipsoid.radii) * 0.85 < 5.0:
                break
            trial = trial.scaled(0.85)
    # Rare crowded subjects (about 1 in 100): the smallest lesion, many candidate centres close to
    # each organ's centre. Runs only after the search above failed, so it changes no other seed.
    smallest = shape.scaled(5.0 / min(shape.ellipsoid.radii))
    for candidate in organ_order:
        org = ell_by_name[candidate]
        rot = org.rotation if org.rotation is not None else np.eye(3)
        v = rng.standard_normal((512, 3))
        v *= (rng.uniform(size=512) ** (1 / 3) * 0.5 / np.linalg.norm(v, axis=1))[:, None]
        centers = np.asarray(org.center)[None] + (v * np.asarray(org.radii)[None]) @ rot.T
        probe = np.concatenate(
            [
                np.zeros((3, 1)),
                dirs * (0.5 * smallest.extent_mm),
                dirs * (smallest.extent_mm + 2.0),
            ],
            axis=1,
        )
        pts = (centers.T[:, :, None] + probe[:, None, :]).reshape(3, -1)
        vis = ph.organ_visibility(pts)[candidate].reshape(len(centers), -1)
        ok = np.flatnonzero(np.all(vis >= 0.999, axis=1))
        if ok.size:
            return PhantomLesion(
                candidate, smallest.with_center(centers[ok[0]]), polarity, contrast, tex
            )
    raise InputError(f"could not place a lesion in subject seed {ph.seed}")  # pragma: no cover
