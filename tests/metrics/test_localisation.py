"""Relevance mass / rank accuracy and the pointing game on hand-made cases."""

from __future__ import annotations

import math
from itertools import product

import pytest
import torch

from medattr.errors import InputError
from medattr.metrics import (
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)

# A 2×2×2 case computed by hand. Flat (C-order) index v = 4 i + 2 j + k.
VALUES = [3.0, -1.0, 2.0, 0.0, 1.0, -2.0, 2.0, 0.5]
INSIDE = [0, 2, 5]  # K = 3 mask voxels (values 3, 2, -2)
EXACT = "donot_use_mm_for_euclid_dist"


def hand_case(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    attr = torch.tensor(VALUES, device=device).view(1, 1, 2, 2, 2)
    mask = torch.zeros(8, dtype=torch.bool, device=device)
    mask[INSIDE] = True
    return attr, mask.view(1, 2, 2, 2)


def test_hand_case_mass(device: torch.device) -> None:
    attr, mask = hand_case(device)
    # positive parts: 3,0,2,0,1,0,2,0.5 → total 8.5, inside 3 + 2 + 0 = 5
    got = relevance_mass_accuracy(attr, mask)
    assert got.device.type == device.type and got.dtype == torch.float64
    assert got.item() == pytest.approx(5 / 8.5)
    # absolute values: total 11.5, inside 3 + 2 + 2 = 7
    assert relevance_mass_accuracy(attr, mask, relevance="absolute").item() == pytest.approx(
        7 / 11.5
    )


def test_hand_case_rank(device: torch.device) -> None:
    attr, mask = hand_case(device)
    # positive: top 3 = 3 (in), then 2 (v2 in) and 2 (v6 out) fill both remaining places
    assert relevance_rank_accuracy(attr, mask).item() == pytest.approx(2 / 3)
    assert relevance_rank_accuracy(attr, mask, relevance="signed").item() == pytest.approx(2 / 3)
    # absolute: 3 (in), then three voxels tie at 2 (v2 in, v5 in, v6 out) for 2 places
    expected = (1 + 2 * (2 / 3)) / 3
    got = relevance_rank_accuracy(attr, mask, relevance="absolute").item()
    assert got == pytest.approx(expected)


def test_hand_case_pointing(device: torch.device) -> None:
    attr, mask = hand_case(device)
    assert pointing_game(attr, mask).item() == 1.0  # max 3 at v0, inside
    flipped = -attr  # max is now 2 at v5 (inside)
    assert pointing_game(flipped, mask).item() == 1.0
    moved = attr.clone().view(-1)
    moved[3] = 5.0  # max at v3, outside
    assert pointing_game(moved.view(1, 1, 2, 2, 2), mask).item() == 0.0


def test_attribution_equal_to_mask_is_perfect(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(3, 6, 5, 4, generator=gen) > 0.7
    attr = mask.float().to(device).unsqueeze(1)
    mask = mask.to(device)
    assert torch.equal(
        relevance_mass_accuracy(attr, mask).cpu(), torch.ones(3, dtype=torch.float64)
    )
    assert torch.equal(
        relevance_rank_accuracy(attr, mask).cpu(), torch.ones(3, dtype=torch.float64)
    )
    assert torch.equal(pointing_game(attr, mask).cpu(), torch.ones(3, dtype=torch.float64))


def test_negative_mask_attribution(device: torch.device) -> None:
    mask = torch.zeros(1, 4, 4, 4, dtype=torch.bool, device=device)
    mask[0, 1:3, 1:3, 1:3] = True  # K = 8 of N = 64
    attr = -mask.float()
    # no positive relevance at all: the mass share is undefined
    assert math.isnan(relevance_mass_accuracy(attr, mask).item())
    # all positive parts tie at zero: chance level K / N
    assert relevance_rank_accuracy(attr, mask).item() == pytest.approx(8 / 64)
    # ranking the signed values puts the mask last
    assert relevance_rank_accuracy(attr, mask, relevance="signed").item() == 0.0
    # absolute value: the mask is exactly the top K
    assert relevance_rank_accuracy(attr, mask, relevance="absolute").item() == 1.0
    assert relevance_mass_accuracy(attr, mask, relevance="absolute").item() == 1.0
    assert pointing_game(attr, mask).item() == 0.0


def test_constant_map_is_chance(device: torch.device) -> None:
    mask = torch.zeros(1, 5, 5, 5, dtype=torch.bool, device=device)
    mask[0, :2, :3] = True  # 30 of 125 voxels
    attr = torch.full((1, 5, 5, 5), 0.7, device=device)
    assert relevance_mass_accuracy(attr, mask).item() == pytest.approx(30 / 125)
    assert relevance_rank_accuracy(attr, mask).item() == pytest.approx(30 / 125)
    # every voxel ties for the maximum: expected hit under a random pick
    assert pointing_game(attr, mask).item() == pytest.approx(30 / 125)


def brute_rank_accuracy(values: torch.Tensor, inside: torch.Tensor) -> float:
    """Average over every tie-break of the top-K voxels: enumerate the tie group exactly."""
    k = int(inside.sum())
    order = sorted(range(values.numel()), key=lambda i: -float(values[i]))
    threshold = float(values[order[k - 1]])
    above = [i for i in order if float(values[i]) > threshold]
    tied = [i for i in order if float(values[i]) == threshold]
    from itertools import combinations

    places = k - len(above)
    total, count = 0.0, 0
    for chosen in combinations(tied, places):
        top = above + list(chosen)
        total += sum(bool(inside[i]) for i in top) / k
        count += 1
    return total / count


def test_rank_accuracy_against_enumeration_with_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        values = torch.randint(0, 4, (12,), generator=gen).float()
        inside = torch.rand(12, generator=gen) > 0.5
        if not inside.any():
            inside[0] = True
        got = relevance_rank_accuracy(
            values.view(1, 12), inside.view(1, 12), spatial_dims=1, relevance="signed"
        )
        assert got.item() == pytest.approx(brute_rank_accuracy(values, inside))


def test_pointing_tolerance_matches_brute_force_distances(device: torch.device) -> None:
    shape = (6, 7, 5)
    spacing = (0.8, 1.3, 2.0)
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(shape, generator=gen) > 0.93
    mask[0, 0, 0] = True
    n = mask.numel()
    coords = torch.tensor(list(product(*(range(s) for s in shape))), dtype=torch.float64)
    mm = coords * torch.tensor(spacing, dtype=torch.float64)
    dist = torch.cdist(mm, mm[mask.flatten()], compute_mode=EXACT).amin(
        1
    )  # to the nearest mask voxel
    # one sample per voxel, each pointing at that voxel
    attr = torch.eye(n).view(n, *shape).to(device)
    masks = mask.expand(n, *shape).to(device)
    for tol in (0.0, 1.0, 1.3, 2.5, 3.7):
        got = pointing_game(attr, masks, tolerance=tol, spacing=spacing).cpu()
        expected = (dist <= tol + 1e-9).double()
        assert torch.equal(got, expected), tol
        # a constant map: every voxel ties, so the result is the grown mask's volume share
        flat = pointing_game(
            torch.zeros(1, *shape, device=device), masks[:1], tolerance=tol, spacing=spacing
        )
        assert flat.item() == pytest.approx(expected.mean().item()), tol
    # without spacing the tolerance is in voxels
    dist_vox = torch.cdist(coords, coords[mask.flatten()], compute_mode=EXACT).amin(1)
    got = pointing_game(attr, masks, tolerance=1.5).cpu()
    assert torch.equal(got, (dist_vox <= 1.5).double())


def test_channels_are_summed_or_scored_separately(device: torch.device) -> None:
    mask = torch.zeros(1, 3, 3, 3, dtype=torch.bool, device=device)
    mask[0, 1, 1, 1] = True
    attr = torch.zeros(1, 2, 3, 3, 3, device=device)
    attr[0, 0, 1, 1, 1] = 2.0
    attr[0, 1, 1, 1, 1] = -1.5  # channel sum 0.5 at the mask voxel
    attr[0, 0, 0, 0, 0] = 1.0  # channel sum 1.0 outside
    assert pointing_game(attr, mask).item() == 0.0
    assert relevance_mass_accuracy(attr, mask).item() == pytest.approx(0.5 / 1.5)
    # element-wise: the single largest element (2.0) is at the mask voxel
    assert pointing_game(attr, mask, channel_reduction="none").item() == 1.0
    assert relevance_mass_accuracy(attr, mask, channel_reduction="none").item() == pytest.approx(
        2 / 3
    )
    # a per-channel mask: channel 1's mask is empty, so only channel 0 counts inside
    per_channel = torch.stack([mask[0], torch.zeros_like(mask[0])]).unsqueeze(0)
    got = relevance_mass_accuracy(attr, per_channel, channel_reduction="none")
    assert got.item() == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="channel_reduction='none'"):
        relevance_mass_accuracy(attr, per_channel)


def test_layouts_and_spatial_dims() -> None:
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, 0, 0] = True
    attr = mask.float()
    # (B, H, W) with spatial_dims=2, and (B, 1, H, W)
    assert relevance_rank_accuracy(attr, mask, spatial_dims=2).tolist() == [1.0, 1.0]
    assert relevance_rank_accuracy(attr[:, None], mask[:, None], spatial_dims=2).tolist() == [
        1.0,
        1.0,
    ]
    # the same 3D-shaped tensor read with 3 spatial axes is (B=2, 4, 4) → wrong rank
    with pytest.raises(InputError, match="spatial_dims"):
        relevance_rank_accuracy(attr, mask)


def test_metatensor_inputs() -> None:
    monai_data = pytest.importorskip("monai.data")
    mask = torch.zeros(1, 3, 3, 3, dtype=torch.bool)
    mask[0, 0] = True
    attr = monai_data.MetaTensor(mask.float().unsqueeze(1))
    out = relevance_mass_accuracy(attr, mask)
    assert type(out) is torch.Tensor and out.item() == 1.0


def test_empty_mask_raises_or_gives_nan() -> None:
    mask = torch.zeros(2, 3, 3, 3, dtype=torch.bool)
    mask[0, 0, 0, 0] = True
    attr = torch.rand(2, 1, 3, 3, 3)
    for fn in (relevance_mass_accuracy, relevance_rank_accuracy, pointing_game):
        with pytest.raises(InputError, match=r"mask is empty for sample\(s\) \[1\]"):
            fn(attr, mask)
        out = fn(attr, mask, empty_mask="nan")
        assert not math.isnan(out[0].item()) and math.isnan(out[1].item())


@pytest.mark.parametrize(
    ("attr_shape", "mask_shape", "match"),
    [
        ((2, 1, 4, 4, 4), (3, 4, 4, 4), "same batch size"),
        ((2, 1, 4, 4, 4), (2, 4, 4, 5), "spatial shape"),
        ((2, 3, 4, 4, 4), (2, 2, 4, 4, 4), "mask has 2 channels"),
        ((2, 4, 4), (2, 4, 4), "attributions must have shape"),
        ((2, 1, 4, 4, 4), (4, 4), "mask must have shape"),
    ],
)
def test_shape_errors_name_the_argument(
    attr_shape: tuple[int, ...], mask_shape: tuple[int, ...], match: str
) -> None:
    with pytest.raises(InputError, match=match):
        relevance_mass_accuracy(torch.rand(attr_shape), torch.ones(mask_shape))


def test_value_errors() -> None:
    attr = torch.rand(1, 1, 3, 3, 3)
    mask = torch.ones(1, 3, 3, 3)
    with pytest.raises(InputError, match="binary"):
        relevance_mass_accuracy(attr, mask * 0.5)
    with pytest.raises(InputError, match="'positive' or 'absolute'"):
        relevance_mass_accuracy(attr, mask, relevance="signed")
    with pytest.raises(InputError, match="relevance must be one of"):
        relevance_rank_accuracy(attr, mask, relevance="neg")
    with pytest.raises(InputError, match="NaN"):
        pointing_game(attr * torch.nan, mask)
    with pytest.raises(InputError, match="tolerance"):
        pointing_game(attr, mask, tolerance=-1)
    with pytest.raises(InputError, match="spacing"):
        pointing_game(attr, mask, tolerance=1, spacing=(1.0, 1.0))
    with pytest.raises(TypeError, match=r"mask must be a torch\.Tensor"):
        pointing_game(attr, [[1]])  # type: ignore[arg-type]


def test_inputs_are_not_modified() -> None:
    attr = torch.randn(2, 2, 4, 4, 4)
    mask = torch.rand(2, 4, 4, 4) > 0.5
    a0, m0 = attr.clone(), mask.clone()
    relevance_mass_accuracy(attr, mask)
    relevance_rank_accuracy(attr, mask, relevance="absolute")
    pointing_game(attr, mask, tolerance=2.0)
    assert torch.equal(attr, a0) and torch.equal(mask, m0)


def test_classes_match_functions() -> None:
    gen = torch.Generator().manual_seed(5)
    attr = torch.randn(3, 1, 5, 5, 5, generator=gen)
    mask = torch.rand(3, 5, 5, 5, generator=gen) > 0.6
    assert torch.equal(
        RelevanceMassAccuracy("absolute")(attr, mask),
        relevance_mass_accuracy(attr, mask, relevance="absolute"),
    )
    assert torch.equal(RelevanceRankAccuracy()(attr, mask), relevance_rank_accuracy(attr, mask))
    game = PointingGame(tolerance=2.0, spacing=(1.0, 1.0, 2.0))
    assert torch.equal(
        game(attr, mask), pointing_game(attr, mask, tolerance=2.0, spacing=(1.0, 1.0, 2.0))
    )
    with pytest.raises(InputError, match="empty_mask must be one of"):
        PointingGame(empty_mask="ignore")
