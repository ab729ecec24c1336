"""The medattr_explain bundle's inference workflow: MONAI properties, runs, overrides."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from medattr import ExplainConfig, Explainer
from medattr.bundle import AttributionInferer, LoadVolumed, StudyWriter, locate_bundle_root
from medattr.cohort import CohortRunner, load_cohort
from medattr.errors import InputError
from medattr.io import read_nifti
from medattr.volume import Volume
from tests.bundle._standin import BUNDLE
from tests.bundle.conftest import run_python, write_tiny_cohort


def _workflow(bundle: Path, **override: object) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / "inference.json"),
        workflow_type="infer",
        logging_file=False,  # keep the test process's logging as it is
        **override,
    )
    wf.initialize()
    return wf


def test_check_properties_and_the_standard_ids(bundle: Path) -> None:
    wf = _workflow(bundle)
    assert wf.check_properties() == []
    assert Path(wf.bundle_root) == bundle  # found from the config file, not the working dir
    assert Path(wf.dataset_dir) == bundle / "sample_data"
    assert isinstance(wf.network_def, torch.jit.ScriptModule)
    assert isinstance(wf.inferer, AttributionInferer)
    assert wf.inferer.options["method"] == "ig" and wf.inferer.options["n_steps"] == 32
    assert isinstance(wf.preprocessing.transforms[0], LoadVolumed)
    assert isinstance(wf.postprocessing, StudyWriter)
    assert len(wf.dataset) == 2
    assert isinstance(wf.dataset.transform.transforms[0], LoadVolumed)
    item = wf.dataset[1]  # the preprocessing reads the study
    assert isinstance(item["image"], Volume) and item["image"].spatial_shape == (64, 64, 64)
    assert item["label"] == 1 and item["study_id"] == "mni_sample1"
    # a renamed id is reported by the check
    broken = _workflow(bundle)
    broken.parser["dataset"]["transform"] = "@other"
    broken.parser["other"] = "$None"
    broken.initialize()
    assert "preprocessing" in broken.check_properties()


def test_bundle_run_equals_the_cohort_runner_and_resumes(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    override = {
        "output_dir": str(out),
        "n_steps": 5,
        "baseline": "zero",
        "formats": ["nifti"],
        "progress": False,
    }
    wf = _workflow(bundle, **override)
    summary = wf.run()[0]
    wf.finalize()
    assert summary.counts == {"done": 2, "skipped": 0, "failed": 0, "pending": 0}
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert [r["study_id"] for r in doc["studies"]] == ["mni_sample0", "mni_sample1"]
    assert doc["config"]["baseline"] == "zero" and doc["config"]["n_steps"] == 5

    # the CLI's code path (load_cohort + Explainer + CohortRunner) gives the same attribution
    ref = tmp_path / "ref"
    explainer = Explainer(
        str(bundle / "models" / "model.ts"),
        ExplainConfig(n_steps=5, baseline="zero", formats=("nifti",), progress=False),
    )
    CohortRunner(explainer, ref, progress=False)(load_cohort(bundle / "sample_data"))
    for sid in ("mni_sample0", "mni_sample1"):
        a = read_nifti(next((out / sid).glob("*_attr.nii.gz"))).array
        b = read_nifti(next((ref / sid).glob("*_attr.nii.gz"))).array
        np.testing.assert_array_equal(a, b)
        m = json.loads((out / sid / "manifest.json").read_text())
        assert m["model"]["sha256"] == explainer.model.sha256
        assert m["input"]["shape"] == [64, 64, 64]  # written on the source grid

    again = _workflow(bundle, **override).run()[0]
    assert again.counts["skipped"] == 2


def test_bundle_reports_a_bad_study_and_finishes_the_rest(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    datalist = write_tiny_cohort(data, 2)
    rows = json.loads(datalist.read_text())["test"]
    (data / "img" / "bad.nii.gz").write_text("truncated")
    rows.insert(1, {"image": "img/bad.nii.gz"})
    datalist.write_text(json.dumps({"test": rows}))
    wf = _workflow(
        bundle,
        dataset_dir=str(data),
        output_dir=str(tmp_path / "out"),
        n_steps=3,
        formats=["nifti"],
        progress=False,
    )
    summary = wf.run()[0]
    assert [r["status"] for r in summary.studies] == ["done", "failed", "done"]
    # the error is medattr's own (not MONAI's "applying transform" wrapper), without the path
    assert summary.studies[1]["error"].startswith("VolumeError: <input>: not a readable NIfTI")


@pytest.mark.slow
def test_monai_bundle_run_on_the_embedded_default_with_overrides(
    bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "eval"
    args = [
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        str(bundle / "configs" / "inference.json"),
    ]
    args += ["--output_dir", str(out), "--method", "smoothgrad", "--baseline", "blur"]
    args += ["--n_steps", "3", "--formats", "nifti", "--progress", "false"]
    proc = run_python(args, cwd=tmp_path)  # another working directory: bundle_root is found
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"]["done"] == 2
    assert doc["config"]["method"] == "smoothgrad" and doc["config"]["n_steps"] == 3
    assert doc["config"]["formats"] == ["nifti"]
    m = json.loads((out / "mni_sample1" / "manifest.json").read_text())
    assert m["method"]["name"] == "smoothgrad"
    assert sorted(m["outputs"]) == ["attribution_nifti", "baseline_nifti"]


def test_components_validate_their_settings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="method must be one of"):
        AttributionInferer(method="gradcam")
    with pytest.raises(InputError, match="unknown attribution setting"):
        AttributionInferer(formats=["nifti"])  # formats belong to the writer
    with pytest.raises(InputError, match="split_paths must be true or false"):
        AttributionInferer(split_paths="maybe")
    assert AttributionInferer(split_paths="false").split_paths is False
    assert StudyWriter("nifti, png").formats == ("nifti", "png")
    with pytest.raises(InputError, match="unknown output format"):
        StudyWriter(["nifti", "tiff"])
    with pytest.raises(InputError, match="explains a medattr Volume"):
        AttributionInferer()(torch.zeros(1, 1, 4, 4, 4), "model.ts")
    with pytest.raises(InputError, match="not found"):
        LoadVolumed()({"image": str(tmp_path / "missing.nii.gz")})
    no_vae = AttributionInferer(baseline="vae-recon", vae=str(tmp_path / "models" / "vae.ts"))
    with pytest.raises(InputError, match="needs the healthy-only VAE, which is missing"):
        no_vae.explainer("model.ts")


def test_locate_bundle_root_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "run", "--config_file", "/b/configs/inference.json"])
    assert locate_bundle_root() == "/b"
    monkeypatch.setattr(
        sys, "argv", ["x", "--config_file=['/c/configs/inference.json','/c/configs/multi.json']"]
    )
    assert locate_bundle_root() == "/c"
    monkeypatch.setattr(sys, "argv", ["x"])
    assert locate_bundle_root("/default") == "/default"


def test_bundle_counterfactual_baseline_uses_the_bundled_vae(bundle: Path, tmp_path: Path) -> None:
    datalist = write_tiny_cohort(tmp_path / "data", 1)
    out = tmp_path / "out"
    wf = _workflow(
        bundle,
        dataset_dir=str(datalist.parent),
        output_dir=str(out),
        baseline="vae-recon",
        n_steps=3,
        formats=["nifti"],
        progress=False,
    )
    summary = wf.run()[0]
    assert summary.counts["done"] == 1, summary.studies
    sid = summary.studies[0]["study_id"]
    m = json.loads((out / sid / "manifest.json").read_text())
    assert m["config"]["baseline"] == "vae-recon"
    assert Path(m["config"]["vae"]) == bundle / "models" / "vae.ts"
    assert "f_baseline" in m["baseline"] and m["baseline"]["name"].startswith("vae")


@pytest.mark.slow
def test_the_real_bundle_explains_its_embedded_default_with_the_shipped_models(
    tmp_path: Path,
) -> None:
    """``python -m monai.bundle run --config_file .../inference.json`` as the README gives it:
    the shipped classifier, the sample cohort, the default local counterfactual (``inpaint``)."""
    from medattr.models import builtin_model_path, file_sha256

    config = BUNDLE / "configs" / "inference.json"
    out = tmp_path / "eval"
    args = ["-m", "monai.bundle", "run", "--config_file", str(config)]
    args += ["--output_dir", str(out), "--n_steps", "8", "--progress", "false"]
    proc = run_python(args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "cohort_summary.json").read_text())
    assert doc["counts"]["done"] == 2 and doc["config"]["baseline"] == "inpaint"
    healthy = json.loads((out / "mni_sample0" / "manifest.json").read_text())
    lesion = json.loads((out / "mni_sample1" / "manifest.json").read_text())
    assert lesion["model"]["sha256"] == file_sha256(builtin_model_path("mni"))
    for name, asset in (("mni-inpainter", "inpainter"), ("mni-normative", "anomaly_model")):
        assert lesion["assets"][asset]["sha256"] == file_sha256(builtin_model_path(name))
    # the lesion study: called diseased, the anomaly mask found, a lower score at the baseline
    # (the shipped classifier still calls the infilled brain diseased: flagged, docs/results.md)
    b = lesion["baseline"]
    assert lesion["f_input"] > 0 and lesion["f_baseline"] < lesion["f_input"]
    assert b["mask_empty"] == [False] and b["n_components"] == [1]
    assert abs(lesion["convergence_delta"]) < 0.05 * (lesion["f_input"] - lesion["f_baseline"])
    # the healthy subject: called healthy, nothing found, so x' = x and no attribution at all
    assert healthy["baseline"]["p_disease_input"][0] < 0.5
    assert healthy["baseline"]["mask_empty"] == [True]
    assert healthy["f_baseline"] == healthy["f_input"]
    for sid in ("mni_sample0", "mni_sample1"):
        files = {p.name for p in (out / sid).iterdir()}
        assert {f"{sid}_image_attr.nii.gz", f"{sid}_image_panel.png"} <= files
