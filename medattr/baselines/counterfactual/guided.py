"""Classifier-guided local counterfactual: the anomaly mask grown until the classifier agrees.

The calibrated anomaly mask of :class:`~medattr.baselines.counterfactual.inpaint.
InpaintCounterfactualBaseline` stops on a criterion set on healthy studies (at most 5 % of them
keep a component), so a lesion fainter than that leaves the mask empty and ``x' = x``: no
attribution at all. This baseline uses the classifier to go further, in the spirit of FIDO
(Chang et al., ICLR 2019), which looks for the smallest region whose infill changes the
classifier's decision; here the search is a short sequence rather than an optimisation:

1. the calibrated mask, as ``inpaint`` makes it;
2. if the classifier calls the input diseased (``p(disease | x) > threshold``) and still calls
   the calibrated counterfactual diseased, the components that the same anomaly score has at a
   lower threshold (``guide_factor`` times the calibrated one) are added to the mask one at a
   time, strongest peak first, at most ``guide_components`` of them;
3. the first mask whose infilled counterfactual the classifier calls healthy is kept. If none
   does, the calibrated mask is kept and the baseline is flagged ``still_diseased``.

With ``guide_min_drop`` set (from settings, the level calibrated for the model: on for the
shipped brain classifier; 0 turns it off) the growth no longer needs the classifier to be
satisfied: a candidate component is kept when infilling it lowers the classifier's disease
log-odds by at least that much (relative to the mask so far), and dropped otherwise, so the
mask gathers exactly the components that carry the classifier's evidence, even when this
classifier cannot call any infill healthy (it calls a third of the true healthy twins
diseased). A mask grown that way is kept and flagged ``still_diseased`` if the classifier is
still not satisfied. The drop should be calibrated on healthy studies for each classifier
(``benchmarks/calibrate_guide_drop.py``): a level that healthy tissue's components rarely reach.

An input the classifier calls healthy keeps the calibrated mask, so a healthy study the
classifier gets right is treated exactly as by ``inpaint``. Because the classifier decides how
far the mask grows, this baseline is reported apart from the mask-only ones: its mask is no
longer independent of the model being explained. Every voxel outside the final mask (and its
feathered edge) is still exactly the input's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext, BaselineResult, BaselineSetup
from medattr.baselines._registry import register
from medattr.baselines.counterfactual._masking import DEFAULT_INPAINTER, paired_default
from medattr.baselines.counterfactual.inpaint import InpaintCounterfactualBaseline
from medattr.baselines.counterfactual.vae import _disease_probability
from medattr.errors import InputError
from medattr.registry import Setting

__all__ = [
    "GUIDE_COMPONENTS",
    "GUIDE_FACTOR",
    "GUIDE_MIN_DROP",
    "PAIRED_GUIDE_MIN_DROP",
    "GuidedInpaintBaseline",
    "paired_guide_min_drop",
]

log = logging.getLogger("medattr.baselines")

GUIDE_FACTOR = Setting(
    "guide_factor",
    0.5,
    "inpaint-guided: the candidate components are found at this fraction of the calibrated "
    "anomaly threshold",
    type=float,
    minimum=0.0,
    exclusive_minimum=True,
    maximum=1.0,
)
GUIDE_COMPONENTS = Setting(
    "guide_components",
    6,
    "inpaint-guided: at most this many candidate components are added, strongest first",
    type=int,
    minimum=1,
)
GUIDE_MIN_DROP = Setting(
    "guide_min_drop",
    None,
    "inpaint-guided: keep a candidate component when its infill lowers the disease log-odds by "
    "at least this much, even if the classifier never calls the infill healthy; 0 turns it off "
    "(grow only until the classifier calls the infill healthy); default: the level calibrated "
    "for the model (0.784 for builtin:mni), else off",
    type=float,
    minimum=0.0,
    optional=True,
)

PAIRED_GUIDE_MIN_DROP = {"medattr-mni-lesion-classifier": 0.7839}
"""``guide_min_drop`` by model name, calibrated on healthy studies only
(``benchmarks/calibrate_guide_drop.py``: the 95th percentile over 40 healthy brains of the largest
log-odds drop a candidate component's infill gives); a model may name its own in
``spec.extra["guide_min_drop"]``."""


def paired_guide_min_drop(setup: BaselineSetup) -> float | None:
    """The calibrated ``guide_min_drop`` for the model being explained (``None``: none known)."""
    value = paired_default(setup, "guide_min_drop", PAIRED_GUIDE_MIN_DROP)
    return None if value is None else float(value)


@register("inpaint-guided")
class GuidedInpaintBaseline(InpaintCounterfactualBaseline):
    """The ``inpaint`` counterfactual with its mask grown, component by component, until the
    classifier calls the counterfactual healthy (see the module docstring).

    Parameters
    ----------
    inpainter
        As for :class:`~medattr.baselines.counterfactual.inpaint.MaskedInfillBaseline`.
    guide_factor
        Fraction of the calibrated anomaly threshold at which candidate components are found.
    guide_components
        Most candidate components tried.
    guide_min_drop
        Keep each candidate whose infill lowers the disease log-odds by at least this much
        (``None`` or 0: grow until the classifier calls the infill healthy). From settings
        (command line, bundle, benchmark) an unset value takes the model's calibrated level
        (:func:`paired_guide_min_drop`).
    **settings
        The other settings of :class:`~medattr.baselines.counterfactual.inpaint.
        MaskedInfillBaseline` (``threshold`` is also the "called healthy" criterion here).

    Needs the classifier: :meth:`generate` raises :class:`~medattr.errors.InputError` when the
    context has no ``forward_func``.
    """

    name = "inpaint-guided"
    settings: ClassVar[tuple[Setting, ...]] = (
        *InpaintCounterfactualBaseline.settings,
        GUIDE_FACTOR,
        GUIDE_COMPONENTS,
        GUIDE_MIN_DROP,
    )

    def __init__(
        self,
        inpainter: Any = DEFAULT_INPAINTER,
        guide_factor: float = 0.5,
        guide_components: int = 6,
        guide_min_drop: float | None = None,
        **settings: Any,
    ) -> None:
        if not 0.0 < guide_factor <= 1.0:
            raise InputError(f"guide_factor must be in (0, 1], got {guide_factor}")
        if int(guide_components) < 1:
            raise InputError(f"guide_components must be >= 1, got {guide_components}")
        if guide_min_drop is not None and not float(guide_min_drop) >= 0:
            raise InputError(f"guide_min_drop must be >= 0, got {guide_min_drop}")
        super().__init__(inpainter, **settings)
        self.guide_min_drop = float(guide_min_drop) if guide_min_drop else None
        self.guide_factor = float(guide_factor)
        self.guide_components = int(guide_components)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        values = dict(settings)
        if values.get("guide_min_drop") is None:
            values["guide_min_drop"] = paired_guide_min_drop(setup)
        return super().from_settings(values, setup)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "guide": {
                "factor": self.guide_factor,
                "components": self.guide_components,
                "min_drop": self.guide_min_drop,
            },
        }

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        if context is None or context.forward_func is None:
            raise InputError(
                "the inpaint-guided baseline needs the classifier (a forward function in the "
                "baseline context); use 'inpaint' without one"
            )
        sp = self.spacing(inputs, context)
        found = self.masks(inputs, sp)
        x = inputs.detach()
        f = context.forward_func
        chosen, guides = [], []
        for i, a in enumerate(found):
            mask, guide = self._guide(x[i : i + 1], a, sp, f)
            chosen.append(mask)
            guides.append(guide)
        m = torch.from_numpy(np.stack(chosen))[:, None].to(x.device)
        res = self.from_masks(inputs, m, context, sp)
        res.info["steps"] = [[*a.steps, *g] for a, g in zip(found, guides, strict=True)]
        res.info["guided"] = [any(s.get("kept") == "grown" for s in g) for g in guides]
        return res

    def _p(self, f: Callable[..., Tensor], x: Tensor) -> float:
        with torch.no_grad():
            return float(_disease_probability(f, x, self.disease_class)[0])

    def _infill(self, x: Tensor, mask: np.ndarray, spacing: Sequence[float]) -> Tensor:
        """The counterfactual of one volume for a bool ``mask`` ``(*spatial)``."""
        return self.from_masks(x, torch.from_numpy(mask)[None, None], None, spacing).baselines

    def _guide(
        self, x: Tensor, found: Any, spacing: Sequence[float], f: Callable[..., Tensor]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The mask for one volume ``x`` ``(1, 1, *spatial)`` and the guide's steps."""
        from medattr.generative.anomaly import candidate_components

        base = np.asarray(found.mask, bool)
        p_x = self._p(f, x)
        if p_x <= self.threshold:
            return base, [{"step": "guide", "p_disease_input": p_x, "kept": "calibrated"}]
        p_now = p_x  # the disease probability of the mask so far (empty: the input's)
        if base.any():
            p_now = self._p(f, self._infill(x, base, spacing))
            if p_now <= self.threshold:
                return base, [{"step": "guide", "p_disease": p_now, "kept": "calibrated"}]
        level = self.guide_factor * self.masker.threshold
        grown = base.copy()
        drop_rule = self.guide_min_drop is not None
        steps: list[dict[str, Any]] = []
        tried = 0
        for peak, comp in candidate_components(
            found.residual, level, spacing, self.masker.settings
        ):
            if tried == self.guide_components:
                break
            if not (comp & ~grown).any():
                continue  # already inside the mask
            tried += 1
            trial = grown | comp
            p = self._p(f, self._infill(x, trial, spacing))
            step: dict[str, Any] = {
                "step": f"guide {tried}",
                "peak": round(peak, 4),
                "voxels": int(trial.sum()),
                "p_disease": round(p, 6),
            }
            steps.append(step)
            if drop_rule:
                drop = _logit(p_now) - _logit(p)
                step["logit_drop"] = round(drop, 4)
                if drop < float(self.guide_min_drop or 0.0):
                    continue  # no evidence of the classifier's in this component: left out
                step["accepted"] = True
                p_now = p
            grown = trial
            if p <= self.threshold:
                step["kept"] = "grown"
                return grown, steps
        if drop_rule and (grown != base).any():
            steps.append(
                {"step": "guide", "kept": "grown", "reason": "evidence removed, still diseased"}
            )
            return grown, steps
        reason = (
            "no candidate lowered the disease log-odds enough"
            if drop_rule
            else "no grown mask reached healthy"
        )
        steps.append({"step": "guide", "kept": "calibrated", "reason": reason})
        return base, steps


def _logit(p: float, eps: float = 1e-6) -> float:
    q = min(max(p, eps), 1.0 - eps)
    return math.log(q / (1.0 - q))
