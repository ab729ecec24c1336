"""Training the shipped models (classifiers and the healthy-only VAE) reproducibly on CPU or GPU."""

from medattr.training.classifier import (
    ClassifierTrainingConfig,
    evaluate_classifier,
    train_classifier,
)
from medattr.training.data import render_split

__all__ = ["ClassifierTrainingConfig", "evaluate_classifier", "render_split", "train_classifier"]
