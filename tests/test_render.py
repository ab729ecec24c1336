from __future__ import annotations

from pathlib import Path

import numpy as np

from medattr.render import blend_rgb, montage, peak_index, robust_limit, to_ras


def test_blend_shows_anatomy_below_threshold_and_colour_above() -> None:
    anatomy = np.linspace(0, 1, 16).reshape(4, 4)
    attr = np.zeros((4, 4))
    attr[0, 0], attr[3, 3] = 1.0, -1.0
    rgb = blend_rgb(anatomy, attr, window=(0, 1), limit=1.0)
    gray = np.round(anatomy * 255).astype(np.uint8)
    assert np.array_equal(rgb[1, 1], [gray[1, 1]] * 3)  # no attribution: plain gray
    assert rgb[0, 0, 0] > rgb[0, 0, 2]  # positive: red
    assert rgb[3, 3, 2] > rgb[3, 3, 0]  # negative: blue


def test_to_ras_reorders_axes() -> None:
    lps = np.diag([-1.0, -1.0, 2.0, 1.0])  # i runs to the left, j posterior
    arr = np.zeros((3, 4, 5))
    arr[0, 0, 0] = 1  # most right, most anterior voxel
    out, spacing = to_ras(arr, lps)
    assert out[2, 3, 0] == 1 and list(spacing) == [1.0, 1.0, 2.0]


def test_montage_writes_a_png_through_the_peak(tmp_path: Path) -> None:
    anatomy = np.random.default_rng(0).random((20, 24, 12)).astype(np.float32)
    attr = np.zeros_like(anatomy)
    attr[5, 6, 7] = 3.0
    attr[1, 1, 1] = -1.0
    assert peak_index(attr) == (5, 6, 7)
    assert robust_limit(np.zeros(3)) == 1.0
    path = tmp_path / "m.png"
    pk = montage(anatomy, attr, np.diag([2.0, 2.0, 4.0, 1.0]), path, title="t")
    assert pk == (5, 6, 7)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))  # no temporary left behind
