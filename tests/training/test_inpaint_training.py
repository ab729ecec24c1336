"""train_inpainter's checkpoint, resume, time limit and export_checkpoint on a tiny grid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from medattr.generative import load_inpainter
from medattr.training.inpaint import InpainterTrainingConfig, export_checkpoint, train_inpainter

TINY = InpainterTrainingConfig(
    kind="phantom",
    spatial_size=(16, 16, 16),
    pixdim=(12.0, 12.0, 12.0),
    intensity={"a_min": -200.0, "a_max": 300.0},
    channels=(4, 8, 16, 16),
    n_train=4,
    n_val=2,
    n_test=2,
    n_calibration=2,
    crop=8,
    batch_size=2,
    steps=2,
    val_every=1,
    workers=1,
    anomaly={"block_mm": [48.0], "shifts": 1},
)


def test_a_stopped_run_resumes_and_its_checkpoint_exports(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt.pt"
    first = train_inpainter(TINY, tmp_path / "a.ts", checkpoint=ckpt, cache_dir=tmp_path)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["step"] == first["best_step"] and saved["config"]["steps"] == 2
    assert [h["step"] for h in saved["history"]][: saved["step"]] == list(
        range(1, saved["step"] + 1)
    )

    # resumed with a longer schedule and no time left: one more step, validated, then stop
    longer = replace(TINY, steps=10)
    resumed = train_inpainter(
        longer, tmp_path / "b.ts", resume=ckpt, time_limit_s=0.0, cache_dir=tmp_path
    )
    steps = [h.get("step") for h in resumed["history"]]
    assert {"resumed_at_step": saved["step"]} in resumed["history"]
    assert steps[-1] == saved["step"] + 1 and resumed["best_step"] in (saved["step"], steps[-1])

    # a checkpoint exported as train_inpainter exports: calibrated, exact outside the mask
    metrics = export_checkpoint(ckpt, tmp_path / "c.ts", cache_dir=tmp_path)
    assert metrics["best_step"] == saved["step"] and metrics["stopped_early"] == (saved["step"] < 2)
    inp = load_inpainter(tmp_path / "c.ts")
    assert inp.calibration is not None and inp.calibration["n_healthy"] == 2
    assert inp.spec.extra["metrics"]["test_l1"] == metrics["test_l1"]
    x, m = torch.rand(1, 1, 16, 16, 16), torch.zeros(1, 1, 16, 16, 16)
    m[..., 4:8, 4:8, 4:8] = 1
    assert torch.equal(inp.infill(x, m)[m == 0], x[m == 0])
