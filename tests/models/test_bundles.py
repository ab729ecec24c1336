"""Model-zoo bundles as they are: their own preprocessing and sliding-window inferer are honoured,
their network may live in their scripts/, and the attribution goes back to the source grid."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from medattr import ExplainConfig, Explainer, read_volume
from medattr.cli import main
from medattr.models import load_model
from medattr.models.inferers import SlidingWindowModel


def _write_bundle(root: Path, inference: dict[str, Any], net: torch.nn.Module, meta: dict) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "configs" / "inference.json").write_text(json.dumps(inference, indent=2))
    (root / "configs" / "metadata.json").write_text(json.dumps(meta, indent=2))
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


CT_PREPROCESSING = {
    "_target_": "Compose",
    "transforms": [
        {"_target_": "LoadImaged", "keys": "image"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": [3.0, 3.0, 3.0], "mode": "bilinear"},
        {
            "_target_": "ScaleIntensityRanged",
            "keys": "image",
            "a_min": -57,
            "a_max": 164,
            "b_min": 0.0,
            "b_max": 1.0,
            "clip": True,
        },
        {"_target_": "CropForegroundd", "keys": "image", "source_key": "image"},
        {"_target_": "EnsureTyped", "keys": "image"},
    ],
}


@pytest.fixture(scope="module")
def ct_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CT segmentation bundle laid out as the model zoo lays them out (spleen-like)."""
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    inference = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "UNet",
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 2,
            "channels": [4, 8],
            "strides": [2],
            "num_res_units": 0,
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": CT_PREPROCESSING,
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": [16, 16, 16],
            "sw_batch_size": 2,
            "overlap": 0.25,
        },
    }
    meta = {
        "name": "tiny CT segmentation",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1}},
            "outputs": {
                "pred": {"type": "image", "channel_def": {"0": "background", "1": "organ"}}
            },
        },
    }
    return _write_bundle(tmp_path_factory.mktemp("bundles") / "ct_seg", inference, net, meta)


@pytest.fixture(scope="module")
def ct_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CT in HU at 1.5 x 1.5 x 2.5 mm, LPS-stored, with an organ-like blob inside a body."""
    rng = np.random.default_rng(3)
    data = np.full((40, 36, 22), -1000.0, np.float32)
    data[4:36, 5:32, 2:20] = rng.normal(40, 15, (32, 27, 18))
    data[14:26, 12:22, 7:14] += 80
    affine = np.diag([-1.5, -1.5, 2.5, 1.0])
    path = tmp_path_factory.mktemp("ct") / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_the_model_sees_what_the_bundles_own_pipeline_gives_it(
    ct_bundle: Path, ct_study: Path
) -> None:
    reference = ConfigParser({"p": CT_PREPROCESSING}).get_parsed_content("p")(
        {"image": str(ct_study)}
    )
    ex = Explainer(str(ct_bundle), ExplainConfig(baseline="zero", target=1))
    pre = ex.preprocessor(read_volume(ct_study))
    ours, theirs = pre.image[0], reference["image"]
    assert tuple(ours.shape) == tuple(theirs.shape)  # spacing and the foreground crop
    torch.testing.assert_close(ours, theirs.as_tensor().float(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pre.affine, theirs.affine.numpy(), atol=1e-5)
    assert float(ours.max()) <= 1.0 and float(ours.min()) >= 0.0  # the bundle's own HU window


def test_the_bundles_sliding_window_inferer_is_used(ct_bundle: Path) -> None:
    model = load_model(ct_bundle)
    assert model.spec.inferer is not None and model.spec.inferer["roi_size"] == [16, 16, 16]
    ex = Explainer(model, ExplainConfig(baseline="zero", target=1))
    assert isinstance(ex.network, SlidingWindowModel) and ex.network.sw_batch_size == 2


def test_a_ct_segmentation_bundle_is_explained_on_the_source_grid(
    ct_bundle: Path, ct_study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            str(ct_study),
            "--model",
            str(ct_bundle),
            "--out",
            str(out),
            "--target",
            "1",
            "--baseline",
            "zero",
            "--steps",
            "4",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["inferer"]["type"] == "sliding_window"
    assert m["model"]["preprocessing"] == "model's own transforms"
    assert m["model"]["contract"]["class_names"] == ["background", "organ"]
    attr = nib.load(str(out / "ct_attr.nii.gz"))
    assert attr.shape == (40, 36, 22)
    np.testing.assert_array_equal(attr.affine, nib.load(str(ct_study)).affine)
    # the attribution's total survives the inverse of spacing + crop (adjoint)
    assert m["attribution_sum_source_grid"] == pytest.approx(
        m["attribution_sum_model_grid"], rel=1e-4, abs=1e-6
    )
    span = m["f_input"] - m["f_baseline"]
    assert m["convergence_delta"] == pytest.approx(m["attribution_sum_model_grid"] - span, abs=1e-3)


SCRIPT_NET = """
import torch


class TinyClassifier(torch.nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))
"""


def test_a_classification_bundle_with_its_network_in_scripts(
    ct_study: Path, tmp_path: Path
) -> None:
    root = tmp_path / "classifier_bundle"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "__init__.py").write_text("")
    (root / "scripts" / "tiny_net_for_medattr_test.py").write_text(textwrap.dedent(SCRIPT_NET))
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(SCRIPT_NET), namespace)  # the same class, to make its weights
    torch.manual_seed(1)
    net = namespace["TinyClassifier"](3)
    inference = {
        "network_def": {
            "_target_": "scripts.tiny_net_for_medattr_test.TinyClassifier",
            "classes": 3,
        },
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Spacingd", "keys": "image", "pixdim": [4.0, 4.0, 4.0]},
                {"_target_": "NormalizeIntensityd", "keys": "image"},
                {"_target_": "ResizeWithPadOrCropd", "keys": "image", "spatial_size": [12, 12, 8]},
            ],
        },
    }
    _write_bundle(root, inference, net, {"name": "classifier"})
    out = tmp_path / "out"
    argv = ["explain", str(ct_study), "--model", str(root), "--out", str(out)]
    code = main([*argv, "--target", "2", "--steps", "4", "--baseline", "zero", "--no-progress"])
    assert code == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["model"]["contract"] == {
        "kind": "classes",
        "channels": 3,
        "class_names": ["class 0", "class 1", "class 2"],
    }
    assert m["model"]["grid_shape"] == [12, 12, 8]
    assert m["attribution_sum_source_grid"] == pytest.approx(
        m["attribution_sum_model_grid"], rel=1e-4, abs=1e-6
    )
