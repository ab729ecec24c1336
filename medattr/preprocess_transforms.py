"""A model's own MONAI preprocessing, honoured as written and inverted on the way back.

A model-zoo bundle's ``inference.json`` says what its network sees: orientation, spacing, an
intensity window, a foreground crop, padding. :class:`TransformPreprocessor` applies exactly
those transforms (the bundle's own objects, after medattr's reader has produced the
channel-first volume with its geometry), records what each spatial one did to this study, and
maps results back: images by MONAI's inverse, attributions through the adjoint of the same
spatial operations replayed with their recorded parameters (so the total is kept exactly).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, InvertibleTransform, Randomizable

from medattr.errors import ModelError, VolumeError
from medattr.models.spec import ModelSpec
from medattr.preprocess import Preprocessed, Preprocessor, _as_channel_first, _channel_hint
from medattr.volume import Volume

__all__ = ["TransformPreprocessor"]

_DATA_DEPENDENT = ("CropForeground",)
"""Spatial transforms whose parameters depend on the image: replayed with what they did."""


class _FrozenCrop:
    """A foreground crop replayed with the margins it cut from this study."""

    def __init__(self, key: str, cropped: Sequence[int]) -> None:
        self.key = key
        self.cropped = [int(v) for v in cropped]

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        img = data[self.key]
        sl = [slice(None)]
        for d in range(img.dim() - 1):
            low, high = self.cropped[2 * d], self.cropped[2 * d + 1]
            sl.append(slice(low, img.shape[d + 1] - high))
        out = img[tuple(sl)]
        if isinstance(img, MetaTensor):  # the world position of the first voxel moves
            shift = torch.eye(4, dtype=torch.float64)
            shift[:3, 3] = torch.tensor([float(self.cropped[2 * d]) for d in range(3)])
            out.affine = img.affine.to(torch.float64) @ shift
        return {**data, self.key: out}


class TransformPreprocessor(Preprocessor):
    """Model input from the model's own MONAI (dictionary) transforms.

    Parameters
    ----------
    spec
        The model's contract (its channel count is checked; geometry and intensity come from
        the transforms).
    transforms
        Dictionary transforms over ``key`` (a bundle's ``preprocessing`` without its loading
        and type-casting transforms, which medattr's reader replaces).
    key
        The image key the transforms use (``"image"`` in model-zoo bundles).
    """

    def __init__(self, spec: ModelSpec, transforms: Sequence[Any], key: str = "image") -> None:
        super().__init__(spec)
        self.key = key
        self.steps = list(transforms)
        for t in self.steps:
            if isinstance(t, Randomizable):
                raise ModelError(
                    f"the model's preprocessing has a random transform ({type(t).__name__}); "
                    "an explanation needs a deterministic input"
                )
            keys = list(getattr(t, "keys", ()) or ())
            if keys and key not in keys:
                raise ModelError(
                    f"the model's preprocessing transform {type(t).__name__} works on "
                    f"{keys}, not on the image key {key!r}"
                )
        self.compose = Compose(self.steps)

    @staticmethod
    def _spatial_step(t: Any) -> bool:
        return isinstance(t, InvertibleTransform)

    def intensity(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The pointwise (intensity) transforms alone, on a source-grid array."""
        data: dict[str, Any] = {self.key: torch.as_tensor(array, dtype=torch.float32)}
        if data[self.key].dim() == 3:
            data[self.key] = data[self.key][None]
            squeeze = True
        else:
            squeeze = False
        with _quiet():
            for t in self.steps:
                if not self._spatial_step(t):
                    data = t(data)
        out = torch.as_tensor(data[self.key]).float()
        return out[0] if squeeze else out

    def __call__(self, volume: Volume) -> Preprocessed:
        if volume.num_channels != self.spec.in_channels:
            raise VolumeError(
                f"the model expects {self.spec.in_channels} channel(s), the volume has "
                f"{volume.num_channels}{_channel_hint(volume)}",
                volume.source.path if volume.source else None,
            )
        affine = torch.as_tensor(volume.affine, dtype=torch.float64)
        data: dict[str, Any] = {
            self.key: MetaTensor(torch.as_tensor(volume.array, dtype=torch.float32), affine=affine)
        }
        replay: list[Any] = []
        with _quiet():
            for t in self.steps:
                before = len(data[self.key].applied_operations)
                data = t(data)
                if not self._spatial_step(t):
                    continue
                if type(t).__name__.removesuffix("d") in _DATA_DEPENDENT:
                    ops = data[self.key].applied_operations[before:]
                    info = ops[-1].get("extra_info", {}) if ops else {}
                    replay.append(_FrozenCrop(self.key, info.get("cropped", [0] * 6)))
                else:
                    replay.append(t)
        image = data[self.key]
        if not isinstance(image, MetaTensor):
            raise ModelError("the model's preprocessing did not keep the image's geometry")
        pre = Preprocessed(
            image=image.as_tensor().float()[None].contiguous(),
            valid=torch.ones((1, 1, *image.shape[1:]), dtype=torch.bool),
            affine=np.asarray(image.affine.detach().cpu().numpy(), dtype=np.float64),
            state=image,
            source_affine=np.asarray(volume.affine, dtype=np.float64),
            source_shape=volume.spatial_shape,
            replay=replay,
        )
        ones = self._spatial(torch.ones((1, *volume.spatial_shape)), volume.affine, pre)
        pre.valid = (ones.as_tensor() > 0.5)[None]
        return pre

    def _spatial(
        self, data: torch.Tensor, affine: np.ndarray, pre: Preprocessed | None = None
    ) -> MetaTensor:
        if pre is None or pre.replay is None:
            raise ModelError("the model's own preprocessing is replayed per study")
        out: dict[str, Any] = {
            self.key: MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64))
        }
        with _quiet():
            for t in pre.replay:
                out = t(out)
        img = out[self.key]
        return img if isinstance(img, MetaTensor) else MetaTensor(img)

    def map_to_model(
        self, volume: Volume, *, intensity: bool = True, pre: Preprocessed | None = None
    ) -> torch.Tensor:
        """Another volume on the study's source grid onto the model grid: the whole pipeline
        as applied to the study (``pre``), or as applied to this volume when none is given."""
        if pre is None:
            return self(volume).image if intensity else self._spatial_own(volume)
        data = self.intensity(volume.array) if intensity else torch.as_tensor(volume.array)
        return self._spatial(data, volume.affine, pre).as_tensor().float()[None]

    def _spatial_own(self, volume: Volume) -> torch.Tensor:
        pre = self(volume)
        return self._spatial(torch.as_tensor(volume.array), volume.affine, pre).as_tensor()[None]

    def invert(self, array: torch.Tensor | np.ndarray, pre: Preprocessed) -> np.ndarray:
        """An image on the model grid back to the source grid (MONAI's inverse of the spatial
        transforms as applied to this study)."""
        data = _as_channel_first(array)
        mt = MetaTensor(data, meta=dict(pre.state.meta))
        mt.applied_operations = copy.deepcopy(list(pre.state.applied_operations))
        with _quiet():
            out = self.compose.inverse({self.key: mt})[self.key]
        return torch.as_tensor(out).detach().cpu().numpy().astype(np.float32)


class _quiet(warnings.catch_warnings):
    def __enter__(self) -> Any:
        out = super().__enter__()
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        return out
