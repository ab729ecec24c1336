"""Tests of the dataset planner and writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medattr.errors import InputError
from medattr.io.nifti import read_nifti
from medattr.synthetic import SPLITS, generate_dataset, make_study, plan_dataset
from medattr.synthetic import datasets as ds_module

GRID = {"shape": (16, 16, 16), "spacing": 12.0}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_plan_splits_are_disjoint_balanced_and_seeded():
    plan = plan_dataset(n_train=10, n_val=4, n_test=5, seed=3, lesion_fraction=0.4)
    seeds = [s for name in SPLITS for s, _ in plan[name]]
    assert len(seeds) == len(set(seeds)) == 19
    assert [len(plan[n]) for n in SPLITS] == [10, 4, 5]
    assert [sum(lab for _, lab in plan[n]) for n in SPLITS] == [4, 2, 2]
    assert plan == plan_dataset(n_train=10, n_val=4, n_test=5, seed=3, lesion_fraction=0.4)
    other = plan_dataset(n_train=10, n_val=4, n_test=5, seed=4, lesion_fraction=0.4)
    assert not set(seeds) & {s for n in SPLITS for s, _ in other[n]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_train": -1}, "training"),
        ({"n_val": 1.5}, "validation"),
        ({"n_train": 0, "n_val": 0, "n_test": 0}, "at least 1"),
        ({"lesion_fraction": 1.5}, "lesion_fraction"),
        ({"seed": -1}, "seed"),
    ],
)
def test_plan_rejects_bad_arguments(kwargs, match):
    args = {"n_train": 2, "n_val": 1, "n_test": 1, **kwargs}
    with pytest.raises(InputError, match=match):
        plan_dataset(**args)


def test_written_dataset_matches_generator_and_datalist(tmp_path):
    out = tmp_path / "bench"
    datalist_path = generate_dataset(
        out, kind="phantom", n_train=3, n_val=2, n_test=2, seed=1, **GRID
    )
    assert datalist_path == out / "datalist.json"
    datalist = json.loads(datalist_path.read_text())
    plan = plan_dataset(n_train=3, n_val=2, n_test=2, seed=1)
    assert datalist["kind"] == "phantom" and datalist["numTraining"] == 3
    for name in SPLITS:
        entries = datalist[name]
        assert [(e["seed"], e["label"]) for e in entries] == plan[name]
        for e in entries:
            for key in ("image", "healthy", "mask", "region"):
                assert not Path(e[key]).is_absolute()
                assert (out / e[key]).is_file()
            study = make_study("phantom", e["seed"], lesion=bool(e["label"]), **GRID)
            img = read_nifti(out / e["image"])
            np.testing.assert_array_equal(img.array, study.image.array)
            np.testing.assert_allclose(img.affine, study.image.affine, atol=1e-5)
            mask = read_nifti(out / e["mask"]).array
            healthy = read_nifti(out / e["healthy"]).array
            assert (mask.sum() > 0) == bool(e["label"])
            assert not np.any((img.array - healthy)[mask == 0])
            assert (e["lesion"] is None) == (e["label"] == 0)
    # no staging leftovers
    assert sorted(p.name for p in out.iterdir()) == sorted(["datalist.json", *SPLITS])


def test_rerun_gives_identical_bytes(tmp_path):
    a = generate_dataset(tmp_path / "a", kind="phantom", n_train=2, n_val=1, n_test=1, **GRID)
    b = generate_dataset(tmp_path / "b", kind="phantom", n_train=2, n_val=1, n_test=1, **GRID)
    fa, fb = _files(a.parent), _files(b.parent)
    assert fa.keys() == fb.keys() and len(fa) == 1 + 4 * 4
    assert fa == fb


def test_monai_reads_the_datalist(tmp_path):
    from monai.data import load_decathlon_datalist

    path = generate_dataset(tmp_path / "d", kind="phantom", n_train=2, n_val=1, n_test=0, **GRID)
    items = load_decathlon_datalist(path, is_segmentation=False, data_list_key="training")
    assert len(items) == 2
    for item in items:
        assert Path(item["image"]).is_file() and Path(item["mask"]).is_file()
        assert item["label"] in (0, 1)


def test_mni_dataset_is_written(tmp_path):
    pytest.importorskip("nilearn")
    path = generate_dataset(
        tmp_path / "m", kind="mni", n_train=1, n_val=1, n_test=0, lesion_fraction=1.0
    )
    datalist = json.loads(path.read_text())
    assert datalist["units"].startswith("normalised")
    e = datalist["training"][0]
    assert e["label"] == 1
    img = read_nifti(path.parent / e["image"])
    assert img.spatial_shape == (64, 64, 64) and img.spacing == pytest.approx((3.0, 3.0, 3.0))


def test_existing_dataset_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "o"
    generate_dataset(out, kind="phantom", n_train=1, n_val=0, n_test=1, seed=0, **GRID)
    before = _files(out)
    with pytest.raises(InputError, match="already holds a dataset"):
        generate_dataset(out, kind="phantom", n_train=1, n_val=0, n_test=1, seed=5, **GRID)
    assert _files(out) == before
    generate_dataset(
        out, kind="phantom", n_train=2, n_val=0, n_test=0, seed=5, overwrite=True, **GRID
    )
    datalist = json.loads((out / "datalist.json").read_text())
    assert datalist["seed"] == 5 and len(datalist["training"]) == 2
    assert not list((out / "test").iterdir())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    real = ds_module._write_study
    calls = []

    def flaky(*args):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(ds_module, "_write_study", flaky)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(out, kind="phantom", n_train=3, n_val=1, n_test=1, **GRID)
    assert not out.exists()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(keep, kind="phantom", n_train=3, n_val=1, n_test=1, **GRID)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]


def test_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="kind"):
        generate_dataset(tmp_path / "x", kind="ct", n_train=1, n_val=0, n_test=0)
    with pytest.raises(InputError, match="num_workers"):
        generate_dataset(
            tmp_path / "x", kind="phantom", n_train=1, n_val=0, n_test=0, num_workers=-1
        )
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        generate_dataset(f, kind="phantom", n_train=1, n_val=0, n_test=0)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_parallel_workers_write_the_same_files(tmp_path):
    a = generate_dataset(tmp_path / "a", kind="phantom", n_train=3, n_val=1, n_test=0, **GRID)
    b = generate_dataset(
        tmp_path / "b", kind="phantom", n_train=3, n_val=1, n_test=0, num_workers=2, **GRID
    )
    assert _files(a.parent) == _files(b.parent)
