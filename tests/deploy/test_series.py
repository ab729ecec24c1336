"""Selector output -> series inputs: files found, duplicates dropped, in-memory instances."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from medattr.deploy import SeriesInput, selected_series_inputs, series_files
from medattr.errors import InputError
from medattr.io import read_volume


def test_files_of_each_selected_series_are_found(kit: SimpleNamespace, tmp_path: Path) -> None:
    ct = kit.read_all(kit.copy_ct5n(tmp_path / "ct"))
    mr = kit.read_all(sorted(kit.write_mr_series(tmp_path / "mr").iterdir()))
    inputs = selected_series_inputs(kit.selection([("CT rule", ct), ("MR rule", mr)]))
    assert [s.selection_name for s in inputs] == ["CT rule", "MR rule"]
    assert [s.modality for s in inputs] == ["CT", "MR"]
    assert inputs[0].files == tuple(Path(d.filename) for d in ct)
    assert inputs[0].series_instance_uid == ct[0].SeriesInstanceUID
    assert inputs[1].study_instance_uid == mr[0].StudyInstanceUID
    assert inputs[1].datasets == () and inputs[1].n_instances == len(mr)


def test_a_series_chosen_by_two_rules_is_explained_once(
    kit: SimpleNamespace, tmp_path: Path
) -> None:
    ct = kit.read_all(kit.copy_ct5n(tmp_path / "ct"))
    inputs = selected_series_inputs(kit.selection([("first", ct), ("second", ct)]))
    assert [s.selection_name for s in inputs] == ["first"]


def test_in_memory_instances_are_written_for_reading_and_left_untouched(
    kit: SimpleNamespace, tmp_path: Path
) -> None:
    files = kit.copy_ct5n(tmp_path / "ct")
    datasets = kit.read_all(files)
    for ds in datasets:  # as if received over the network: no file behind them
        ds.filename = None
    before = [copy.deepcopy(ds) for ds in datasets]
    (series,) = selected_series_inputs(kit.selection([("net", datasets)]))
    assert series.files == () and len(series.datasets) == len(files)
    with series_files(series) as paths:
        assert len(paths) == len(files) and all(p.is_file() for p in paths)
        volume = read_volume(paths)
        temp = paths[0].parent
    assert not temp.exists()
    reference = read_volume(files)
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine, reference.affine)
    assert all(a == b for a, b in zip(datasets, before, strict=True))


def test_files_are_used_in_place(kit: SimpleNamespace, tmp_path: Path) -> None:
    files = kit.copy_ct5n(tmp_path / "ct")
    series = SeriesInput("s", "1.2.3", "1.2", "CT", files=tuple(files))
    with series_files(series) as paths:
        assert paths == files


@pytest.mark.parametrize(
    "bad",
    ["study list", 42, [object()], [SimpleNamespace(selected_series=[object()], study=None)]],
)
def test_objects_not_shaped_like_the_selector_output_are_refused(bad: object) -> None:
    with pytest.raises(InputError, match="DICOMSeriesSelectorOperator"):
        selected_series_inputs(bad)


def test_nothing_selected_is_an_empty_list() -> None:
    assert selected_series_inputs(None) == []
    assert selected_series_inputs([]) == []
