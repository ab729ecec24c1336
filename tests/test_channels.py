"""Multi-channel studies: a 4D NIfTI, one file per channel (on different grids), DICOM series
per channel; the attribution is written per channel on each channel's own grid."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medattr import ExplainConfig, Explainer
from medattr.cli import main
from medattr.cohort import CohortRunner, load_cohort
from medattr.io import read_study
from medattr.models import ModelSpec, export_torchscript


class TwoChannelNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(2, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


@pytest.fixture(scope="module")
def two_channel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec(
        class_names=["healthy", "lesion"],
        default_target=1,
        in_channels=2,
        pixdim=(3.0, 3.0, 3.0),
        spatial_size=(12, 12, 12),
        intensity={"mode": "zscore"},
    )
    path = tmp_path_factory.mktemp("m") / "t1_flair.ts"
    export_torchscript(TwoChannelNet(), spec, path)
    return path


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


@pytest.fixture
def t1_flair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    t1 = rng.normal(100, 10, (16, 16, 12))
    t1[6:10, 6:10, 4:8] += 50
    flair = rng.normal(80, 8, (12, 12, 8))  # another grid: 4 mm, shifted
    flair[4:8, 4:8, 2:6] += 60
    return (
        _nifti(tmp_path / "t1.nii.gz", t1, np.diag([3.0, 3.0, 3.0, 1.0])),
        _nifti(tmp_path / "flair.nii.gz", flair, np.diag([4.0, 4.0, 4.5, 1.0])),
    )


def test_channels_on_other_grids_are_resampled_and_mapped_back_keeping_totals(
    two_channel_model: Path, t1_flair: tuple[Path, Path]
) -> None:
    volume = read_study(list(map(str, t1_flair)))
    assert volume.num_channels == 2 and volume.spatial_shape == (16, 16, 12)
    sources = volume.meta["channels"]
    assert [s.name for s in sources] == ["t1", "flair"] and sources[1].resampled
    result = Explainer(str(two_channel_model), ExplainConfig(baseline="zero", n_steps=8)).explain(
        volume
    )
    (_, t1_attr), (_, fl_attr) = result.channels
    assert t1_attr.shape == (16, 16, 12) and fl_attr.shape == (12, 12, 8)  # own grids
    model_grid = result.explanation.attributions[0].double()
    # each channel keeps its own total (exact adjoints), and the channels add up
    assert t1_attr.sum() == pytest.approx(float(model_grid[0].sum()), rel=1e-4, abs=1e-6)
    assert fl_attr.sum() == pytest.approx(float(model_grid[1].sum()), rel=1e-3, abs=1e-5)
    assert result.attribution.sum() == pytest.approx(float(model_grid.sum()), rel=1e-4, abs=1e-6)
    assert np.abs(fl_attr).sum() > 0  # the second channel is not dropped


def test_cli_takes_one_input_per_channel_and_writes_each(
    two_channel_model: Path, t1_flair: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    t1, flair = t1_flair
    argv = ["explain", str(t1), "--input", str(flair), "--model", str(two_channel_model)]
    assert main([*argv, "--out", str(out), "--baseline", "zero", "--no-progress"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    files = {k.removeprefix("attribution_nifti_"): v for k, v in m["outputs"].items()}
    assert files["t1"] == "t1_attr_t1.nii.gz" and files["flair"] == "t1_attr_flair.nii.gz"
    assert m["display"]["mapping"]["nifti"] == "adjoint"
    flair_out = nib.load(str(out / files["flair"]))
    assert flair_out.shape == (12, 12, 8)
    np.testing.assert_allclose(flair_out.affine, nib.load(str(flair)).affine, atol=1e-5)


def test_a_4d_nifti_holds_channels_and_a_cohort_entry_lists_them(
    two_channel_model: Path, t1_flair: tuple[Path, Path], tmp_path: Path
) -> None:
    rng = np.random.default_rng(1)
    four = _nifti(tmp_path / "both.nii.gz", rng.normal(0, 1, (16, 16, 12, 2)), np.eye(4) * 3)
    vol = read_study(str(four))
    assert vol.num_channels == 2
    ex = Explainer(str(two_channel_model), ExplainConfig(baseline="zero", n_steps=4))
    res = ex.explain(vol)
    assert [s.name for s, _ in res.channels] == ["both_ch0", "both_ch1"]
    entries = load_cohort([{"image": [str(p) for p in t1_flair], "id": "p1"}], base_dir=tmp_path)
    summary = CohortRunner(ex, tmp_path / "cohort")(entries)
    assert summary.counts["done"] == 1
    m = json.loads((tmp_path / "cohort" / "p1" / "manifest.json").read_text())
    assert {"attribution_nifti_t1", "attribution_nifti_flair"} <= set(m["outputs"])
