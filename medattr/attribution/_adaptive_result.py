"""The result of an adaptive path integration, and its assembly from the path meshes.

:func:`medattr.attribution.adaptive.adaptive_path_integral` returns an :class:`AdaptiveResult`
for the :class:`PathSet` it integrated; :func:`assemble` weights the kept node vectors into the
attribution and fills in every per-input and per-path number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from medattr.attribution._node_store import NodeStore
from medattr.attribution._panels import PathMesh
from medattr.errors import InputError

__all__ = ["AdaptiveResult", "PathSet", "assemble", "tolerance"]


@dataclass
class PathSet:
    """The straight paths to integrate: path ``p`` runs from baseline row ``reference[p]`` to
    input row ``sample[p]`` and adds ``weight[p]`` times its integral to that input's attribution.

    Attributes
    ----------
    sample, reference
        ``(P,)`` row of the inputs and of the baseline bank.
    weight
        ``(P,)`` weight of each path in its input's attribution (1 for IG; ``1/R`` for an
        average over ``R`` references).
    """

    sample: Tensor
    reference: Tensor
    weight: Tensor

    def __post_init__(self) -> None:
        self.sample = torch.as_tensor(self.sample, dtype=torch.long).reshape(-1).cpu()
        self.reference = torch.as_tensor(self.reference, dtype=torch.long).reshape(-1).cpu()
        self.weight = torch.as_tensor(self.weight, dtype=torch.float64).reshape(-1).cpu()
        if not (self.sample.numel() == self.reference.numel() == self.weight.numel()):
            raise InputError(
                f"PathSet fields must have the same length; got sample {self.sample.numel()}, "
                f"reference {self.reference.numel()}, weight {self.weight.numel()}"
            )

    def __len__(self) -> int:
        return int(self.sample.numel())

    @classmethod
    def straight(cls, batch: int, shared_baseline: bool = False) -> PathSet:
        """Input ``i`` against baseline row ``i`` (or row 0 for all with ``shared_baseline``)."""
        s = torch.arange(batch)
        return cls(s, torch.zeros_like(s) if shared_baseline else s.clone(), torch.ones(batch))

    @classmethod
    def all_references(cls, batch: int, references: int) -> PathSet:
        """Every input against every reference of a bank, weight ``1/references`` (Expected
        Gradients with the exact average over the bank instead of Monte-Carlo draws)."""
        s = torch.arange(batch).repeat_interleave(references)
        r = torch.arange(references).repeat(batch)
        return cls(s, r, torch.full((batch * references,), 1.0 / references))


@dataclass
class AdaptiveResult:
    """What :func:`adaptive_path_integral` computed.

    Attributes
    ----------
    sums
        float32 ``(buckets, B, *input_shape[1:])``: the attributions (``buckets`` is 1, or 2
        with ``split_ratio``: left and right of ``alpha_star``, which add up to the whole).
    error
        float64 ``(B,)``: ``sums`` summed over buckets and voxels, minus ``span``, computed from
        the returned float32 tensor (from the node sums when ``multiply_by_delta=False``).
    span
        ``(B,)`` ``sum_p weight_p (f(x) - f(x'_p))`` over the input's paths (``f(x) - f(x')``
        for IG).
    tolerance
        ``(B,)`` ``sum_p weight_p max(rtol |f(x) - f(x'_p)|, atol)``.
    converged
        ``(B,)`` bool: every path of the input met its tolerance and ``|error| <= tolerance``.
    stopped
        Per input, why its paths stopped: ``"converged"``, ``"max_steps"`` (the next refinement
        would have passed ``max_steps``) or ``"precision"`` (the error is within float32
        rounding of the sum, so refining cannot be judged; typical when ``f(x) ~ f(x')``: set
        ``atol``). The first reason of a path that did not converge wins.
    n_evaluations
        ``(B,)`` gradient evaluations (path points) spent on the input's paths. Adaptive runs
        need no forward-only evaluations: ``f`` at every node comes with its gradient.
    f_input, f_baseline
        ``(B,)`` weighted means over the input's paths of ``f`` at their ends.
    paths
        The :class:`PathSet` integrated.
    path_alphas, path_weights, path_outputs
        Per path, sorted by alpha: the nodes, their final quadrature weights and ``f`` at them
        (the ends replaced by ``f_inputs`` / ``f_baselines`` when given). Split IG's saturation
        point can be read from them.
    path_error, path_tolerance, path_converged, path_evaluations, path_precision
        ``(P,)`` per path: completeness error (node sums, float64), tolerance, whether it was
        met, gradient evaluations, and the float32 resolution of the check (8 epsilon of the
        attribution's L1 norm plus ``|f|`` at both ends).
    path_status
        Per path: ``"converged"``, ``"max_steps"`` or ``"precision"``.
    path_local_error
        ``(P,)`` the sum of the absolute errors of the path's final panels: ``|path_error|`` is
        this only if no panel's error cancels another's (completeness constrains the sum).
    alpha_star, f_alpha_star, left_error
        With ``split_ratio``, ``(P,)``: the first panel end where
        ``(f - f(x')) / (f(x) - f(x'))`` reaches the ratio (1 if never), ``f`` there, and
        ``sum(left) - (f(alpha*) - f(x'))`` per path; otherwise ``None``.
    rounds
        Refinement rounds (engine calls).
    chunk_sizes, oom_retries, bytes_per_point, engine_seconds
        Engine statistics over all rounds (with a distributed engine, this rank's chunks).
    seconds
        Wall time of the call.
    settings
        The settings used (JSON-able).
    """

    sums: Tensor
    error: Tensor
    span: Tensor
    tolerance: Tensor
    converged: Tensor
    stopped: list[str]
    n_evaluations: Tensor
    f_input: Tensor
    f_baseline: Tensor
    paths: PathSet
    path_alphas: list[Tensor]
    path_weights: list[Tensor]
    path_outputs: list[Tensor]
    path_error: Tensor
    path_tolerance: Tensor
    path_converged: Tensor
    path_evaluations: Tensor
    path_precision: Tensor
    path_status: list[str]
    path_local_error: Tensor
    alpha_star: Tensor | None = None
    f_alpha_star: Tensor | None = None
    left_error: Tensor | None = None
    rounds: int = 0
    chunk_sizes: list[int] = field(default_factory=list)
    oom_retries: int = 0
    bytes_per_point: int | None = None
    engine_seconds: float = 0.0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def relative_error(self) -> Tensor:
        """``|error| / |span|`` per input (inf where the span is zero)."""
        return self.error.abs() / self.span.abs()

    def summary(self) -> dict[str, Any]:
        """JSON-able per-input numbers for a manifest."""
        return {
            "n_steps": "auto",
            **self.settings,
            "steps_used": self.n_evaluations.tolist(),
            "error": self.error.tolist(),
            "relative_error": [float(v) for v in self.relative_error.tolist()],
            "converged": self.converged.tolist(),
            "stopped": list(self.stopped),
            "rounds": self.rounds,
        }


def tolerance(mesh: PathMesh, rtol: float, atol: float) -> float:
    """``max(rtol * |f(x) - f(x')|, atol)`` for one path."""
    return max(rtol * abs(mesh.span()), atol)


def _alpha_star(mesh: PathMesh, ratio: float) -> int:
    """Node index of the first panel end where the path reaches ``ratio`` of its span."""
    span = mesh.span()
    ends = mesh.panel_ends()
    if span != 0:
        for i in mesh.order():
            if i in ends and (mesh.value(i) - mesh.value(0)) / span >= ratio:
                return i
    return mesh.end


def assemble(
    meshes: list[PathMesh],
    where: list[list[tuple[int, int]]],
    store: NodeStore,
    status: list[str],
    paths: PathSet,
    x: Tensor,
    split_ratio: float | None,
    multiply_by_delta: bool,
    settings: dict[str, Any],
    rounds: int,
    stats: dict[str, Any],
    t0: float,
) -> AdaptiveResult:
    """Weight the kept node vectors into the attribution and fill the result."""
    n_paths, batch = len(paths), x.shape[0]
    terms: list[tuple[int, int, int, int, float]] = []
    stars: list[int] = []
    left_error = torch.zeros(n_paths, dtype=torch.float64)
    for p, mesh in enumerate(meshes):
        pw, s = float(paths.weight[p]), int(paths.sample[p])
        parts = [mesh.weights()]
        if split_ratio is not None:
            i = _alpha_star(mesh, split_ratio)
            stars.append(i)
            parts = [mesh.weights(0.0, mesh.alpha[i]), mesh.weights(mesh.alpha[i], 1.0)]
            left_error[p] = mesh.integral(parts[0]) - (mesh.value(i) - mesh.value(0))
        for k, wts in enumerate(parts):
            terms += [(k, s, *where[p][j], w * pw) for j, w in enumerate(wts) if w != 0.0]
    sums = store.combine(terms, (len(parts), *x.shape), x.device)
    store.clear()

    def per_sample(values: list[float] | Tensor) -> Tensor:
        v = torch.as_tensor(values, dtype=torch.float64) * paths.weight
        return torch.zeros(batch, dtype=torch.float64).index_add_(0, paths.sample, v)

    rtol, atol = settings["rtol"], settings["atol"]
    conv_p = torch.tensor([s == "converged" for s in status])
    evals_p = torch.tensor([len(m.alpha) for m in meshes], dtype=torch.long)
    span = per_sample([m.span() for m in meshes])
    tol = per_sample([tolerance(m, rtol, atol) for m in meshes])
    if multiply_by_delta:
        error = sums.sum(0).flatten(1).double().sum(1).cpu() - span
    else:  # the returned tensor holds gradients: the error comes from the node sums
        error = per_sample([m.integral() for m in meshes]) - span
    unconverged_inputs = paths.sample[~conv_p].unique()
    all_conv = torch.ones(batch, dtype=torch.bool)
    all_conv[unconverged_inputs] = False
    stopped = ["converged"] * batch
    for p in range(n_paths - 1, -1, -1):  # the first unconverged path of an input wins
        if status[p] != "converged":
            stopped[int(paths.sample[p])] = status[p]
    wsum = per_sample([1.0] * n_paths)
    wsum[wsum == 0] = 1.0
    orders = [m.order() for m in meshes]
    final_w = [m.weights() for m in meshes]
    res = AdaptiveResult(
        sums=sums,
        error=error,
        span=span,
        tolerance=tol,
        converged=all_conv & (error.abs() <= tol),
        stopped=stopped,
        n_evaluations=torch.zeros(batch, dtype=torch.long).index_add_(0, paths.sample, evals_p),
        f_input=per_sample([m.value(m.end) for m in meshes]) / wsum,
        f_baseline=per_sample([m.value(0) for m in meshes]) / wsum,
        paths=paths,
        path_alphas=[
            torch.tensor([m.alpha[i] for i in o]) for m, o in zip(meshes, orders, strict=True)
        ],
        path_weights=[
            torch.tensor([w[i] for i in o]) for w, o in zip(final_w, orders, strict=True)
        ],
        path_outputs=[
            torch.tensor([m.value(i) for i in o]) for m, o in zip(meshes, orders, strict=True)
        ],
        path_error=torch.tensor([m.error() for m in meshes], dtype=torch.float64),
        path_tolerance=torch.tensor([tolerance(m, rtol, atol) for m in meshes]),
        path_converged=conv_p,
        path_evaluations=evals_p,
        path_precision=torch.tensor([m.precision() for m in meshes], dtype=torch.float64),
        path_status=list(status),
        path_local_error=torch.tensor([m.local_error() for m in meshes], dtype=torch.float64),
        rounds=rounds,
        chunk_sizes=stats["chunks"],
        oom_retries=stats["oom"],
        bytes_per_point=stats["bpp"],
        engine_seconds=stats["secs"],
        settings=dict(settings),
    )
    if split_ratio is not None:
        res.alpha_star = torch.tensor([m.alpha[i] for m, i in zip(meshes, stars, strict=True)])
        res.f_alpha_star = torch.tensor([m.value(i) for m, i in zip(meshes, stars, strict=True)])
        res.left_error = left_error
        res.settings["split_ratio"] = split_ratio
    res.seconds = time.perf_counter() - t0
    return res
