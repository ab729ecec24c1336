from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medattr.cli import main
from medattr.models import export_torchscript
from tests.conftest import tiny_spec

OBLIQUE = np.array(
    [
        [0.0, -2.9, 0.6, 40.0],
        [3.0, 0.0, 0.0, -25.0],
        [0.0, 0.5, 4.8, 10.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _write(path: Path, data: np.ndarray, affine: np.ndarray = OBLIQUE) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def study(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(40, 60, (14, 18, 9)).astype(np.float32)
    data[5:9, 6:10, 3:6] += 150
    return _write(tmp_path / "study.nii.gz", data)


def _run(*argv: str) -> int:
    return main([*argv, "--no-progress"]) if argv and argv[0] == "explain" else main(list(argv))


def test_explain_writes_attribution_on_the_source_grid(
    tiny_model: Path, study: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert (
        _run(
            "explain",
            str(study),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--steps",
            "16",
            "--device",
            "cpu",
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "study_attr.nii.gz",
        "study_baseline.nii.gz",
        "study_montage.png",
        "study_panel.png",
    ]
    src = nib.load(str(study))
    attr = nib.load(str(out / "study_attr.nii.gz"))
    assert attr.shape == src.shape
    assert np.array_equal(attr.affine, src.affine)  # bit-identical geometry
    assert attr.get_data_dtype() == np.float32
    m = json.loads((out / "manifest.json").read_text())
    assert m["method"]["name"] == "ig" and m["method"]["n_steps"] == 16
    assert m["model"]["sha256"] and len(m["model"]["sha256"]) == 64
    # completeness is reported and consistent with the written numbers
    span = m["f_input"] - m["f_baseline"]
    assert m["convergence_delta"] == pytest.approx(m["attribution_sum_model_grid"] - span, abs=1e-6)
    assert abs(m["convergence_delta"]) < 0.05 * abs(span) + 1e-6
    # the source-grid map keeps the total up to interpolation error
    total = float(np.asarray(attr.dataobj, dtype=np.float64).sum())
    assert total == pytest.approx(m["attribution_sum_source_grid"], rel=1e-5)
    assert total == pytest.approx(
        m["attribution_sum_model_grid"], rel=1e-4, abs=1e-6
    )  # adjoint map
    assert set(m["timings_s"]) >= {
        "read",
        "preprocess",
        "baseline",
        "attribution",
        "invert",
        "write",
    }
    assert m["outputs"]["montage_png"] == "study_montage.png"
    assert (out / "study_montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "method,extra",
    [
        ("smoothgrad", ["--nt-samples", "2"]),
        ("split-ig", ["--ratio", "0.8"]),
        ("expected-gradients", ["--eg-samples", "6"]),
    ],
)
def test_each_method_end_to_end(
    method: str, extra: list[str], tiny_model: Path, study: Path, tmp_path: Path
) -> None:
    if method == "expected-gradients":
        rng = np.random.default_rng(1)
        refs = [
            str(
                _write(tmp_path / f"ref{i}.nii", rng.normal(40, 60, (14, 18, 9)).astype(np.float32))
            )
            for i in range(3)
        ]
        extra = [*extra, "--references", *refs]
    out = tmp_path / method
    assert (
        _run(
            "explain",
            str(study),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--steps",
            "8",
            "--method",
            method,
            "--device",
            "cpu",
            *extra,
        )
        == 0
    )
    m = json.loads((out / "manifest.json").read_text())
    assert m["method"]["name"] == method
    assert np.isfinite(nib.load(str(out / "study_attr.nii.gz")).get_fdata()).all()
    if method == "split-ig":
        assert 0.0 < m["extras"]["alpha_star"][0] <= 1.0
    if method == "expected-gradients":
        assert m["baseline"]["n_references"] == 3


@pytest.mark.parametrize(
    "baseline", ["zero", "constant", "blur", "noise-uniform", "noise-gaussian", "file"]
)
def test_each_baseline_end_to_end(
    baseline: str, tiny_model: Path, study: Path, tmp_path: Path
) -> None:
    extra: list[str] = []
    if baseline == "file":
        data = np.full((14, 18, 9), -1000.0, np.float32)
        baseline = f"file:{_write(tmp_path / 'air.nii.gz', data)}"
    if baseline == "constant":
        extra = ["--baseline-value", "-1000"]
    out = tmp_path / "out"
    assert (
        _run(
            "explain",
            str(study),
            "--model",
            str(tiny_model),
            "--out",
            str(out),
            "--steps",
            "8",
            "--baseline",
            baseline,
            "--device",
            "cpu",
            *extra,
        )
        == 0
    )
    m = json.loads((out / "manifest.json").read_text())
    written = nib.load(str(out / "study_baseline.nii.gz")).get_fdata()
    if baseline.startswith("file:") or baseline == "constant":
        # -1000 HU maps to the bottom of the model's window (0) wherever the source has data
        assert m["baseline"]["distance_to_input"]["mean_abs"] > 0
        assert np.median(written) == pytest.approx(0.0, abs=1e-3)
    assert np.isfinite(m["f_baseline"])


@pytest.mark.parametrize("baseline", ["vae-recon", "vae-guided", "vae-guided-residual"])
def test_each_counterfactual_baseline_end_to_end(baseline: str, tmp_path: Path) -> None:
    """``medattr explain --baseline vae-* --vae PATH`` with the shipped brain pair on the
    embedded brain lesion study: f(x') and the distance to x reported, the VAE identified, and
    a counterfactual the classifier still calls diseased flagged with a warning."""
    from medattr.models import builtin_model_path, file_sha256

    vae = builtin_model_path("mni-vae")
    out = tmp_path / "out"
    argv = _explain_brain_demo(out)
    argv += ["--baseline", baseline, "--vae", str(vae), "--steps", "8", "--device", "cpu"]
    assert _run(*argv) == 0
    m = json.loads((out / "manifest.json").read_text())
    b = m["baseline"]
    assert b["name"] == baseline and b["vae"]["sha256"] == file_sha256(vae)
    assert b["p_disease_input"][0] > 0.99  # the study has a lesion the classifier sees
    assert np.isfinite(m["f_baseline"]) and b["distance_to_input"]["mean_abs"] > 0
    assert (out / "demo_mni_baseline.nii.gz").exists()
    if baseline == "vae-recon":  # the plain reconstruction is still called diseased
        assert b["reached_healthy"] == [False] and b["still_target_class"] is True
        assert any("vae-recon" in w for w in m["warnings"]), m["warnings"]
    else:  # the guided ones reach "healthy" within the step bound
        assert b["reached_healthy"] == [True] and b["p_disease_baseline"][0] <= 0.2
        assert m["f_baseline"] < 0 < m["f_input"] and m["warnings"] == []


@pytest.mark.parametrize("score", [None, "inpainter"])
def test_inpaint_baseline_end_to_end(score: str | None, tmp_path: Path) -> None:
    """``medattr explain --baseline inpaint`` with the shipped brain classifier on the embedded
    lesion study: the inpainter and the normative maps paired by default and recorded with their
    SHA-256 under ``assets``; the anomaly mask's voxels, volume, components, steps and
    p(disease | x') in the manifest, and the mask written as an output. Measured
    (docs/models.md): the normative mask finds this lesion (x' differs from x only around it);
    the inpainter's own score (``--anomaly-model inpainter``) misses it, so x' = x and the
    baseline is flagged."""
    from medattr.models import builtin_model_path, file_sha256
    from medattr.synthetic.demo import demo_study_path

    out = tmp_path / "out"
    argv = _explain_brain_demo(out)
    argv += ["--baseline", "inpaint", "--steps", "8", "--device", "cpu"]
    argv += ["--anomaly-model", score] if score else []
    assert _run(*argv) == 0
    m = json.loads((out / "manifest.json").read_text())
    b = m["baseline"]
    sha = file_sha256(builtin_model_path("mni-inpainter"))
    assert b["name"] == "inpaint" and b["inpainter"]["sha256"] == sha
    assert m["assets"]["inpainter"]["sha256"] == sha
    assert m["config"]["baseline"] == "inpaint" and m["config"]["inpaint_feather_mm"] == 4.5
    assert b["n_components"][0] == len(b["components"][0])
    assert b["mask_volume_mm3"][0] == pytest.approx(27.0 * b["mask_voxels"][0])
    assert b["steps"][0][0]["step"] == "threshold"
    assert b["p_disease_input"][0] > 0.99 and len(b["p_disease_baseline"]) == 1
    assert (out / "demo_mni_baseline.nii.gz").exists() and np.isfinite(m["f_baseline"])
    # the anomaly mask is an output: on the source grid, source affine, 0/1
    src = nib.load(str(demo_study_path("mni")))
    written = nib.load(str(out / m["outputs"]["anomaly_mask_nifti"]))
    mask = np.asarray(written.dataobj)
    assert m["outputs"]["anomaly_mask_nifti"] == "demo_mni_anomaly_mask.nii.gz"
    assert mask.shape == src.shape and np.array_equal(written.affine, src.affine)
    assert set(np.unique(mask).tolist()) <= {0.0, 1.0}
    assert int(mask.sum()) == b["mask_voxels"][0]  # the demo's grid is the model's grid
    # the panel's second of five columns is the anomaly mask: a yellow contour where one was found
    yellow = _mask_contour_pixels(out / "demo_mni_panel.png")
    assert bool(yellow > 20) is (not b["mask_empty"][0]), yellow
    if score == "inpainter":
        assert "anomaly_model" not in m["assets"]
        assert b["anomaly_mask"]["score"] == {"score": "inpainter-leave-block-out"}
        assert b["mask_empty"] == [True] and m["f_baseline"] == m["f_input"]
        assert b["distance_to_input"]["mean_abs"] == 0.0
        assert b["still_diseased"] == [True] and any("inpaint" in w for w in m["warnings"])
    else:
        maps = file_sha256(builtin_model_path("mni-normative"))
        assert m["assets"]["anomaly_model"]["sha256"] == maps
        assert b["anomaly_mask"]["score"]["sha256"] == maps
        truth = np.asarray(nib.load(str(demo_study_path("mni", part="mask"))).dataobj) > 0.5
        found = mask > 0.5
        assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.5
        assert b["n_components"][0] == 1 and m["f_baseline"] < m["f_input"]
        # a local change: x' differs from x by little on average (the mask is ~0.2 % of the
        # volume; voxel-exactness outside it is tested on the baseline itself)
        assert 0 < b["distance_to_input"]["mean_abs"] < 0.005


def _explain_brain_demo(out: Path) -> list[str]:
    """``medattr explain`` of the embedded brain lesion study with the shipped brain
    classifier, written to ``out`` (the caller adds the baseline and its settings)."""
    from medattr.synthetic.demo import demo_study_path

    return ["explain", str(demo_study_path("mni")), "--model", "builtin:mni", "--out", str(out)]


def _mask_contour_pixels(panel_path: Path) -> int:
    """Yellow pixels in the second of a panel's five columns (the anomaly mask's contour)."""
    from PIL import Image

    panel = np.asarray(Image.open(panel_path).convert("RGB")).astype(int)
    width = panel.shape[1]
    column = panel[:, int(0.21 * width) : int(0.39 * width)]
    yellow = (column[..., 0] > 200) & (column[..., 1] > 200) & (column[..., 2] < 90)
    return int(yellow.sum())


@pytest.mark.parametrize("min_drop", [None, "0"])
def test_guided_inpaint_baseline_end_to_end(min_drop: str | None, tmp_path: Path) -> None:
    """``--baseline inpaint-guided`` on the embedded lesion study. By default the shipped
    classifier's calibrated ``guide_min_drop`` (0.7839) applies: no candidate's infill lowers
    its disease log-odds that much here (measured: each raises it), so none is kept. With
    ``--guide-min-drop 0`` the mask grows until the classifier calls the infill healthy, which
    it never does here (p > 0.99 at each step). Either way the calibrated mask is kept, the
    steps say so, and the baseline is flagged."""
    out = tmp_path / "out"
    argv = _explain_brain_demo(out)
    argv += ["--baseline", "inpaint-guided", "--steps", "4", "--guide-components", "3"]
    argv += ["--guide-min-drop", min_drop] if min_drop else []
    assert _run(*argv) == 0
    m = json.loads((out / "manifest.json").read_text())
    b = m["baseline"]
    expected = {"factor": 0.5, "components": 3, "min_drop": None if min_drop else 0.7839}
    assert b["name"] == "inpaint-guided" and b["guide"] == expected
    assert m["config"]["guide_components"] == 3 and m["config"]["guide_factor"] == 0.5
    steps = b["steps"][0]
    assert [s["step"] for s in steps[:2]] == ["threshold", "dilate"]
    tried = [s for s in steps if s["step"].startswith("guide ")]
    assert len(tried) == 3 and all(s["p_disease"] > 0.5 for s in tried)
    assert tried[0]["voxels"] > steps[1]["voxels"]  # a try adds to the calibrated mask
    if min_drop:
        assert all("logit_drop" not in s for s in tried)
        assert tried[0]["voxels"] < tried[1]["voxels"] < tried[2]["voxels"]  # cumulative
    else:
        assert all(s["logit_drop"] < 0.7839 and not s.get("accepted") for s in tried)
    reason = (
        "no grown mask reached healthy"
        if min_drop
        else "no candidate lowered the disease log-odds enough"
    )
    assert steps[-1] == {"step": "guide", "kept": "calibrated", "reason": reason}
    assert b["guided"] == [False] and b["mask_voxels"] == [steps[1]["voxels"]]
    assert b["still_diseased"] == [True] and any("inpaint-guided" in w for w in m["warnings"])
    assert (out / m["outputs"]["anomaly_mask_nifti"]).exists()
    assert _mask_contour_pixels(out / "demo_mni_panel.png") > 20  # the kept mask, drawn


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--guide-factor", "1.5", "must be <= 1.0"),
        ("--guide-min-drop", "-1", "must be >= 0.0"),
        ("--guide-components", "0", "must be >= 1"),
    ],
)
def test_bad_guide_settings_exit_2_before_any_work(
    flag: str, value: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = _explain_brain_demo(out)
    argv += ["--baseline", "inpaint-guided", flag, value]
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert flag in err and says in err
    assert not out.exists()


def _nothing_written(out: Path) -> bool:
    return not out.exists()


@pytest.mark.parametrize("maps", ["missing", "not-maps"])
def test_bad_anomaly_maps_exit_2_name_the_file_and_write_nothing(
    maps: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "maps.npz"
    if maps == "not-maps":
        path.write_text("not a zip archive")
    out = tmp_path / "out"
    argv = _explain_brain_demo(out)
    argv += ["--baseline", "inpaint", "--anomaly-model", str(path), "--steps", "2"]
    assert _run(*argv) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert ("not found" if maps == "missing" else "not a normative-maps file") in err
    assert _nothing_written(out)


def test_bad_inputs_exit_2_and_write_nothing(
    tiny_model: Path, study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    cases = {}
    cases["missing"] = tmp_path / "missing.nii.gz"
    four = np.random.default_rng(1).normal(40, 60, (6, 6, 6, 3)).astype(np.float32)
    cases["4d"] = _write(tmp_path / "four.nii.gz", four)
    nan = np.zeros((6, 6, 6), np.float32)
    nan[2, 2, 2] = np.nan
    cases["nan"] = _write(tmp_path / "nan.nii.gz", nan)
    (tmp_path / "garbage.nii.gz").write_bytes(b"not a nifti at all")
    cases["garbage"] = tmp_path / "garbage.nii.gz"
    expected = {
        "missing": "file not found",
        "4d": "the model expects 1 channel(s), the volume has 3",
        "nan": "NaN",
        "garbage": "not a readable NIfTI",
    }
    for key, path in cases.items():
        code = _run(
            "explain", str(path), "--model", str(tiny_model), "--out", str(out), "--device", "cpu"
        )
        err = capsys.readouterr().err
        assert code == 2, key
        assert str(path) in err and expected[key] in err, err
        assert _nothing_written(out)


class WrongShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4)).repeat(1, 3)  # 3 outputs where the spec says 2 classes


def test_model_with_wrong_output_shape_exits_2(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "wrong.ts"
    export_torchscript(WrongShape(), tiny_spec(), model)
    out = tmp_path / "out"
    assert (
        _run("explain", str(study), "--model", str(model), "--out", str(out), "--device", "cpu")
        == 2
    )
    err = capsys.readouterr().err
    assert "output has shape (1, 3)" in err and str(model) in err
    assert _nothing_written(out)


def test_bad_arguments_exit_2(
    tiny_model: Path, study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    base = ["explain", str(study), "--model", str(tiny_model), "--out", str(out), "--device", "cpu"]
    assert _run(*base, "--steps", "many") == 2
    assert _run(*base, "--method", "lime") == 2
    assert _run(*base, "--format", "nifti,gif") == 2
    assert _run(*base, "--target", "7") == 2
    assert "out of range" in capsys.readouterr().err
    assert _run(*base, "--baseline", "wavelet") == 2
    assert _run(*base, "--baseline", f"file:{tmp_path / 'nope.nii'}") == 2
    assert _run(*base, "--method", "expected-gradients") == 2  # no references
    assert _run("explain", str(study), "--model", str(tmp_path / "no.ts"), "--out", str(out)) == 2
    (tmp_path / "afile").write_text("x")
    assert (
        _run("explain", str(study), "--model", str(tiny_model), "--out", str(tmp_path / "afile"))
        == 2
    )
    assert _nothing_written(out)


def test_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--method",
        "--baseline",
        "--target",
        "--steps",
        "--device",
        "--amp",
        "--batch",
        "--memory-budget",
        "--format",
        "--out",
        "--model",
        "--references",
        "--ratio",
        "--nt-samples",
        "--noise-level",
        "--blur-sigma-mm",
        "--baseline-value",
        "--seed",
    ):
        assert option in text, option
    assert "FRACTION" in text  # the noise convention is spelled out


def test_console_script_exit_codes(tiny_model: Path, study: Path, tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "medattr",
            "explain",
            str(study),
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "4",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "delta" in ok.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "medattr",
            "explain",
            str(tmp_path / "x.nii"),
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "file not found" in bad.stderr
    assert not (tmp_path / "p").exists()


def test_make_dataset_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    args = [
        "make-dataset",
        str(out),
        "--kind",
        "phantom",
        "--n-train",
        "2",
        "--n-val",
        "1",
        "--n-test",
        "1",
        "--shape",
        "24",
        "24",
        "24",
        "--spacing",
        "8",
    ]
    assert main(args) == 0
    datalist = json.loads((out / "datalist.json").read_text())
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [2, 1, 1]
    for item in datalist["training"]:
        assert nib.load(str(out / item["image"])).shape == (24, 24, 24)
    assert main(args) == 2  # refuses to overwrite without --overwrite
    assert "overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(("auc", "warned"), [(0.52, True), (0.93, False), (None, False)])
def test_a_model_whose_recorded_auc_is_near_chance_is_flagged(
    study: Path, tmp_path: Path, auc: float | None, warned: bool
) -> None:
    from monai.networks.nets import Classifier

    spec = tiny_spec()
    if auc is not None:
        spec.extra = {"metrics": {"test_auc": auc}}
    torch.manual_seed(0)
    net = Classifier(in_shape=(1, 16, 16, 16), classes=2, channels=(4, 8), strides=(2, 2))
    model = tmp_path / "m.ts"
    export_torchscript(net, spec, model)
    out = tmp_path / "out"
    rc = _run("explain", str(study), "--model", str(model), "--out", str(out), "--steps", "2")
    assert rc == 0
    all_warnings = json.loads((out / "manifest.json").read_text())["warnings"]
    warnings = [w for w in all_warnings if "baseline" not in w]  # the model's, not the baseline's
    assert bool(warnings) is warned
    if warned:
        assert f"{auc:.2f}" in warnings[0] and "chance" in warnings[0]


@pytest.mark.parametrize("kind", ["mni", "phantom"])
def test_demo_explains_the_embedded_study_with_the_shipped_models(
    tmp_path: Path, kind: str
) -> None:
    """The README's first command (``mni``, the default: the local ``inpaint`` counterfactual)
    and the phantom demo (blur): a real prediction, a lower score at the baseline, attribution
    concentrated on the lesion. On the brain the anomaly mask is found around the lesion and
    the attribution is nowhere else; the shipped classifier still calls the infilled brain
    diseased (p = 0.99, docs/results.md), which the manifest says."""
    from medattr.synthetic.demo import demo_study_path

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out)] + (["--kind", kind] if kind != "mni" else [])
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["f_input"] > 0 and manifest["f_baseline"] < manifest["f_input"]
    assert abs(manifest["convergence_delta"]) <= 0.01 * abs(
        manifest["f_input"] - manifest["f_baseline"]
    )
    assert manifest["baseline"]["name"] == ("inpaint" if kind == "mni" else "blur")
    source = nib.load(str(demo_study_path(kind)))
    attr = nib.load(str(out / f"demo_{kind}_attr.nii.gz"))
    np.testing.assert_allclose(attr.affine, source.affine, atol=1e-6)
    assert attr.shape == source.shape
    assert (out / f"demo_{kind}_panel.png").stat().st_size > 10_000
    a = np.asarray(attr.dataobj, np.float64)
    mask = np.asarray(nib.load(str(demo_study_path(kind, part="mask"))).dataobj) > 0.5
    share_of_mass = a[mask].sum() / a.sum()
    share_of_volume = mask.mean()
    assert share_of_mass > 10 * share_of_volume, (share_of_mass, share_of_volume)
    if kind == "phantom":
        assert manifest["warnings"] == [] and manifest["f_baseline"] < 0
        return
    # the only warning is the baseline's: still called diseased (the recorded AUC is fine)
    assert len(manifest["warnings"]) == 1 and "inpaint" in manifest["warnings"][0]
    found = np.asarray(nib.load(str(out / "demo_mni_anomaly_mask.nii.gz")).dataobj) > 0.5
    assert 2 * (found & mask).sum() / (found.sum() + mask.sum()) > 0.6
    positive = np.clip(a, 0, None)
    assert positive[mask].sum() > 0.8 * positive.sum()
    # nothing outside the feathered mask (4.5 mm: two voxels of 3 mm)
    from scipy import ndimage

    assert not np.any(a[~ndimage.binary_dilation(found, iterations=2)])


def test_logging_is_quiet_by_default_and_redacted_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    from medattr.cli import configure_logging
    from medattr.phi import forget_identifiers, remember

    remember(["Doe^Jane"])
    log_file = tmp_path / "logs" / "run.log"
    try:
        for verbose in (0, 1):
            configure_logging(verbose, log_file=log_file)
            logging.getLogger("highdicom.seg").info("chatty %d", verbose)
            logging.getLogger("highdicom.seg").warning("worth a look %d", verbose)
            logging.getLogger("medattr").info("study of Doe^Jane %d", verbose)
            logging.getLogger("medattr").debug("details %d", verbose)
            # what logging.captureWarnings makes of pydicom's warning (pytest intercepts the
            # warnings machinery itself, so the record is made here as capture makes it)
            logging.getLogger("py.warnings").warning(
                "valuerep.py:440: UserWarning: Invalid value for VR DA: '%s'", "19700101120000"
            )
        configure_logging(0, quiet=True)
        logging.getLogger("medattr").info("not shown")
        logging.getLogger("medattr").error("shown")
    finally:
        forget_identifiers()
        configure_logging(0)
    err = capsys.readouterr().err
    assert "chatty 0" not in err and "chatty 1" in err  # third-party INFO only with -v
    assert "worth a look 0" in err and "details 0" not in err and "details 1" in err
    assert "study of <redacted> 0" in err and "Jane" not in err
    assert "19700101" not in err and "Invalid value for VR DA" in err  # captured warnings too
    assert "not shown" not in err and "medattr: shown" in err
    text = log_file.read_text()
    assert "study of <redacted> 1" in text and "Jane" not in text and "19700101" not in text
