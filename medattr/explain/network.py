"""The callable an explanation differentiates: the model as loaded, one of its outputs, applied
whole or by sliding windows; and what its own recorded metrics say about it."""

from __future__ import annotations

import os

import torch

from medattr.explain.config import ExplainConfig
from medattr.models import LoadedModel, ModelSpec, load_model
from medattr.models.contract import SelectOutput
from medattr.models.inferers import SlidingWindowModel, check_inferer

__all__ = ["MIN_USEFUL_AUC", "as_loaded", "network_for", "quality_warning"]

MIN_USEFUL_AUC = 0.7
"""Below this recorded test AUC a model's attributions explain little more than noise."""


def as_loaded(
    model: LoadedModel | str | os.PathLike[str] | torch.nn.Module,
    device: str,
    spec: ModelSpec | str | os.PathLike[str] | None,
) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, torch.nn.Module):
        from medattr.models.loading import from_module

        return from_module(model, device, spec)
    return load_model(model, device, spec)


def network_for(model: LoadedModel, config: ExplainConfig) -> torch.nn.Module:
    """The callable explained: the model, one of its outputs (``output``), applied whole or by
    sliding windows (the configuration's, else the model's own inferer)."""
    net: torch.nn.Module = model.module
    key = config.output if config.output is not None else model.spec.output
    if key is not None:
        net = SelectOutput(net, key)
    inferer = model.spec.inferer
    if config.sliding_window:
        roi = list(config.sliding_window)
        inferer = check_inferer(
            {
                "roi_size": roi * 3 if len(roi) == 1 else roi,
                "sw_batch_size": config.sw_batch_size,
                "overlap": config.sw_overlap,
                "mode": config.sw_mode,
            }
        )
    if inferer is not None:
        settings = {k: v for k, v in inferer.items() if k != "type"}
        net = SlidingWindowModel(net, **settings)
    return net


def quality_warning(spec: ModelSpec) -> str | None:
    """A warning when the model's own recorded metrics say it barely beats chance."""
    auc = (spec.extra or {}).get("metrics", {}).get("test_auc")
    if isinstance(auc, int | float) and auc < MIN_USEFUL_AUC:
        return (
            f"this model's recorded test AUC is {auc:.2f} (chance is 0.50): its attributions "
            "show how the pipeline works, not where a lesion is"
        )
    return None
