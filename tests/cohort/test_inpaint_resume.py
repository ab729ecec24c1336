"""A resumed cohort explained with the ``inpaint`` baseline is computed again when the
inpainter's weights change (its file is an asset: fingerprinted by content, not by name)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from medattr.cohort import CohortRunner, load_cohort
from medattr.explain import ExplainConfig, Explainer
from medattr.models import builtin_model_path, file_sha256
from medattr.phi import forget_identifiers, remember


def _copy_inpainter(dest: Path, nudge: float = 0.0) -> Path:
    """The shipped inpainter re-saved with its metadata, one bias nudged by ``nudge``."""
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(builtin_model_path("mni-inpainter")), _extra_files=extra)
    if nudge:
        with torch.no_grad():
            bias = next(p for n, p in module.named_parameters() if n.endswith("bias"))
            bias.add_(nudge)
    torch.jit.save(module, str(dest), _extra_files=extra)
    return dest


@pytest.fixture(autouse=True)
def _no_identifiers() -> Iterator[None]:
    forget_identifiers()
    yield
    forget_identifiers()


def _demo_cohort(tmp_path: Path, **settings: str) -> tuple[Callable[[], dict[str, int]], Path]:
    """A one-study cohort (the demo brain) explained with ``inpaint`` and ``settings``: a
    function that runs (or resumes) it and returns the counts, and the study's directory."""
    from medattr.synthetic.demo import demo_study_path

    entries = load_cohort([str(demo_study_path("mni"))], base_dir=tmp_path)
    config = ExplainConfig(
        method="ig",
        baseline="inpaint",
        n_steps=2,
        formats=("nifti",),
        device="cpu",
        progress=False,
        **settings,
    )
    out = tmp_path / "cohort"

    def run() -> dict[str, int]:
        summary = CohortRunner(Explainer("builtin:mni", config), out)(entries)
        assert not summary.counts.get("failed"), summary.studies
        return summary.counts

    return run, out / entries[0].study_id


def test_cohort_resumes_until_the_inpainter_changes(tmp_path: Path) -> None:
    weights = _copy_inpainter(tmp_path / "inpainter.ts")
    run, study = _demo_cohort(tmp_path, inpainter=str(weights))
    assert run()["done"] == 1
    # a remembered patient ID that happens to occur in the record's fingerprint must not
    # corrupt it (the record would never match again)
    record = json.loads((study / "cohort_record.json").read_text())
    remember([record["fingerprint"][20:24]])
    assert run()["skipped"] == 1  # same settings, same weights: complete
    first = file_sha256(weights)
    _copy_inpainter(weights, nudge=1e-3)  # same path, new contents
    assert file_sha256(weights) != first
    assert run()["done"] == 1  # new weights: computed again
    manifest = json.loads((study / "manifest.json").read_text())
    assert manifest["assets"]["inpainter"]["sha256"] == file_sha256(weights)
    assert manifest["baseline"]["inpainter"]["sha256"] == file_sha256(weights)


def test_cohort_resumes_until_the_anomaly_maps_change(tmp_path: Path) -> None:
    """The normative maps behind the anomaly mask are an asset too (``--anomaly-model``)."""
    from medattr.generative.normative import load_normative

    maps = load_normative("builtin:mni-normative")
    path = maps.save(tmp_path / "maps.npz")
    run, study = _demo_cohort(tmp_path, anomaly_model=str(path))
    assert run()["done"] == 1
    assert run()["skipped"] == 1
    maps.sd = maps.sd * 1.01  # same path, new contents
    maps.save(path)
    assert run()["done"] == 1
    manifest = json.loads((study / "manifest.json").read_text())
    assert manifest["assets"]["anomaly_model"]["sha256"] == file_sha256(path)
    assert manifest["baseline"]["anomaly_mask"]["score"]["sha256"] == file_sha256(path)
