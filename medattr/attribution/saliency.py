"""Saliency: plain input gradients (Simonyan, Vedaldi & Zisserman 2014), Captum's call shape."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from medattr.attribution._base import UNSET, Explanation, PathAttribution
from medattr.attribution.jobs import PathJobs
from medattr.targets import TargetLike

__all__ = ["Saliency"]


class Saliency(PathAttribution):
    """Plain gradients (Simonyan et al. 2014), Captum's ``Saliency`` call shape (``abs=True``)."""

    method_name = "saliency"
    captum_arguments = ("target", "abs", "additional_forward_args")

    def explain(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetLike = None,
        abs: bool = True,
        additional_forward_args: Any = None,
        *,
        internal_batch_size: int | str | None = UNSET,
        amp: str | None = UNSET,
    ) -> Explanation:
        call = self.begin(
            inputs,
            target,
            additional_forward_args,
            internal_batch_size=internal_batch_size,
            amp=amp,
        )
        jobs = PathJobs.straight(call.batch, [1.0], [1.0])
        res = call.run(torch.zeros_like(call.x), jobs, multiply_by_delta=False)
        g = res.sums[0].abs() if abs else res.sums[0]
        nan = torch.full((call.batch,), float("nan"), dtype=torch.float64)
        return call.explanation(
            g, nan, res, {"abs": bool(abs)}, baselines=None, convergence_delta=nan
        )
