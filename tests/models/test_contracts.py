"""Models medattr's authors never saw: no class count assumed, tuple/dict outputs, plain
modules left as given, state dicts and torch.export programs, files that are no model."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medattr import ExplainConfig, Explainer, Volume
from medattr.cli import main
from medattr.errors import InputError, ModelError
from medattr.models import load_model


class Head(torch.nn.Module):
    """A tiny 3D classifier with ``k`` outputs (k = 1: one logit)."""

    def __init__(self, k: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


class TupleHead(torch.nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.head = Head(k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(x)
        return logits, logits.softmax(1)


class DictHead(TupleHead):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return {"logits": self.head(x), "features": x.mean(dim=(2, 3, 4))}


class Segmenter(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(1, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _save_plain(module: torch.nn.Module, path: Path) -> Path:
    """TorchScript without medattr's (or any) metadata: what a user brings."""
    torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


@pytest.fixture
def study(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 1.0, (12, 10, 8)).astype(np.float32)
    data[4:8, 3:7, 2:6] += 3.0
    path = tmp_path / "study.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    return path


def _explain(model: Path | str, study: Path, out: Path, *extra: str) -> tuple[int, dict]:
    code = main(
        [
            "explain",
            str(study),
            "--model",
            str(model),
            "--out",
            str(out),
            "--steps",
            "4",
            "--baseline",
            "zero",
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )
    manifest = (out / "manifest.json").read_text() if (out / "manifest.json").exists() else "{}"
    return code, json.loads(manifest)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_no_class_count_is_assumed(k: int, study: Path, tmp_path: Path) -> None:
    model = _save_plain(Head(k), tmp_path / f"head{k}.ts")
    code, m = _explain(model, study, tmp_path / "out", "--target", str(k - 1))
    assert code == 0
    assert m["model"]["contract"]["kind"] == ("binary" if k == 1 else "classes")
    assert m["model"]["contract"]["channels"] == k
    assert abs(m["relative_delta"]) < 0.05
    code, _ = _explain(model, study, tmp_path / "bad", "--target", str(k))
    assert code == 2 and not (tmp_path / "bad").exists()


def test_a_single_logit_is_explained_with_its_sigmoid_and_warned_about_correctly(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save_plain(Head(1), tmp_path / "binary.ts")
    vol = Volume(np.random.default_rng(2).normal(5.0, 1.0, (1, 12, 10, 8)), np.eye(4))
    ex = Explainer(str(model), ExplainConfig(baseline="zero", n_steps=4))
    with torch.no_grad():
        logit0 = float(ex.network(torch.zeros(1, 1, 12, 10, 8)))
    info = ex.explain(vol).baseline_info
    # a single logit explains the positive class: "still positive" iff sigmoid(logit) > 0.5
    assert info["still_target_class"] is (logit0 > 0)
    assert ("warning" in info) is (logit0 > 0)
    code, _ = _explain(model, study, tmp_path / "sm", "--activation", "softmax")
    assert code == 2 and "softmax' over a single logit" in capsys.readouterr().err
    code, m = _explain(model, study, tmp_path / "sig", "--activation", "sigmoid")
    assert code == 0 and 0.0 <= m["f_input"] <= 1.0


def test_tuple_and_dict_outputs_need_a_choice(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tup = _save_plain(TupleHead(2), tmp_path / "tuple.ts")
    code, _ = _explain(tup, study, tmp_path / "t0")
    err = capsys.readouterr().err
    assert code == 2 and "tuple of 2 outputs" in err and "--output INDEX" in err
    code, m = _explain(tup, study, tmp_path / "t1", "--output", "0", "--target", "1")
    assert code == 0 and m["config"]["output"] == "0"
    dic = _save_plain(DictHead(2), tmp_path / "dict.ts")
    code, _ = _explain(dic, study, tmp_path / "d0")
    assert code == 2 and "'logits'" in capsys.readouterr().err
    code, _ = _explain(dic, study, tmp_path / "d1", "--output", "logits", "--target", "0")
    assert code == 0
    code, _ = _explain(dic, study, tmp_path / "d2", "--output", "probs")
    assert code == 2 and "there is no 'probs'" in capsys.readouterr().err


def test_segmentation_needs_a_label(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seg = _save_plain(Segmenter(), tmp_path / "seg.ts")
    code, _ = _explain(seg, study, tmp_path / "s0")
    assert code == 2 and "needs the label to explain: --target LABEL" in capsys.readouterr().err
    code, m = _explain(seg, study, tmp_path / "s1", "--target", "2")
    assert code == 0 and m["model"]["contract"]["kind"] == "segmentation"
    assert m["target"]["type"] == "segmentation-region" and m["target"]["label"] == 2


def test_a_plain_module_is_left_as_it_was_given() -> None:
    net = Head(2)
    net.train()
    net.conv.weight.requires_grad_(True)
    net.fc.bias.requires_grad_(False)
    vol = Volume(np.random.default_rng(1).random((1, 6, 6, 6), np.float32), np.eye(4))
    Explainer(net, ExplainConfig(baseline="zero", n_steps=2)).explain(vol)
    assert net.training and net.conv.training
    assert net.conv.weight.requires_grad and not net.fc.bias.requires_grad
    assert net.conv.weight.device.type == "cpu"


def test_state_dict_and_torch_export_files(study: Path, tmp_path: Path) -> None:
    net = Head(2).eval()
    sd = tmp_path / "weights.pt"
    torch.save(net.state_dict(), sd)
    with pytest.raises(ModelError, match="without its network"):
        load_model(sd)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps({"network": {"_target_": "tests.models.test_contracts.Head", "k": 2}})
    )
    loaded = load_model(sd, spec=spec)
    x = torch.rand(1, 1, 6, 6, 6)
    torch.testing.assert_close(loaded.module(x), net(x))
    assert loaded.kind == "state-dict"
    pt2 = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 1, 12, 10, 8),)), str(pt2))
    exported = load_model(pt2)
    assert exported.kind == "export"
    code, m = _explain(pt2, study, tmp_path / "pt2", "--target", "1")
    assert code == 0 and m["model"]["kind"] == "export"  # fixed batch 1: points one by one
    dynamic = tmp_path / "dynamic.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.export.save(
        torch.export.export(net, (torch.rand(2, 1, 12, 10, 8),), dynamic_shapes={"x": {0: batch}}),
        str(dynamic),
    )
    code, m2 = _explain(dynamic, study, tmp_path / "dyn", "--target", "1")
    assert code == 0 and m2["f_input"] == pytest.approx(m["f_input"], abs=1e-5)
    assert m2["convergence_delta"] == pytest.approx(m["convergence_delta"], abs=1e-5)


def test_a_file_that_is_no_model_names_the_accepted_formats(tmp_path: Path) -> None:
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"\x00weights")
    with pytest.raises(ModelError) as err:
        load_model(junk)
    text = str(err.value)
    assert str(junk) in text and "not a TorchScript file" in text
    for word in ("TorchScript", "torch.export", "state-dict", "MONAI bundle"):
        assert word in text


def test_target_refusals_are_input_errors() -> None:
    assert issubclass(ModelError, InputError)
