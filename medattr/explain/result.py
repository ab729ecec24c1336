"""What one explained study holds before it is written (:class:`StudyResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medattr.attribution import Explanation
from medattr.explain.config import ExplainConfig
from medattr.io import ChannelSource
from medattr.preprocess import Preprocessed
from medattr.volume import Volume

__all__ = ["StudyResult"]


@dataclass
class StudyResult:
    """Everything computed for one study, before writing.

    Attributes
    ----------
    volume
        The study as read (source grid, source geometry).
    pre
        The study on the model grid.
    explanation
        The attribution method's result on the model grid.
    attribution
        ``(I, J, K)`` attribution on the source grid through the exact adjoint of the
        resampling (total preserved): for numbers and the NIfTI output.
    attribution_display
        The same, mapped for display (``config.display_mapping``: smoothly spread over the
        source voxels each model voxel covers, total preserved): for the PNG and DICOM
        outputs.
    baseline_source
        ``(I, J, K)`` baseline on the source grid in model units (``None`` for methods that
        average over references).
    anatomy
        ``(I, J, K)`` the input in model units on the source grid (what panels show; the
        first channel of a multi-channel study).
    channels
        For a multi-channel study: each channel's attribution on its own source grid (its
        :class:`~medattr.io.ChannelSource` and array); ``attribution`` is their sum on the
        study grid. Empty for one channel.
    config
        The run's settings.
    baseline_info
        What the baseline reported (name, settings, class probabilities, warnings).
    baseline_masks
        Masks the baseline decided on (the anomaly mask), bool ``(I, J, K)`` on the source grid
        by name.
    timings
        Seconds per stage.
    """

    volume: Volume
    pre: Preprocessed
    explanation: Explanation
    attribution: np.ndarray
    baseline_source: np.ndarray | None
    anatomy: np.ndarray
    config: ExplainConfig
    baseline_info: dict[str, Any]
    timings: dict[str, float]
    channels: list[tuple[ChannelSource, np.ndarray]] = field(default_factory=list)
    attribution_display: np.ndarray | None = None
    baseline_masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def display(self) -> np.ndarray:
        """What a person is shown: :attr:`attribution_display`, else :attr:`attribution`."""
        return self.attribution if self.attribution_display is None else self.attribution_display
