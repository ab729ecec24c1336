"""The shipped weights: present, hashing as recorded, loadable, and measuring what they claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medattr.models import BUILTIN_MODELS, builtin_model_path, file_sha256, load_model
from medattr.preprocess import Preprocessor
from medattr.training.classifier import ClassifierTrainingConfig, _roc_auc

ASSETS = Path(builtin_model_path("phantom")).parent
CLASSIFIERS = [n for n in ("phantom", "mni") if n in BUILTIN_MODELS]


def _sums() -> dict[str, str]:
    rows = (ASSETS / "SHA256SUMS").read_text().split("\n")
    pairs = (r.split(maxsplit=1) for r in rows if r.strip())
    return {name.strip(): digest for digest, name in pairs}


def _training_config(name: str) -> ClassifierTrainingConfig:
    recorded = load_model(f"builtin:{name}").spec.extra["training"]
    return ClassifierTrainingConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()}
    )


def _study(cfg: ClassifierTrainingConfig, seed: int, lesion: bool, **options: Any) -> Any:
    """A study of the classifier's generator, with its training render options (``options``
    override them)."""
    options = {**cfg.render_options, **options}
    if cfg.kind == "phantom":
        from medattr.synthetic.phantoms import make_phantom

        return make_phantom(
            seed, lesion=lesion, shape=cfg.spatial_size, spacing=cfg.pixdim, **options
        )
    from medattr.synthetic.mni import make_mni_study

    return make_mni_study(
        seed, lesion=lesion, shape=cfg.spatial_size, spacing=cfg.pixdim, **options
    )


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_shipped_model_matches_its_recorded_sha256(name: str) -> None:
    path = builtin_model_path(name)
    assert path.exists(), f"{path} is missing"
    assert _sums()[path.name] == file_sha256(path)
    assert path.stat().st_size < 10 * 2**20


def test_all_shipped_weights_together_are_small() -> None:
    assert sum(builtin_model_path(n).stat().st_size for n in BUILTIN_MODELS) < 20 * 2**20


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_loads_with_its_contract(name: str) -> None:
    model = load_model(f"builtin:{name}")
    spec = model.spec
    assert spec.task == "classification" and spec.class_names == ["healthy", "lesion"]
    assert spec.pixdim is not None and spec.spatial_size is not None
    x = torch.zeros(1, 1, *spec.spatial_size)
    with torch.no_grad():
        assert model.module(x).shape == (1, 2)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_recorded_test_auc_is_reproduced_on_its_test_split(name: str) -> None:
    """Re-render the first studies of the recorded test split and measure the AUC again."""
    model = load_model(f"builtin:{name}")
    cfg = _training_config(name)
    seeds = cfg.split_seeds()["test"][:60]
    labels = np.array([i % 2 == 1 for i in range(len(seeds))])
    pre = Preprocessor(model.spec)
    scores = []
    for seed, lesion in zip(seeds, labels, strict=True):
        x = pre(_study(cfg, seed, bool(lesion)).image).image
        with torch.no_grad():
            scores.append(float(torch.softmax(model.module(x), 1)[0, 1]))
    measured = _roc_auc(np.array(scores), labels)
    recorded = model.spec.extra["metrics"]["test_auc"]
    assert recorded >= 0.8, recorded
    # 60 of the test studies: the AUC's sampling error is about 0.05 (1 sd)
    assert abs(measured - recorded) < 0.15, (measured, recorded)
    assert measured >= 0.7, measured


def test_the_phantom_training_config_in_the_repo_is_the_one_the_weights_record() -> None:
    """`python -m monai.bundle run --config_file configs/train_phantom_classifier.json`
    retrains the shipped classifier: its settings must be the ones stored in the weights."""
    from monai.bundle import ConfigParser

    from medattr.bundle import TrainingRun

    root = Path(__file__).resolve().parents[2]
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train_phantom_classifier.json"))
    trainer = parser.get_parsed_content("trainer")
    assert isinstance(trainer, TrainingRun) and trainer.task == "classifier"
    assert Path(trainer.reference or "") == builtin_model_path("phantom")
    # fields added after the weights were made default to the behaviour they were trained with
    assert trainer.config == _training_config("phantom")
    assert trainer.config.jitter == "independent" and trainer.config.lr_schedule == "onecycle"


# ------------------------------------------------------------------ the brain VAE


def _brain_lesion_cases(n: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(input, healthy twin, lesion mask) on the classifier's grid: classic lesions (the ones the
    VAE was measured on, and the benchmark's) on subjects of the classifier's test split, where
    the shipped classifier calls them diseased."""
    model = load_model("builtin:mni")
    cfg = _training_config("mni")
    pre = Preprocessor(model.spec)
    mask_pre = Preprocessor(model.spec, interpolation="nearest")
    cases = []
    for seed in cfg.split_seeds()["test"][1::2]:
        s = _study(cfg, seed, True, lesions="classic")
        x = pre(s.image).image
        with torch.no_grad():
            if float(torch.softmax(model.module(x), 1)[0, 1]) <= 0.5:
                continue
        m = mask_pre(s.mask).image  # the intensity window maps 1 to 1 for this [0, 1] contract
        cases.append((x, pre(s.healthy).image, m > 0.5))
        if len(cases) == n:
            break
    return cases


def test_vae_reconstruction_moves_lesions_toward_the_healthy_twin() -> None:
    from medattr.baselines.counterfactual import VAEReconstructionBaseline

    baseline = VAEReconstructionBaseline("builtin:mni-vae")
    closer = []
    for x, healthy, mask in _brain_lesion_cases(6):
        recon = baseline.generate(x).baselines
        before = (x - healthy).abs()[mask].mean()
        after = (recon - healthy).abs()[mask].mean()
        closer.append(bool(after < before))
    assert sum(closer) >= 5, closer


def test_guided_counterfactual_reaches_healthy_on_most_test_cases() -> None:
    from medattr.baselines import BaselineContext
    from medattr.baselines.counterfactual import VAEGuidedBaseline

    model = load_model("builtin:mni")
    baseline = VAEGuidedBaseline("builtin:mni-vae")
    reached = []
    for x, _, _ in _brain_lesion_cases(6):
        info = baseline.generate(x, BaselineContext(forward_func=model.module)).info
        reached += info["reached_healthy"]
    assert sum(reached) >= 4, reached
