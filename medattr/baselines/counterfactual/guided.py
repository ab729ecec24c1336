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

An input the classifier calls healthy keeps the calibrated mask, so a healthy study the
classifier gets right is treated exactly as by ``inpaint``. Because the classifier decides how
far the mask grows, this baseline is reported apart from the mask-only ones: its mask is no
longer independent of the model being explained. Every voxel outside the final mask (and its
feathered edge) is still exactly the input's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from medattr._baseline import BaselineContext, BaselineResult
from medattr.baselines._registry import register
from medattr.baselines.counterfactual._masking import DEFAULT_INPAINTER
from medattr.baselines.counterfactual.inpaint import InpaintCounterfactualBaseline
from medattr.baselines.counterfactual.vae import _disease_probability
from medattr.errors import InputError
from medattr.registry import Setting

__all__ = ["GUIDE_COMPONENTS", "GUIDE_FACTOR", "GuidedInpaintBaseline"]

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
    )

    def __init__(
        self,
        inpainter: Any = DEFAULT_INPAINTER,
        guide_factor: float = 0.5,
        guide_components: int = 6,
        **settings: Any,
    ) -> None:
        if not 0.0 < guide_factor <= 1.0:
            raise InputError(f"guide_factor must be in (0, 1], got {guide_factor}")
        if int(guide_components) < 1:
            raise InputError(f"guide_components must be >= 1, got {guide_components}")
        super().__init__(inpainter, **settings)
        self.guide_factor = float(guide_factor)
        self.guide_components = int(guide_components)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "guide": {"factor": self.guide_factor, "components": self.guide_components},
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

    def _guide(
        self, x: Tensor, found: Any, spacing: Sequence[float], f: Callable[..., Tensor]
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The mask for one volume ``x`` ``(1, 1, *spatial)`` and the guide's steps."""
        from medattr.generative.anomaly import candidate_components

        base = np.asarray(found.mask, bool)
        p_x = self._p(f, x)
        if p_x <= self.threshold:
            return base, [{"step": "guide", "p_disease_input": p_x, "kept": "calibrated"}]
        if base.any():
            p = self._p(
                f, self.from_masks(x, torch.from_numpy(base)[None, None], None, spacing).baselines
            )
            if p <= self.threshold:
                return base, [{"step": "guide", "p_disease": p, "kept": "calibrated"}]
        level = self.guide_factor * self.masker.threshold
        grown = base.copy()
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
            grown |= comp
            cf = self.from_masks(x, torch.from_numpy(grown)[None, None], None, spacing).baselines
            p = self._p(f, cf)
            steps.append(
                {
                    "step": f"guide {tried}",
                    "peak": round(peak, 4),
                    "voxels": int(grown.sum()),
                    "p_disease": round(p, 6),
                }
            )
            if p <= self.threshold:
                steps[-1]["kept"] = "grown"
                return grown, steps
        steps.append(
            {"step": "guide", "kept": "calibrated", "reason": "no grown mask reached healthy"}
        )
        return base, steps
