r"""Adaptive, completeness-targeted quadrature of path integrals (``n_steps="auto"``).

Integrated Gradients integrates :math:`g(\alpha) = (x - x') \odot \nabla f(\gamma(\alpha))`
over :math:`\alpha \in [0, 1]`. Its scalar sum is :math:`h(\alpha) = df/d\alpha`, so over any
panel :math:`[a, b]` the quadrature of :math:`h` must equal :math:`f(\gamma(b)) - f(\gamma(a))`:
every panel's error is known exactly, for free. This module spends gradient evaluations
where that error is, and stops when the completeness error of the whole path is within a
tolerance:

1. each path starts with ``initial_panels`` panels of a closed, nested rule (2-point Lobatto =
   trapezoid, or 3-point Lobatto = Simpson); every node is a gradient evaluation and gives
   ``f`` at that point too, and panel ends are nodes, so no separate forward pass is needed;
2. a path is done when ``|sum(phi) - (f(x) - f(x'))| <= max(rtol * |f(x) - f(x')|, atol)``,
   or when the next refinement would exceed ``max_steps`` evaluations (it is then reported
   as not converged);
3. otherwise its panels with the largest ``|local error|`` are bisected (the worst
   ``ceil(refine_fraction * panels)``, and enough for ``round_points`` new points); bisection
   keeps every node, so no
   evaluation is discarded;
4. the new nodes of every unfinished path form one :meth:`PathEngine.run` call per round (the
   memory planner chunks them), with ``per_point=True``: each node's contribution vector is kept
   until the end, because bisection changes the weights of the nodes it keeps.

Memory: the kept node vectors cost ``nodes x voxels x 4`` bytes (1 MiB per node at 64³), on
``store_device``. Paths are given as a :class:`PathSet` of ``(input row, baseline row, weight)``
triples, so one call serves Integrated Gradients (one path per input), SmoothGrad over IG
(one path per noisy copy), Split IG (``split_ratio``: left and right of the saturation point,
split at a mesh node) and Expected Gradients with every reference of a bank (one path per
``(input, reference)`` pair, weight ``1/R``).

With a ``distributed=True`` engine each round's points are split across the ranks (the engine
all-reduces the node vectors and values; each point comes from one rank and ``x + 0`` is exact,
so every rank holds the same numbers), and the per-node values that drive the refinement are
broadcast from rank 0, so every rank takes the same decisions and runs the same rounds.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor

from medattr.attribution._adaptive_result import (
    AdaptiveResult,
    PathSet,
    assemble,
    tolerance,
)
from medattr.attribution._node_store import NodeStore
from medattr.attribution._panels import AdaptiveRule, PathMesh
from medattr.attribution.engine import PathEngine, PathJobs, normalize_args
from medattr.errors import InputError
from medattr.options import parse_option
from medattr.targets import BoundTarget

__all__ = ["AdaptiveResult", "AdaptiveRule", "PathSet", "adaptive_path_integral"]

_SLICE_BYTES = 64 * 2**20
"""At most this many bytes of float64 copies of node vectors are made at once."""


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise InputError(f"{name} must be {expected}; got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _validate(
    rtol: Any,
    atol: Any,
    max_steps: Any,
    rule: AdaptiveRule,
    initial_panels: Any,
    refine_fraction: Any,
    split_ratio: Any,
    round_points: Any,
) -> None:
    _check("rtol", rtol, _is_real(rtol) and 0 < rtol < 1, "a fraction in (0, 1) (0.01 = 1 %)")
    _check("atol", atol, _is_real(atol) and atol >= 0, "a finite number >= 0")
    _check(
        "initial_panels",
        initial_panels,
        _is_int(initial_panels) and initial_panels >= 1,
        "an int >= 1",
    )
    least = rule.initial_nodes(initial_panels) if _is_int(initial_panels) else 2
    _check(
        "max_steps",
        max_steps,
        _is_int(max_steps) and max_steps >= least,
        f"an int >= {least} (the {rule.value} rule on {initial_panels} panel(s) needs {least} "
        f"points)",
    )
    _check(
        "refine_fraction",
        refine_fraction,
        _is_real(refine_fraction) and 0 < refine_fraction <= 1,
        "a number in (0, 1]",
    )
    _check("round_points", round_points, _is_int(round_points) and round_points >= 1, "an int >= 1")
    _check(
        "split_ratio",
        split_ratio,
        split_ratio is None or (_is_real(split_ratio) and 0 < split_ratio <= 1),
        "None or a number in (0, 1]",
    )


def _node_sums(
    vecs: Tensor, x: Tensor, b: Tensor, jobs: PathJobs, multiply_by_delta: bool
) -> Tensor:
    """``(2, M)``: at each node ``h``, the sum over voxels of ``(x - b) * grad``, and the L1 norm
    of that product (float64, CPU)."""
    out = torch.empty((2, vecs.shape[0]), dtype=torch.float64)
    step = max(1, _SLICE_BYTES // max(vecs[0].numel() * 8, 1))
    for s in range(0, vecs.shape[0], step):
        sl = slice(s, s + step)
        part = vecs[sl].to(x.device).double()
        if not multiply_by_delta:  # the rows are gradients: multiply by x - b here
            idx = jobs.sample[sl].to(x.device)
            ref = jobs.reference[sl].to(x.device)
            part.mul_(x.index_select(0, idx).double() - b.index_select(0, ref).double())
        out[0, sl] = part.flatten(1).sum(1).cpu()
        out[1, sl] = part.abs_().flatten(1).sum(1).cpu()
    return out


def _broadcast(values: Tensor, engine: PathEngine, device: torch.device) -> Tensor:
    """Rank 0's copy of ``values`` on every rank (no-op without a distributed engine)."""
    if not engine.distributed:
        return values
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = values.to(dev).contiguous()
    dist.broadcast(t, src=0)
    return t.cpu()


def adaptive_path_integral(
    engine: PathEngine,
    inputs: Tensor,
    baselines: Tensor,
    bound: BoundTarget,
    additional_forward_args: Any = None,
    *,
    paths: PathSet | None = None,
    rtol: float = 0.01,
    atol: float = 0.0,
    max_steps: int = 512,
    rule: str | AdaptiveRule = AdaptiveRule.TRAPEZOID,
    initial_panels: int = 1,
    refine_fraction: float = 0.1,
    round_points: int = 1,
    f_inputs: Tensor | None = None,
    f_baselines: Tensor | None = None,
    multiply_by_delta: bool = True,
    split_ratio: float | None = None,
    store_device: str | torch.device | None = None,
) -> AdaptiveResult:
    """Integrate straight-path attributions adaptively until completeness holds within ``rtol``.

    Parameters
    ----------
    engine
        The path engine (its chunking, autocast, memory budget and ``distributed`` apply).
    inputs
        ``(B, C, *spatial)``.
    baselines
        Baseline bank ``(R, C, *spatial)``.
    bound
        The bound target (see :func:`medattr.targets.bind_target`).
    additional_forward_args
        Extra model arguments, as for :meth:`PathEngine.run`.
    paths
        The paths (default: input ``i`` against baseline row ``i``, or row 0 if ``R == 1``).
    rtol, atol
        A path is done when ``|error| <= max(rtol * |f(x) - f(x')|, atol)``.
    max_steps
        Most gradient evaluations per path; a path that would need more stops unconverged.
    rule
        ``"trapezoid"`` (default) or ``"simpson"`` panels (see :class:`AdaptiveRule`).
    initial_panels
        Equal panels each path starts with (1: the smallest rule, 2 or 3 points).
    refine_fraction
        Per round, bisect the worst ``ceil(refine_fraction * panels)`` panels of a path (at
        least one): small values spend the fewest evaluations, larger ones fewer rounds.
    round_points
        At least this many new points per path and round (while it has panels to split; 1 by
        default). A round's cost is not proportional to its points where small batches are
        inefficient (GPUs, small models on CPU): there a few more points per round cost little
        wall time and save rounds, at the price of more evaluations.
    f_inputs, f_baselines
        ``(B,)`` ``f`` at the inputs and ``(P,)`` at each path's baseline, in float32 precision
        (e.g. from binding the target). Default: the values at the path's end nodes, computed
        under the engine's autocast.
    multiply_by_delta
        ``False``: the attribution is the path-weighted gradient (Captum's "local" variant);
        the error still refers to ``(x - x') * gradient``.
    split_ratio
        Split IG: also split each path at its first panel end where ``f`` has covered this
        fraction of ``f(x) - f(x')``; ``sums`` then holds ``[left, right]``.
    store_device
        Where node vectors are kept until the end (default: the inputs' device; ``"cpu"``
        saves accelerator memory).

    Returns
    -------
    AdaptiveResult

    Raises
    ------
    InputError
        For invalid settings, shapes or path indices.

    Examples
    --------
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 1))
    >>> from medattr.targets import bind_target
    >>> x, b = torch.rand(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2)
    >>> engine = PathEngine(model)
    >>> _, bound = bind_target(None, engine.forward(x))
    >>> res = adaptive_path_integral(engine, x, b, bound)
    >>> res.n_evaluations.tolist(), bool(res.converged.all())  # linear: exact at once
    ([2], True)
    """
    t0 = time.perf_counter()
    try:
        rule = parse_option(AdaptiveRule, rule, "rule")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _validate(
        rtol, atol, max_steps, rule, initial_panels, refine_fraction, split_ratio, round_points
    )
    if not isinstance(inputs, Tensor) or inputs.dim() < 2 or not inputs.is_floating_point():
        raise InputError("inputs must be a floating-point tensor of shape (B, C, ...)")
    if not isinstance(baselines, Tensor) or tuple(baselines.shape[1:]) != tuple(inputs.shape[1:]):
        shape = tuple(baselines.shape) if isinstance(baselines, Tensor) else type(baselines)
        raise InputError(
            f"baselines must be a tensor (R, {', '.join(map(str, inputs.shape[1:]))}); got {shape}"
        )
    batch, n_refs = inputs.shape[0], baselines.shape[0]
    if paths is None:
        if n_refs not in (batch, 1):
            raise InputError(
                f"with {n_refs} baselines for {batch} inputs, give the paths (PathSet)"
            )
        paths = PathSet.straight(batch, shared_baseline=n_refs == 1 and batch > 1)
    n_paths = len(paths)
    if n_paths == 0:
        raise InputError("paths is empty")
    for name, idx, rows_n in (
        ("sample", paths.sample, batch),
        ("reference", paths.reference, n_refs),
    ):
        if int(idx.min()) < 0 or int(idx.max()) >= rows_n:
            raise InputError(f"paths.{name} must index rows 0..{rows_n - 1}; got {idx.tolist()}")
    args = normalize_args(additional_forward_args)
    x = inputs.detach()
    b = baselines.detach().to(device=x.device, dtype=x.dtype)
    store = NodeStore(torch.device(store_device) if store_device is not None else x.device)

    meshes = [PathMesh(rule, initial_panels) for _ in range(n_paths)]
    if f_inputs is not None:
        f_in = torch.as_tensor(f_inputs, dtype=torch.float64).reshape(-1).cpu()
        if f_in.numel() != batch:
            raise InputError(f"f_inputs must have {batch} values; got {f_in.numel()}")
        for p, m in enumerate(meshes):
            m.f_end = float(f_in[int(paths.sample[p])])
    if f_baselines is not None:
        f_b = torch.as_tensor(f_baselines, dtype=torch.float64).reshape(-1).cpu()
        if f_b.numel() != n_paths:
            raise InputError(f"f_baselines must have one value per path ({n_paths})")
        for p, m in enumerate(meshes):
            m.f_start = float(f_b[p])

    where: list[list[tuple[int, int]]] = [[] for _ in range(n_paths)]  # node -> (chunk, row)
    status = ["open"] * n_paths  # open | converged | precision | max_steps
    result_stats: dict[str, Any] = {"chunks": [], "oom": 0, "bpp": None, "secs": 0.0}
    rounds = 0
    while True:
        todo = [p for p in range(n_paths) if meshes[p].pending]
        if not todo:
            break
        rows = [(p, i) for p in todo for i in meshes[p].pending]
        jobs = PathJobs(
            torch.tensor([int(paths.sample[p]) for p, _ in rows]),
            torch.tensor([int(paths.reference[p]) for p, _ in rows]),
            torch.tensor([meshes[p].alpha[i] for p, i in rows], dtype=torch.float64),
            torch.ones(len(rows), dtype=torch.float64),
        )
        res = engine.run(
            x, b, jobs, bound, args, per_point=True, multiply_by_delta=multiply_by_delta
        )
        rounds += 1
        vecs = res.sums[0]
        values = torch.cat([_node_sums(vecs, x, b, jobs, multiply_by_delta), res.outputs[None]])
        h, l1, f = _broadcast(values, engine, x.device).double()
        chunk = store.add(vecs)
        result_stats["chunks"] += res.chunk_sizes
        result_stats["oom"] += res.oom_retries
        result_stats["bpp"] = result_stats["bpp"] or res.bytes_per_point
        result_stats["secs"] += res.seconds
        pos = 0
        for p in todo:
            k = len(meshes[p].pending)
            sl = slice(pos, pos + k)
            meshes[p].set_values(h[sl].tolist(), f[sl].tolist(), l1[sl].tolist())
            where[p] += [(chunk, pos + j) for j in range(k)]
            pos += k
            _advance(meshes[p], p, status, rtol, atol, max_steps, refine_fraction, round_points)
    settings = {
        "rule": rule.value,
        "rtol": rtol,
        "atol": atol,
        "max_steps": max_steps,
        "initial_panels": initial_panels,
        "refine_fraction": refine_fraction,
        "round_points": round_points,
    }
    return assemble(
        meshes,
        where,
        store,
        status,
        paths,
        x,
        split_ratio,
        multiply_by_delta,
        settings,
        rounds,
        result_stats,
        t0,
    )


def _advance(
    mesh: PathMesh,
    p: int,
    status: list[str],
    rtol: float,
    atol: float,
    max_steps: int,
    refine_fraction: float,
    round_points: int,
) -> None:
    """Decide, from the path's values, whether it is done or refined further."""
    error = abs(mesh.error())
    if error <= tolerance(mesh, rtol, atol):
        status[p] = "converged"
        return
    if error <= mesh.precision():  # float32 noise: refining would chase rounding
        status[p] = "precision"
        return
    room = (max_steps - len(mesh.alpha)) // mesh.rule.new_nodes_per_split
    if room <= 0:
        status[p] = "max_steps"
        return
    per_split = mesh.rule.new_nodes_per_split
    want = max(1, math.ceil(refine_fraction * len(mesh.panels)), -(-round_points // per_split))
    mesh.refine(min(room, want))
