"""SeriesExplainer: per-series DICOM outputs in the source study, naming, errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.uid import generate_uid

from medattr.deploy import DEFAULT_FORMATS, ExplainedSeries, SeriesExplainer, resolve_device
from medattr.errors import InputError, ModelError


def _explainer(model: Path, out: Path, **kw: object) -> SeriesExplainer:
    return SeriesExplainer(model, out, n_steps=4, device="cpu", **kw)  # type: ignore[arg-type]


def _restamp(files: list[Path], dest: Path) -> list[Path]:
    """Copies of a series as another series of the same study (new series/instance UIDs)."""
    dest.mkdir()
    series_uid = generate_uid()
    out = []
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(dest / f.name)
        out.append(dest / f.name)
    return out


def test_outputs_are_new_series_of_the_source_study(
    kit: SimpleNamespace, tiny_model: Path, tmp_path: Path
) -> None:
    files = kit.copy_ct5n(tmp_path / "in")
    before = kit.tree_digest(tmp_path / "in")
    source = kit.read_all(files)
    results = _explainer(tiny_model, tmp_path / "out")(kit.selection([("CT", source)]))
    (res,) = results
    assert isinstance(res, ExplainedSeries) and res.error is None
    assert res.output_dir == tmp_path / "out" / "CT_series5"
    manifest = json.loads((res.output_dir / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(res.manifest))
    assert manifest["selection"]["series_instance_uid"] == source[0].SeriesInstanceUID
    assert manifest["selection"]["n_instances"] == len(files)
    assert manifest["config"]["formats"] == list(DEFAULT_FORMATS)
    written = [pydicom.dcmread(p) for p in res.dicom_files]
    assert written and all(p.is_file() for p in res.dicom_files)
    assert {d.StudyInstanceUID for d in written} == {source[0].StudyInstanceUID}
    assert {d.FrameOfReferenceUID for d in written} == {source[0].FrameOfReferenceUID}
    new_series = {d.SeriesInstanceUID for d in written}
    # RGB overlay, the two Parametric Maps (for and against the target), SEG
    assert len(new_series) == 4 and source[0].SeriesInstanceUID not in new_series
    kinds = " ".join(sorted({d.SOPClassUID.name for d in written}))
    assert "Secondary Capture" in kinds and "Parametric Map" in kinds and "Segmentation" in kinds
    assert kit.tree_digest(tmp_path / "in") == before


def test_series_with_the_same_name_get_their_own_folders(
    kit: SimpleNamespace, tiny_model: Path, tmp_path: Path
) -> None:
    files = kit.copy_ct5n(tmp_path / "a")
    twin = _restamp(files, tmp_path / "b")
    explainer = _explainer(tiny_model, tmp_path / "out", formats=("dicom-pm",))
    results = explainer(kit.selection([("one", kit.read_all(files)), ("two", kit.read_all(twin))]))
    dirs = [r.output_dir for r in results]
    assert dirs[0] != dirs[1] and all(d is not None and d.is_dir() for d in dirs)
    assert dirs[0].name == "CT_series5" and dirs[1].name.startswith("CT_series5_")
    uids = [
        json.loads((d / "manifest.json").read_text())["selection"]["series_instance_uid"]
        for d in dirs
        if d is not None
    ]
    assert uids == [r.series_instance_uid for r in results]


def test_an_unreadable_series_stops_the_run_or_is_skipped(
    kit: SimpleNamespace, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = kit.read_all(kit.copy_ct5n(tmp_path / "good"))
    gap = _restamp(kit.copy_ct5n(tmp_path / "src")[:], tmp_path / "gap")
    gap[2].unlink()  # a missing middle slice: a gap medattr refuses
    broken = kit.read_all(gap[:2] + gap[3:])
    chosen = kit.selection([("broken", broken), ("good", good)])

    with pytest.raises(InputError, match="gap"):
        _explainer(tiny_model, tmp_path / "strict")(chosen)
    assert not (tmp_path / "strict").exists()

    caplog.set_level(logging.WARNING, logger="medattr.deploy")
    results = _explainer(tiny_model, tmp_path / "lenient", on_error="skip")(chosen)
    assert [r.error is None for r in results] == [False, True]
    assert "gap" in (results[0].error or "") and results[0].output_dir is None
    assert results[0].dicom_files == []
    assert [p.name for p in (tmp_path / "lenient").iterdir()] == ["CT_series5"]
    assert "skipped" in caplog.text and "Doe^Peter" not in caplog.text + str(results[0].error)


def test_nothing_selected_is_an_error_unless_allowed(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="chose no series"):
        _explainer(tiny_model, tmp_path / "out")([])
    assert _explainer(tiny_model, tmp_path / "out", require_series=False)([]) == []
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"on_error": "ignore"}, "on_error must be one of raise, skip"),
        ({"options": {"sigma": 2}}, "unknown option"),
        ({"options": {"method": "ig"}}, "not inside options"),
        ({"method": "lime"}, "method must be one of"),
        ({"formats": "dicom-pm,tiff"}, "unknown output format"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(
    tiny_model: Path, tmp_path: Path, kw: dict[str, object], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _explainer(tiny_model, tmp_path, **kw)


def test_a_bad_model_is_refused_when_the_explainer_is_built(tmp_path: Path) -> None:
    not_a_model = tmp_path / "model.ts"
    not_a_model.write_text("weights")
    with pytest.raises(ModelError, match="not a TorchScript file") as err:
        _explainer(not_a_model, tmp_path / "out")
    assert str(not_a_model) in str(err.value)


def test_options_reach_the_configuration(tiny_model: Path, tmp_path: Path) -> None:
    ex = _explainer(
        tiny_model, tmp_path, formats="dicom-seg, nifti", options={"seg_top_percent": 5.0}
    )
    assert ex.config.formats == ("dicom-seg", "nifti")
    assert ex.config.seg_top_percent == 5.0 and ex.config.n_steps == 4


def test_auto_device_follows_cuda_availability() -> None:
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda:1") == "cuda:1"
