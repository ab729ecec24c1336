"""Anatomy display windows: the source's own VOI, a named preset, or a centre and width.

The RGB overlay burns the anatomy's grey levels into its pixels, so the window it uses is the
one the reader gets (an RGB image cannot be re-windowed). By default it is the window the
source series itself carries (WindowCenter/WindowWidth, the modality's choice for this
acquisition, e.g. 40/400 for an abdominal CT); a named preset or an explicit centre/width
overrides it, and ``"percentile"`` spreads the 0.5-99.5 percentiles of the volume (what older
medattr versions did, which washes out soft tissue on CT).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from pydicom.dataset import Dataset

from medattr.errors import InputError

__all__ = ["WINDOW_PRESETS", "DisplayWindow", "parse_window", "resolve_window"]

logger = logging.getLogger("medattr.io.dicom")


class DisplayWindow(NamedTuple):
    """A linear display window in the image's rescaled units (HU for CT).

    Examples
    --------
    >>> DisplayWindow(40.0, 400.0).limits
    (-160.0, 240.0)
    """

    center: float
    width: float

    @property
    def limits(self) -> tuple[float, float]:
        """``(low, high)``: the values shown black and white."""
        return (self.center - self.width / 2.0, self.center + self.width / 2.0)

    def __str__(self) -> str:
        return f"{self.center:g}/{self.width:g}"


#: CT windows (centre, width in HU) under the names OHIF's window presets use.
WINDOW_PRESETS: dict[str, DisplayWindow] = {
    "soft-tissue": DisplayWindow(40.0, 400.0),
    "lung": DisplayWindow(-600.0, 1500.0),
    "liver": DisplayWindow(90.0, 150.0),
    "bone": DisplayWindow(480.0, 2500.0),
    "brain": DisplayWindow(40.0, 80.0),
}

#: What ``window`` may be: see :func:`parse_window`.
WindowSpec = DisplayWindow | Sequence[float] | str | None

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CENTER_WIDTH = re.compile(rf"^\s*({_NUMBER})\s*[/,]\s*({_NUMBER})\s*$")


def parse_window(window: WindowSpec) -> DisplayWindow | str:
    """Normalise a window choice: a :class:`DisplayWindow`, ``"source"`` or ``"percentile"``.

    Parameters
    ----------
    window
        ``None`` or ``"source"``: the source series' own WindowCenter/WindowWidth (falling
        back to ``"percentile"`` when it has none); ``"percentile"``: the 0.5-99.5
        percentiles of the volume; a preset name from :data:`WINDOW_PRESETS`
        (``"soft-tissue"``, ``"lung"``, ``"liver"``, ``"bone"``, ``"brain"``); a string
        ``"C/W"`` or ``"C,W"`` such as ``"40/400"``; or a ``(center, width)`` pair.

    Raises
    ------
    InputError
        For anything else, or a width that is not positive.

    Examples
    --------
    >>> parse_window("-600/1500") == parse_window("lung") == DisplayWindow(-600.0, 1500.0)
    True
    >>> parse_window(None)
    'source'
    """
    if window is None:
        return "source"
    if isinstance(window, str):
        name = _name(window)
        if name in ("source", "percentile"):
            return name
        if name in WINDOW_PRESETS:
            return WINDOW_PRESETS[name]
        match = _CENTER_WIDTH.match(window)
        if match is None:
            choices = ", ".join(["source", "percentile", *WINDOW_PRESETS])
            raise InputError(
                f"window must be one of {choices} or CENTER/WIDTH such as 40/400, got {window!r}"
            )
        center, width = float(match.group(1)), float(match.group(2))
    else:
        try:
            center, width = (float(v) for v in window)
        except (TypeError, ValueError):
            raise InputError(
                f"window must be a (center, width) pair, a preset name or 'source', got {window!r}"
            ) from None
    if not (np.isfinite(center) and np.isfinite(width) and width > 0):
        raise InputError(
            f"window width must be positive and both values finite, got center {center!r}, "
            f"width {width!r}"
        )
    return DisplayWindow(center, width)


def _name(window: str) -> str:
    return window.strip().lower().replace("_", "-").replace(" ", "-")


def _first_number(value: Any) -> float | None:
    """First value of a (possibly multi-valued) DS attribute, or None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes) and hasattr(value, "__len__"):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def source_window(datasets: Sequence[Dataset]) -> DisplayWindow | None:
    """The first WindowCenter/WindowWidth of a series (classic or Enhanced), if it has one."""
    for ds in datasets[:1]:
        holders: list[Dataset] = [ds]
        for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            for item in list(ds.get(group, []))[:1]:
                holders.extend(item.get("FrameVOILUTSequence", []))
        for holder in holders:
            center = _first_number(holder.get("WindowCenter"))
            width = _first_number(holder.get("WindowWidth"))
            if center is not None and width is not None and width > 0:
                return DisplayWindow(center, width)
    return None


def resolve_window(
    window: WindowSpec, datasets: Sequence[Dataset], anatomy: np.ndarray
) -> tuple[DisplayWindow, str]:
    """The window to burn in, and where it came from.

    Parameters
    ----------
    window
        As for :func:`parse_window`.
    datasets
        The source headers (``volume.source.dicom.datasets``).
    anatomy
        The source voxels, for the percentile window.

    Returns
    -------
    (DisplayWindow, str)
        The window and its origin: ``"source"``, ``"percentile"`` (asked for, or the source
        has no window), ``"preset <name>"`` or ``"explicit"``.

    Examples
    --------
    >>> resolve_window("soft-tissue", [], np.zeros(3))
    (DisplayWindow(center=40.0, width=400.0), 'preset soft-tissue')
    """
    choice = parse_window(window)
    if isinstance(choice, DisplayWindow):
        if isinstance(window, str) and _name(window) in WINDOW_PRESETS:
            return choice, f"preset {_name(window)}"
        return choice, "explicit"
    if choice == "source":
        found = source_window(datasets)
        if found is not None:
            return found, "source"
        logger.info("the source has no WindowCenter/WindowWidth: window from the percentiles")
    lo, hi = np.percentile(np.asarray(anatomy, dtype=np.float64), [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    return DisplayWindow((lo + hi) / 2.0, hi - lo), "percentile"
