"""Counterfactual baselines: the healthy version of the same patient, from a healthy-only VAE.

After Geiger et al., "On the notion of missingness for path attribution explainability methods
in medical settings" (2025): a path attribution is only as meaningful as its baseline, and
"absence of disease" is best represented by the patient's own anatomy with the disease
removed. Three constructions from a VAE trained on healthy scans only:

- :class:`VAEReconstructionBaseline`: ``x' = D(mu(x))``, the posterior-mean reconstruction
  (healthy-looking, but blurred everywhere);
- :class:`VAEGuidedBaseline`: starting at ``mu(x)``, the latent is optimised until the classifier
  calls the decoded volume healthy (disease probability at most ``threshold``), staying close
  to ``x`` and to the prior, in a bounded number of steps;
- :class:`VAEGuidedResidualBaseline`: the same, with residual correction
  ``x' = D(z_cf) + (x - D(mu(x)))``, so that ``x - x' = D(mu(x)) - D(z_cf)`` carries only the
  change the decoder makes, not its blur.

Every baseline reports, per sample, the disease probability of the input and of the baseline,
whether it reached "healthy", the steps taken and its distance to the input; a baseline the
classifier still calls diseased is flagged and logged as a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from medattr._baseline import Baseline, BaselineContext, BaselineResult, BaselineSetup
from medattr._torch import frozen_parameters
from medattr.baselines._registry import register
from medattr.errors import InputError
from medattr.registry import Setting
from medattr.targets import disease_probability

__all__ = [
    "CF_STEPS",
    "CF_THRESHOLD",
    "VAE",
    "VAEGuidedBaseline",
    "VAEGuidedResidualBaseline",
    "VAEReconstructionBaseline",
    "paired_model_path",
]

log = logging.getLogger("medattr.baselines")


def _as_vae(vae: Any) -> Any:
    if isinstance(vae, str | os.PathLike):
        from medattr.generative import load_vae

        return load_vae(vae)
    if not (hasattr(vae, "encode") and hasattr(vae, "decode")):
        raise InputError(f"vae must have encode() and decode(); got {type(vae).__name__}")
    return vae


def _module(vae: Any) -> Any:
    return getattr(vae, "module", vae)


def _check_grid(vae: Any, x: Tensor) -> None:
    spec = getattr(vae, "spec", None)
    size = getattr(spec, "spatial_size", None)
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise InputError(
            f"the VAE works on a {tuple(size)} grid but the model input is {tuple(x.shape[2:])}; "
            f"pair the VAE with a classifier of the same input contract"
        )


VAE = Setting(
    "vae",
    None,
    "vae-* baselines: the healthy-only VAE (TorchScript with encode/decode, bundle directory, "
    "or builtin:NAME); default: the VAE named in the model's spec (paired_vae)",
    type=str,
    optional=True,
    asset=True,
)
CF_THRESHOLD = Setting(
    "cf_threshold",
    0.2,
    "counterfactual baselines: disease probability at or below which the counterfactual counts "
    "as healthy",
    type=float,
    minimum=0.0,
    maximum=1.0,
    exclusive_minimum=True,
    param="threshold",
)
CF_STEPS = Setting(
    "cf_steps",
    150,
    "vae-guided*: bound on latent optimisation steps",
    type=int,
    minimum=0,
    param="max_steps",
)


def paired_model_path(
    settings: Mapping[str, Any], setup: BaselineSetup, key: str = "vae", extra: str = "paired_vae"
) -> str:
    """The generative model a counterfactual baseline uses: the setting ``key`` if given, else
    the one the explained model's spec names (``extra``, e.g. ``paired_vae``)."""
    path = settings.get(key)
    if not path:
        spec = getattr(setup.model, "spec", None)
        path = (getattr(spec, "extra", None) or {}).get(extra)
    if not path:
        raise InputError(
            f"counterfactual baselines need a generative model (--{key.replace('_', '-')} PATH); "
            "this model has no paired default"
        )
    return str(path)


def _disease_probability(forward_func: Any, x: Tensor, disease_class: int) -> Tensor:
    out = forward_func(x)
    if out.dim() != 2:
        raise InputError(
            f"guided counterfactuals need a classifier output (N, classes); got {tuple(out.shape)}"
        )
    return disease_probability(out, disease_class)


def _distance(x: Tensor, b: Tensor) -> dict[str, list[float]]:
    d = (x - b).flatten(1).double()
    return {"mean_abs": d.abs().mean(1).tolist(), "rms": d.pow(2).mean(1).sqrt().tolist()}


@register("vae-recon")
class VAEReconstructionBaseline(Baseline):
    """Healthy-VAE reconstruction ``x' = D(mu(x))`` (posterior mean, deterministic).

    Parameters
    ----------
    vae
        A :class:`~medattr.generative.LoadedVAE`, a module with ``encode``/``decode``, or a path
        (TorchScript file or bundle directory).
    disease_class
        Output class of the classifier that means "diseased", for the report.
    threshold
        Disease probability at or below which the baseline counts as healthy.
    """

    name = "vae-recon"
    settings: ClassVar[tuple[Setting, ...]] = (VAE, CF_THRESHOLD)
    asset_labels: ClassVar[dict[str, str]] = {"vae": "the healthy-only VAE"}

    def __init__(self, vae: Any, disease_class: int = 1, threshold: float = 0.5) -> None:
        self.vae = _as_vae(vae)
        self.disease_class = int(disease_class)
        if not 0.0 < threshold < 1.0:
            raise InputError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = float(threshold)

    def describe(self) -> dict[str, Any]:
        info = {"name": self.name, "disease_class": self.disease_class, "threshold": self.threshold}
        if hasattr(self.vae, "describe"):
            info["vae"] = self.vae.describe()
        return info

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> Baseline:
        from medattr.generative import load_vae

        vae = load_vae(paired_model_path(settings, setup), setup.device)
        kwargs = {s.keyword: settings[s.name] for s in cls.settings if s.name != "vae"}
        return cls(vae, disease_class=setup.disease_class, **kwargs)

    @classmethod
    def assets(cls, settings: Mapping[str, Any], setup: BaselineSetup) -> dict[str, str]:
        return {"vae": paired_model_path(settings, setup)}

    def _reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            mu, _ = self.vae.encode(x)
            return mu, self.vae.decode(mu).to(x.dtype)

    def _report(
        self, x: Tensor, b: Tensor, context: BaselineContext | None, extra: dict[str, Any]
    ) -> dict[str, Any]:
        info: dict[str, Any] = {**extra, "distance_to_input": _distance(x, b)}
        if context is not None and context.forward_func is not None:
            with torch.no_grad():
                p_x = _disease_probability(context.forward_func, x, self.disease_class)
                p_b = _disease_probability(context.forward_func, b, self.disease_class)
            healthy = (p_b <= self.threshold).tolist()
            info.update(
                {
                    "p_disease_input": p_x.tolist(),
                    "p_disease_baseline": p_b.tolist(),
                    "reached_healthy": healthy,
                }
            )
            if not all(healthy):
                log.warning(
                    "%s baseline: the classifier still calls %d of %d baseline(s) diseased "
                    "(p = %s > %.2f); it is not a 'missingness' reference for them",
                    self.name,
                    healthy.count(False),
                    len(healthy),
                    ", ".join(f"{v:.2f}" for v in p_b.tolist()),
                    self.threshold,
                )
        return info

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        _check_grid(self.vae, inputs)
        _, recon = self._reconstruct(inputs)
        return BaselineResult(recon, self._report(inputs, recon, context, {}))


@register("vae-guided")
class VAEGuidedBaseline(VAEReconstructionBaseline):
    """Classifier-guided healthy-VAE counterfactual: the latent moved until the classifier
    calls the decoded volume healthy.

    Starting from ``z = mu(x)``, Adam minimises

    ``softplus(logit_disease - logit_healthy) + proximity * mean|x'(z) - x| + prior * mean(z^2)``

    and stops for each sample at the first step whose baseline has disease probability at or
    below ``threshold`` (the least change that flips the decision), or after ``max_steps``.

    Parameters
    ----------
    vae, disease_class, threshold
        As for :class:`VAEReconstructionBaseline`; ``threshold`` is also the stopping rule.
    max_steps
        Bound on optimisation steps.
    lr
        Adam learning rate in latent units.
    proximity
        Weight of the L1 distance to the input.
    prior
        Weight of the latent prior (keeps ``z`` where the decoder was trained).
    """

    name = "vae-guided"
    residual = False
    settings: ClassVar[tuple[Setting, ...]] = (VAE, CF_THRESHOLD, CF_STEPS)

    def __init__(
        self,
        vae: Any,
        disease_class: int = 1,
        threshold: float = 0.2,
        max_steps: int = 150,
        lr: float = 0.05,
        proximity: float = 1.0,
        prior: float = 0.01,
    ) -> None:
        super().__init__(vae, disease_class, threshold)
        if max_steps < 0:
            raise InputError(f"max_steps must be >= 0, got {max_steps}")
        self.max_steps, self.lr, self.proximity, self.prior = (
            int(max_steps),
            float(lr),
            float(proximity),
            float(prior),
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "max_steps": self.max_steps,
            "lr": self.lr,
            "proximity": self.proximity,
            "prior": self.prior,
            "residual": self.residual,
        }

    def generate(self, inputs: Tensor, context: BaselineContext | None = None) -> BaselineResult:
        if context is None or context.forward_func is None:
            raise InputError(f"{self.name} needs the classifier (BaselineContext.forward_func)")
        _check_grid(self.vae, inputs)
        x = inputs.detach()
        mu, recon = self._reconstruct(x)
        offset = (x - recon) if self.residual else torch.zeros_like(x)
        best, steps = self._optimise(context.forward_func, x, mu, recon, offset)
        info = self._report(
            x, best, context, {"steps": steps.tolist(), "max_steps": self.max_steps}
        )
        return BaselineResult(best, info)

    def _optimise(
        self,
        f: Any,
        x: Tensor,
        mu: Tensor,
        recon: Tensor,
        offset: Tensor,
        proximity_weight: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Latent optimisation from ``mu`` (``recon = D(mu)``); candidates are ``D(z) + offset``,
        their distance to ``x`` weighted voxel-wise by ``proximity_weight`` (default 1).
        Returns the baselines and the step at which each reached "healthy" (``max_steps`` if
        never)."""
        z = mu.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.lr)
        best = (recon + offset).detach().clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        steps = torch.full((x.shape[0],), self.max_steps, dtype=torch.long)
        modules = [m for m in (f, _module(self.vae)) if isinstance(m, torch.nn.Module)]
        with contextlib.ExitStack() as stack:
            for m in modules:
                stack.enter_context(frozen_parameters(m))
            for step in range(self.max_steps + 1):
                cand = self.vae.decode(z) + offset
                out = f(cand)
                logits = out.float()
                if logits.shape[1] == 1:
                    margin = logits[:, 0]
                    p = torch.sigmoid(margin)
                else:
                    others = torch.cat(
                        [logits[:, : self.disease_class], logits[:, self.disease_class + 1 :]], 1
                    )
                    margin = logits[:, self.disease_class] - torch.logsumexp(others, 1)
                    p = torch.softmax(logits, 1)[:, self.disease_class]
                newly = (~done) & (p.detach() <= self.threshold)
                if bool(newly.any()):
                    best[newly] = cand.detach()[newly].to(best.dtype)
                    steps[newly.cpu()] = step
                    done |= newly
                if bool(done.all()) or step == self.max_steps:
                    break
                active = (~done).float()
                loss_cls = torch.nn.functional.softplus(margin)
                gap = (cand - x).abs()
                if proximity_weight is not None:
                    gap = gap * proximity_weight
                loss_prox = gap.flatten(1).mean(1)
                loss_prior = z.pow(2).mean(1)
                loss = (
                    active * (loss_cls + self.proximity * loss_prox + self.prior * loss_prior)
                ).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if not bool(done.all()):
                last = (self.vae.decode(z) + offset).detach()
                best[~done] = last[~done].to(best.dtype)
        return best, steps


@register("vae-guided-residual")
class VAEGuidedResidualBaseline(VAEGuidedBaseline):
    """vae-guided plus the input's VAE residual: ``x' = D(z_cf) + (x - D(mu(x)))``.

    ``x - x'`` is then ``D(mu(x)) - D(z_cf)``: only what the decoder changes between the
    patient's code and the counterfactual code, none of its reconstruction blur. Note that the
    residual also keeps whatever the healthy-only decoder cannot draw, the lesion included, so
    the optimisation must move ``D(z)`` to cancel it; the report says when it does not manage.
    """

    name = "vae-guided-residual"
    residual = True
