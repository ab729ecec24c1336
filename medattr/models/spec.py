"""What a model expects: task, classes, input geometry and intensity mapping.

Stored as the ``"medattr"`` entry of the ``metadata.json`` a TorchScript file carries (the file
MONAI's ``ckpt_export`` writes), in a bundle's ``configs/metadata.json``, or given as a JSON file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from medattr.errors import ModelError

__all__ = ["IntensitySpec", "ModelSpec"]


@dataclass
class IntensitySpec:
    """Linear intensity window ``[a_min, a_max] -> [b_min, b_max]`` (MONAI ScaleIntensityRange),
    or ``mode="zscore"`` (per-volume mean/std normalisation)."""

    mode: str = "range"
    a_min: float = 0.0
    a_max: float = 1.0
    b_min: float = 0.0
    b_max: float = 1.0
    clip: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("range", "zscore"):
            raise ModelError(f"intensity mode must be 'range' or 'zscore', got {self.mode!r}")
        if self.mode == "range" and self.a_max == self.a_min:
            raise ModelError("intensity a_max must differ from a_min")

    def to_model(self, value: float) -> float:
        """Map a source intensity (e.g. -1000 HU) to model units (range mode only)."""
        if self.mode != "range":
            raise ModelError("a source-unit value can be mapped only with a 'range' intensity spec")
        t = (value - self.a_min) / (self.a_max - self.a_min)
        if self.clip:
            t = min(max(t, 0.0), 1.0)
        return self.b_min + t * (self.b_max - self.b_min)


@dataclass
class ModelSpec:
    """Input contract and output meaning of a model.

    Every field is optional: what a field leaves unsaid, the model's output on the prepared
    input decides (see :class:`~medattr.models.OutputContract`): ``(N, 1)`` is a binary
    classifier with one logit, ``(N, K)`` a K-class classifier, ``(N, K, *spatial)`` a
    segmentation network. ``docs/models.md`` shows a spec for each kind of model.

    Attributes
    ----------
    task
        ``"classification"`` (output ``(N, classes)`` or ``(N, 1)``) or ``"segmentation"``
        (``(N, C, *spatial)``); ``None``: from the output's shape.
    class_names
        Names of the output classes / labels (a single-logit classifier: one name, the
        positive class); ``None``: ``class 0``, ``class 1`` … from the output.
    default_target
        Class (or label) explained when none is given: an index or ``"predicted"``.
    in_channels
        Input channels.
    orientation, pixdim, spatial_size
        Geometry the model was trained on (axcodes such as ``"RAS"``, voxel size in mm, shape);
        ``None`` leaves that aspect of the input unchanged.
    intensity
        Intensity mapping applied before the model (or ``None``).
    output
        For a model that returns a tuple or a dict: the index or key of the output to explain.
    inferer
        How the network is applied: ``None`` (the whole volume at once) or a sliding window,
        ``{"type": "sliding_window", "roi_size": [96, 96, 96], "sw_batch_size": 4,
        "overlap": 0.25, "mode": "constant"}`` (a MONAI bundle's ``SlidingWindowInferer`` sets
        it).
    network
        For a state-dict checkpoint: the network to build, as a MONAI config
        (``{"_target_": "monai.networks.nets.UNet", "spatial_dims": 3, ...}``).
    extra
        Anything else worth keeping (training metrics, data description).
    """

    task: str | None = None
    class_names: list[str] | None = None
    default_target: int | str = "predicted"
    in_channels: int = 1
    orientation: str | None = "RAS"
    pixdim: tuple[float, float, float] | None = None
    spatial_size: tuple[int, int, int] | None = None
    intensity: IntensitySpec | None = None
    name: str = ""
    description: str = ""
    output: str | int | None = None
    inferer: dict[str, Any] | None = None
    network: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in (None, "classification", "segmentation"):
            raise ModelError(f"task must be 'classification' or 'segmentation', got {self.task!r}")
        if self.class_names is not None:
            if not isinstance(self.class_names, list | tuple) or not self.class_names:
                raise ModelError(f"class_names must be a non-empty list, got {self.class_names!r}")
            self.class_names = [str(c) for c in self.class_names]
        if self.inferer is not None:
            from medattr.models.inferers import check_inferer

            self.inferer = check_inferer(self.inferer)
        if isinstance(self.intensity, dict):
            self.intensity = IntensitySpec(**self.intensity)
        if self.pixdim is not None:
            self.pixdim = tuple(float(v) for v in self.pixdim)  # type: ignore[assignment]
        if self.spatial_size is not None:
            self.spatial_size = tuple(int(v) for v in self.spatial_size)  # type: ignore[assignment]

    @property
    def num_classes(self) -> int:
        """Number of named classes (0 when the names come from the output)."""
        return len(self.class_names) if self.class_names else 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("pixdim", "spatial_size"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> ModelSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"unknown model spec field(s): {', '.join(sorted(unknown))}", source)
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"invalid model spec: {exc}", source) from exc

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ModelSpec:
        try:
            with open(path) as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ModelError("model spec file not found", path) from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"model spec is not readable JSON ({exc})", path) from exc
        if isinstance(data, dict) and "medattr" in data and isinstance(data["medattr"], dict):
            data = data["medattr"]
        if not isinstance(data, dict):
            raise ModelError("model spec must be a JSON object", path)
        return cls.from_dict(data, str(path))
