"""A baseline, a method and a writer defined outside medattr are accepted everywhere.

The plug-in module below is written to a temporary directory at test time (never inside
``medattr/``) and reaches medattr in the two ways a hospital would use: imported by the caller
(its decorators register the classes), or installed as a distribution whose entry points
(``medattr.baselines``, ``medattr.methods``, ``medattr.writers``) medattr loads lazily, here for
a ``medattr explain`` subprocess. Nothing in medattr is edited.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from medattr import ExplainConfig, Explainer, attribution, baselines, io
from medattr.cli import main
from medattr.cohort import CohortRunner, load_cohort

PLUGIN = '''
"""A hospital's own medattr plug-ins (a test fixture)."""
from pathlib import Path

import numpy as np

from medattr.attribution import PathAttribution, register as register_method
from medattr.attribution.jobs import PathJobs
from medattr.baselines import Baseline, BaselineResult, register as register_baseline
from medattr.io import Writer, register_writer
from medattr.registry import Setting


@register_baseline("scaled-input")
class ScaledInput(Baseline):
    """The input times a factor read from a weights file (a stand-in for a generator)."""

    name = "scaled-input"
    settings = (
        Setting("scale_file", None, "text file holding the factor", optional=True, asset=True),
        Setting("scale_offset", 0.0, "added to the factor", type=float),
    )

    def __init__(self, scale_file=None, scale_offset=0.0):
        factor = float(Path(scale_file).read_text()) if scale_file else 0.5
        self.factor = factor + scale_offset

    def describe(self):
        return {"name": self.name, "factor": self.factor}

    def generate(self, inputs, context=None):
        return BaselineResult(inputs * self.factor, {"factor": self.factor})

    @classmethod
    def assets(cls, settings, setup):
        return {"scale_file": settings["scale_file"]} if settings.get("scale_file") else {}


@register_method("grad-x-input")
class GradientTimesInput(PathAttribution):
    """Gradient at the input times (input - baseline): one gradient evaluation."""

    method_name = "gradient_x_input"
    captum_arguments = ("baselines", "target", "additional_forward_args")

    def explain(self, inputs, baselines=None, target=None, additional_forward_args=None, **engine):
        call = self.begin(inputs, target, additional_forward_args, **engine)
        base = call.baselines(baselines)
        res = call.run(base.baselines, PathJobs.straight(call.batch, [1.0], [1.0]))
        f_b = call.f_at(base.baselines)
        return call.explanation(res.sums[0], f_b, res, {}, baselines=base.baselines)


@register_writer("npy")
class NpyWriter(Writer):
    """The attribution on the source grid as a NumPy array."""

    settings = (Setting("npy_dtype", "float32", "array dtype", choices=("float32", "float64"),
                        param="dtype"),)

    def __init__(self, dtype="float32"):
        self.dtype = dtype

    def write(self, result, stage):
        name = f"{result.volume.name}_attr.npy"
        np.save(stage(name), np.asarray(result.attribution, self.dtype))
        return {"attribution_npy": name}
'''

NAMES = {"baselines": "scaled-input", "methods": "grad-x-input", "writers": "npy"}
TARGETS = {
    "baselines": "hospital_plugins:ScaledInput",
    "methods": "hospital_plugins:GradientTimesInput",
    "writers": "hospital_plugins:NpyWriter",
}


def _forget_plugins() -> None:
    baselines.BASELINES.unregister(NAMES["baselines"])
    attribution.METHODS.unregister(NAMES["methods"])
    io.writers.WRITERS.unregister(NAMES["writers"])
    sys.modules.pop("hospital_plugins", None)


@pytest.fixture
def plugins(tmp_path: Path) -> Iterator[ModuleType]:
    """The plug-in module, imported from a directory outside medattr."""
    where = tmp_path / "hospital"
    where.mkdir()
    (where / "hospital_plugins.py").write_text(PLUGIN)
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("hospital_plugins")
    finally:
        sys.path.remove(str(where))
        _forget_plugins()


@pytest.fixture
def scale_file(tmp_path: Path) -> Path:
    path = tmp_path / "weights.txt"
    path.write_text("0.25")
    return path


def test_plugins_are_listed_and_documented(plugins: ModuleType) -> None:
    assert "scaled-input" in baselines.names() and "grad-x-input" in attribution.names()
    assert "npy" in io.writer_names()
    help_text = " ".join(_help(["explain", "--help"]).split()).replace("- ", "-")
    assert "scaled-input (The input times a factor read from a weights file" in help_text
    assert "--scale-offset" in help_text and "--npy-dtype" in help_text
    assert "grad-x-input" in help_text


def _help(argv: list[str]) -> str:
    import contextlib
    import io as stdio

    buf = stdio.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(argv) == 0
    return buf.getvalue()


def test_python_api_runs_the_plugins(
    plugins: ModuleType, tiny_model: Path, study_nifti: Path, scale_file: Path, tmp_path: Path
) -> None:
    config = ExplainConfig(
        method="grad-x-input",
        baseline="scaled-input",
        scale_file=str(scale_file),
        scale_offset=0.25,
        formats=("npy", "nifti"),
        npy_dtype="float64",
    )
    manifest = Explainer(str(tiny_model), config).run(study_nifti, tmp_path / "out")
    arr = np.load(tmp_path / "out" / manifest["outputs"]["attribution_npy"])
    assert arr.dtype == np.float64 and arr.shape == (14, 18, 9)
    assert manifest["baseline"]["factor"] == pytest.approx(0.5)  # 0.25 from the file + 0.25
    assert manifest["method"]["implementation"] == "gradient_x_input"
    assert (
        manifest["config"]["scale_offset"] == 0.25 and manifest["config"]["npy_dtype"] == "float64"
    )
    assert (
        manifest["assets"]["scale_file"]["sha256"]
        and len(manifest["assets"]["scale_file"]["sha256"]) == 64
    )
    assert float(np.abs(arr).sum()) > 0


def test_plugin_settings_are_validated_once(plugins: ModuleType) -> None:
    with pytest.raises(ValueError, match="scale_offset must be a number"):
        ExplainConfig(baseline="scaled-input", scale_offset="lots")
    with pytest.raises(ValueError, match="npy_dtype must be one of"):
        ExplainConfig(formats="npy", npy_dtype="int8")


def test_cli_runs_the_plugins_and_refuses_unknown_names(
    plugins: ModuleType,
    tiny_model: Path,
    study_nifti: Path,
    scale_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "cli"
    argv = ["explain", str(study_nifti), "--model", str(tiny_model), "--out", str(out)]
    code = main(
        [
            *argv,
            "--method",
            "grad-x-input",
            "--baseline",
            "scaled-input",
            "--scale-file",
            str(scale_file),
            "--format",
            "npy,png",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "study_attr.npy",
        "study_montage.png",
        "study_panel.png",
    ]
    capsys.readouterr()
    assert main([*argv, "--baseline", "vacuum"]) == 2
    err = capsys.readouterr().err
    assert "baseline must be one of" in err and "scaled-input" in err and "blur" in err
    assert main([*argv, "--format", "nifti,tiff"]) == 2
    assert "unknown output format(s) tiff; choose from" in capsys.readouterr().err


def test_cohort_runner_runs_the_plugins_and_resumes_on_new_weights(
    plugins: ModuleType, tiny_model: Path, study_nifti: Path, scale_file: Path, tmp_path: Path
) -> None:
    entries = load_cohort([str(study_nifti)], base_dir=tmp_path)
    config = ExplainConfig(
        method="grad-x-input",
        baseline="scaled-input",
        scale_file=str(scale_file),
        formats=("npy",),
        device="cpu",
    )
    out = tmp_path / "cohort"

    def run() -> dict[str, int]:
        return CohortRunner(Explainer(str(tiny_model), config), out)(entries).counts

    assert run()["done"] == 1
    assert run()["skipped"] == 1  # same settings and weights: complete, skipped
    moved = tmp_path / "elsewhere.txt"
    moved.write_text(scale_file.read_text())
    config.scale_file = str(moved)
    assert run()["skipped"] == 1  # the same weights under another path: still complete
    moved.write_text("0.75")
    assert run()["done"] == 1  # new weights: the study is computed again
    manifest = json.loads((out / entries[0].study_id / "manifest.json").read_text())
    assert manifest["baseline"]["factor"] == pytest.approx(0.75)


def test_installed_plugins_reach_the_command_line_through_entry_points(
    tiny_model: Path, study_nifti: Path, scale_file: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hospital_plugins.py").write_text(PLUGIN)
    info = site / "hospital_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hospital-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "".join(f"[medattr.{group}]\n{NAMES[group]} = {TARGETS[group]}\n" for group in NAMES)
    )
    out = tmp_path / "ep"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "medattr",
        "explain",
        str(study_nifti),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--method",
        "grad-x-input",
        "--baseline",
        "scaled-input",
        "--scale-file",
        str(scale_file),
        "--format",
        "npy",
        "--device",
        "cpu",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"] == {"attribution_npy": "study_attr.npy"}
    assert manifest["baseline"]["factor"] == pytest.approx(0.25)
    assert np.load(out / "study_attr.npy").shape == (14, 18, 9)


@pytest.fixture
def study_nifti(tmp_path: Path) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    data = rng.normal(40, 60, (14, 18, 9)).astype(np.float32)
    data[5:9, 6:10, 3:6] += 150
    path = tmp_path / "study.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 4.0, 1.0])), str(path))
    return path
