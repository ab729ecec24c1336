"""The reliability suite's harness: run medattr as a user would on a bad input or a fault, then
check the five promises every case makes.

1. the exit status is the one for who can fix the problem (0 ok, 2 input / options / model /
   environment, 3 some cohort studies failed, 1 internal error);
2. the message names the problem (and the file or option);
3. on failure nothing is written (the output directory is not created, or left as it was);
4. the inputs are byte-identical afterwards;
5. no planted patient identifier (the test series' name, ID and birth date, also planted in
   NIfTI headers) appears in stdout, stderr, the log file, the manifest or the cohort summaries,
   on success and on failure.

Each case is marked ``@pytest.mark.reliability(group, title, expect)``; what it observed is
recorded, and ``MEDATTR_RELIABILITY_TABLE=docs/reliability.md pytest tests/reliability``
writes the table of cases (case, expected, observed) from the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.io.conftest import PATIENT, SeriesSpec, write_series

REPO = Path(__file__).resolve().parents[2]

IDENTIFIERS = (
    PATIENT["PatientName"],
    PATIENT["PatientName"].replace("^", " "),
    PATIENT["PatientID"],
    PATIENT["PatientBirthDate"],
)
"""The planted identifiers: none may leave the process in a message, log, manifest or summary."""

HEADER_TEXT = f"{PATIENT['PatientName']} {PATIENT['PatientID']} {PATIENT['PatientBirthDate']}"
"""Planted in NIfTI headers (descrip, aux_file), as converters sometimes copy them there."""

TEXT_SUFFIXES = (".json", ".csv", ".log", ".txt", ".md")

_RESULTS: list[dict[str, Any]] = []


# --------------------------------------------------------------------------- data
def write_nifti_study(
    path: Path,
    data: np.ndarray | None = None,
    affine: np.ndarray | None = None,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] = (12, 12, 10),
) -> Path:
    """A small study in HU-like units with the planted identifiers in its header."""
    if data is None:
        rng = np.random.default_rng(seed)
        data = rng.uniform(-200, 300, shape).astype(np.float32)
        data[4:8, 4:8, 3:6] += 150
    img = nib.Nifti1Image(data, np.diag([9.0, 9.0, 10.0, 1.0]) if affine is None else affine)
    img.header["descrip"] = HEADER_TEXT.encode()
    img.header["aux_file"] = PATIENT["PatientID"].encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


SMALL_SERIES = SeriesSpec(rows=20, cols=24, n=8)


@pytest.fixture(scope="session")
def series_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small axial CT series carrying the planted identifiers (copied per test)."""
    d = tmp_path_factory.mktemp("series") / "CT"
    write_series(d, SMALL_SERIES)
    return d


@pytest.fixture
def series(series_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the small series (tests may damage it)."""
    dest = tmp_path / "inputs" / "CT"
    shutil.copytree(series_template, dest)
    return dest


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return write_nifti_study(tmp_path / "inputs" / "study.nii.gz")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run much faster single-threaded on a shared, busy CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _fresh_identifier_memory() -> Iterator[None]:
    """Each case starts with no identifiers remembered from earlier cases' DICOM reads."""
    from medattr.phi import forget_identifiers

    forget_identifiers()
    yield
    forget_identifiers()


# --------------------------------------------------------------------------- outcomes
@dataclass
class Outcome:
    """What one run of medattr did."""

    code: int
    stdout: str
    stderr: str
    out: Path | None
    log: str = ""
    seconds: float = 0.0

    @property
    def text(self) -> str:
        return self.stdout + self.stderr + self.log

    def error_line(self) -> str:
        """The line that reports the failure (else the last line of stderr)."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        for ln in lines:
            if "error" in ln.lower():
                return ln
        return lines[-1] if lines else ""

    def manifest(self) -> dict[str, Any]:
        assert self.out is not None
        return json.loads((self.out / "manifest.json").read_text())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(paths: Iterable[Path]) -> dict[str, tuple[int, str]]:
    """Size and SHA-256 of every file under ``paths``."""
    out: dict[str, tuple[int, str]] = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            out[str(f)] = (f.stat().st_size, _digest(f))
    return out


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


class Case:
    """One reliability case: runs medattr and checks the promises, recording what it saw."""

    def __init__(
        self, request: pytest.FixtureRequest, tmp_path: Path, basetemp: Path, capsys: Any
    ) -> None:
        self.request = request
        self.tmp = tmp_path
        self.basetemp = basetemp
        self.capsys = capsys
        self.inputs: list[Path] = []
        self._before: dict[str, tuple[int, str]] = {}
        self.observed = ""
        self.calls: dict[str, int] = {"baseline": 0, "attribution": 0}
        self.log_path = tmp_path / "logs" / "medattr.log"
        marker = request.node.get_closest_marker("reliability")
        if marker is None:
            raise pytest.UsageError(f"{request.node.nodeid} needs @pytest.mark.reliability")
        self.group, self.title, self.expect = marker.args[:3]

    # ------------------------------------------------------------------ setup
    def track(self, *paths: Path) -> None:
        """Remember the bytes of these inputs (files or directories)."""
        self.inputs.extend(paths)
        self._before = snapshot(self.inputs)

    def spy_on_work(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Count baselines made and attributions run (the expensive work)."""
        from medattr.attribution import PathAttribution
        from medattr.explain import Explainer

        make, explain = Explainer.make_baseline, PathAttribution.explain_study

        def counted_make(this: Any, *a: Any, **k: Any) -> Any:
            self.calls["baseline"] += 1
            return make(this, *a, **k)

        def counted_explain(this: Any, *a: Any, **k: Any) -> Any:
            self.calls["attribution"] += 1
            return explain(this, *a, **k)

        monkeypatch.setattr(Explainer, "make_baseline", counted_make)
        monkeypatch.setattr(PathAttribution, "explain_study", counted_explain)

    # ------------------------------------------------------------------ runs
    def cli(self, *argv: str | Path, out: Path | None = None, log: bool = True) -> Outcome:
        """``medattr ARGV`` in this process (``--log-file`` added when ``log``)."""
        from medattr.cli import main

        args = [str(a) for a in argv]
        if log:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            args = ["--log-file", str(self.log_path), *args]
        self.capsys.readouterr()
        t = time.perf_counter()
        code = main(args)
        seconds = time.perf_counter() - t
        captured = self.capsys.readouterr()
        text = self.log_path.read_text() if log and self.log_path.exists() else ""
        return Outcome(code, captured.out, captured.err, out, text, seconds)

    def explain(self, source: Path, model: Path | str, out: Path, *extra: str) -> Outcome:
        """``medattr explain`` with the small, fast defaults of the suite."""
        argv = ["explain", source, "--model", model, "--out", out]
        argv += ["--steps", "4", "--device", "cpu", "--no-progress", "--format", "nifti"]
        return self.cli(*argv, *extra, out=out)

    # ------------------------------------------------------------------ promises
    def fails(
        self,
        outcome: Outcome,
        code: int,
        *says: str,
        before: list[str] | None = None,
        work: bool = False,
    ) -> None:
        """A failure: ``code``, a message with every fragment of ``says`` (case-insensitive),
        nothing written into ``outcome.out`` (absent, or its listing ``before`` unchanged),
        inputs unchanged, no identifiers; ``work=False``: no baseline or attribution ran."""
        self.observed = f"exit {outcome.code}: {self._shown(outcome.error_line())}"
        assert outcome.code == code, outcome.stderr
        message = outcome.stderr.lower()
        for fragment in says:
            assert fragment.lower() in message, f"{fragment!r} not in: {outcome.stderr}"
        if outcome.out is not None:
            if before is None:
                assert not outcome.out.exists(), _listing(outcome.out)
            else:
                assert _listing(outcome.out) == before
            parent = outcome.out.parent
            if parent.is_dir():
                assert not [n for n in _listing(parent) if n.startswith(".medattr")], parent
        if not work:
            assert self.calls == {"baseline": 0, "attribution": 0}, self.calls
        self.unchanged()
        self.no_identifiers(outcome)

    def succeeds(self, outcome: Outcome, code: int = 0, note: str = "") -> None:
        """A success: ``code``, inputs unchanged, no identifiers anywhere."""
        self.observed = f"exit {outcome.code}" + (f"; {note}" if note else "")
        assert outcome.code == code, outcome.stderr
        self.unchanged()
        self.no_identifiers(outcome)

    def unchanged(self) -> None:
        assert snapshot(self.inputs) == self._before, "an input was modified"

    def no_identifiers(self, outcome: Outcome, *extra_dirs: Path) -> None:
        texts = {"stdout": outcome.stdout, "stderr": outcome.stderr, "log": outcome.log}
        for d in [outcome.out, *extra_dirs]:
            if d is None or not d.exists():
                continue
            for p in sorted(d.rglob("*")):
                texts[f"name {p.relative_to(d)}"] = p.name
                if p.is_file() and p.name.endswith(TEXT_SUFFIXES):
                    texts[str(p.relative_to(d))] = p.read_text(errors="replace")
        for where, text in texts.items():
            for value in IDENTIFIERS:
                assert value.lower() not in text.lower(), f"{value!r} leaked into {where}"

    def _shown(self, line: str) -> str:
        line = line.replace(str(self.tmp), "<tmp>").replace(str(self.basetemp), "<tmp>")
        line = line.replace(str(REPO), "<repo>")
        line = re.sub(r"^medattr: ", "", line.strip())
        return line if len(line) <= 200 else line[:197] + "..."


@pytest.fixture
def case(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: Any,
) -> Case:
    c = Case(request, tmp_path, tmp_path_factory.getbasetemp(), capsys)
    request.node.reliability_case = c
    return c


# --------------------------------------------------------------------------- models
def _export(net: torch.nn.Module, path: Path) -> Path:
    from medattr.models import export_torchscript
    from tests.conftest import tiny_spec

    export_torchscript(net, tiny_spec(), path)
    return path


class Raising(torch.nn.Module):
    """Raises inside TorchScript: ``torch.jit.Error``, which is not a RuntimeError."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 0:
            raise ValueError("this model refuses every input")
        return x.flatten(1)[:, :2]


class NaNOutput(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([m, m * float("nan")], 1)


class NaNGradientOnThePath(torch.nn.Module):
    """Finite outputs everywhere; the gradient is NaN where the mean intensity is below 0.3
    (the derivative of sqrt at 0 is 0/0 there): fine at the input, NaN near a zero baseline."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).mean(1, keepdim=True)
        trap = 0.0 * torch.sqrt(torch.abs(s - 0.3) * (s > 0.3).float())
        return torch.cat([-s, s + trap], 1)


class WrongShape(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([m, m, m], 1)  # three logits for a two-class spec


class BatchOfOne(torch.nn.Module):
    """Works on one input only (a hard-coded batch size, as traced models sometimes have)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.reshape(1, -1).mean(1, keepdim=True)
        return torch.cat([-m, m], 1)


class TupleOutput(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.flatten(1).mean(1, keepdim=True)
        return m, -m


@pytest.fixture(scope="session")
def bad_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TorchScript files of misbehaving models, all with the tiny two-class spec."""
    d = tmp_path_factory.mktemp("bad_models")
    nets: dict[str, Callable[[], torch.nn.Module]] = {
        "raising": Raising,
        "nan_output": NaNOutput,
        "nan_gradient": NaNGradientOnThePath,
        "wrong_shape": WrongShape,
        "batch_of_one": BatchOfOne,
        "tuple_output": TupleOutput,
    }
    return {name: _export(make(), d / f"{name}.ts") for name, make in nets.items()}


# --------------------------------------------------------------------------- subprocesses
def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore::DeprecationWarning"
    )
    return env


MEDATTR = [sys.executable, "-m", "medattr"]


# --------------------------------------------------------------------------- the table
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> None:
    if call.when != "call":
        return
    c = getattr(item, "reliability_case", None)
    if c is None:
        return
    _RESULTS.append(
        {
            "id": item.name,
            "module": Path(str(item.fspath)).stem,
            "group": c.group,
            "title": c.title,
            "expect": c.expect,
            "observed": c.observed or "(no run recorded)",
            "passed": call.excinfo is None,
        }
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("MEDATTR_RELIABILITY_TABLE")
    if not target or not _RESULTS:
        return
    from tests.reliability.table import write_table

    write_table(Path(target), _RESULTS)
