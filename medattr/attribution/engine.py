"""The path engine: gradients at many points between baselines and inputs, in planned chunks.

Every path method (IG, Split IG, Expected Gradients, SmoothGrad over IG) reduces to one
computation: for a list of *jobs* ``(input i, baseline r, alpha, weight)`` accumulate

    acc[i] += weight * (x_i - b_r) * grad f(b_r + alpha (x_i - b_r))

for the target scalar ``f``. The engine builds the points chunk by chunk (never all at once),
runs forward and backward under optional autocast, accumulates in float32, and records the
target value at each point. The parameters of an ``nn.Module`` model are frozen for the run
(gradients are needed for the input only; weight gradients would double the backward cost).
The chunk size is planned from memory: the first chunk is small and measured (CUDA: peak
allocator bytes; CPU: the activations autograd saves), the rest are as large as the free memory
or the budget allows; an out-of-memory error halves the chunk and the chunk is retried. The
result does not depend on the chunk size beyond float rounding.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from medattr._torch import frozen_parameters
from medattr.attribution._memory import (
    available_bytes,
    balanced_chunk,
    footprints,
    is_out_of_memory,
    parse_bytes,
    saved_activation_bytes,
)
from medattr.attribution.jobs import (
    AMP,
    EngineResult,
    PathJobs,
    normalize_args,
    select_args,
)
from medattr.options import parse_option
from medattr.targets import BoundTarget

__all__ = ["AMP", "EngineResult", "PathEngine", "PathJobs", "normalize_args"]

BucketFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``(sample (n,), alpha (n,), target values (n,)) -> bucket index (n,)`` for a chunk."""


class PathEngine:
    """Chunked, memory-planned evaluation of gradients along paths.

    Parameters
    ----------
    forward_func
        The model (any callable ``f(x, *additional_forward_args)``).
    internal_batch_size
        Points per forward/backward pass: an int, or ``"auto"`` to plan from memory.
    amp
        ``None`` (float32), ``"bf16"`` or ``"fp16"`` autocast. Gradients are taken with respect
        to float32 points and summed in float32 either way; fp16 uses dynamic loss scaling.
    memory_budget
        Upper bound on memory (int or ``"8GB"``). On CUDA it caps the device memory PyTorch
        has allocated, the model and inputs included (chunks are planned so that allocated
        memory stays below it); on CPU, where other allocations of the process cannot be
        seen, it caps the working memory of the path-point chunks. Default: free device memory
        (CUDA) or half the available RAM (CPU). The planner uses 80 % (CUDA) or 90 % (CPU) of
        what is available, and spreads the points evenly over the chunks it needs.
    max_chunk
        Largest chunk ``"auto"`` may choose (default 512 on CUDA, 32 on CPU, where larger
        batches stop paying off).
    progress
        Show a tqdm bar on stderr: ``True``, ``False`` or ``None`` (only when stderr is a
        terminal). The bar appears only if the run lasts more than two seconds.
    distributed
        Split the path points of one call across the ranks of the initialised
        ``torch.distributed`` process group (e.g. under ``torchrun``): rank ``r`` evaluates points
        ``r, r + W, r + 2W, ...`` and the sums are all-reduced, so every rank returns the full
        result. For one very large volume on several GPUs.
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        *,
        internal_batch_size: int | str | None = "auto",
        amp: str | AMP | None = None,
        memory_budget: int | str | None = None,
        max_chunk: int | None = None,
        progress: bool | None = None,
        description: str = "attribution",
        distributed: bool = False,
    ) -> None:
        if not callable(forward_func):
            raise TypeError(f"forward_func must be callable, got {type(forward_func).__name__}")
        if internal_batch_size is None:
            internal_batch_size = "auto"
        if isinstance(internal_batch_size, str):
            if internal_batch_size != "auto":
                raise ValueError(
                    f"internal_batch_size must be a positive int or 'auto', "
                    f"got {internal_batch_size!r}"
                )
        elif (
            isinstance(internal_batch_size, bool)
            or not isinstance(internal_batch_size, int)
            or internal_batch_size < 1
        ):
            raise ValueError(
                f"internal_batch_size must be a positive int or 'auto', got {internal_batch_size!r}"
            )
        if max_chunk is not None and max_chunk < 1:
            raise ValueError(f"max_chunk must be >= 1, got {max_chunk}")
        self.forward_func = forward_func
        self.internal_batch_size = internal_batch_size
        self.amp = None if amp is None else parse_option(AMP, amp, "amp")
        self.memory_budget = parse_bytes(memory_budget)
        self.max_chunk = max_chunk
        self.progress = progress
        self.description = description
        self.distributed = bool(distributed)

    # ------------------------------------------------------------------ helpers
    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp.dtype)

    def _cap(self, device: torch.device) -> int:
        if self.max_chunk is not None:
            return self.max_chunk
        return 512 if device.type == "cuda" else 32

    def _plan(self, bytes_per_point: int, device: torch.device, cap: int) -> int:
        """The most points per chunk that fit (the run loop spreads them evenly)."""
        fraction = 0.8 if device.type == "cuda" else 0.9
        avail = available_bytes(device, self.memory_budget)
        return max(1, min(cap, int(fraction * avail) // max(bytes_per_point, 1)))

    def _progress_bar(self, total: int) -> Any:
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            desc=self.description,
            unit="pt",
            file=sys.stderr,
            delay=2.0,
            dynamic_ncols=True,
            leave=False,
        )

    def forward(self, x: Tensor, args: tuple[Any, ...] = ()) -> Tensor:
        """Raw model output at ``x`` (float32 precision, no autocast, no grad).

        Splits the batch and retries on out-of-memory.
        """
        batch = x.shape[0]
        size = batch
        outs: list[Tensor] = []
        pos = 0
        while pos < batch:
            m = min(size, batch - pos)
            idx = torch.arange(pos, pos + m, device=x.device)
            try:
                with torch.no_grad():
                    out = self.forward_func(x[pos : pos + m], *select_args(args, idx, batch))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if m == 1:
                    raise MemoryError(
                        "out of memory evaluating the model on a single input; it does not fit "
                        "at this input size on this device"
                    ) from exc
                _empty_cache(x.device)
                size = max(1, m // 2)
                continue
            if not isinstance(out, Tensor):
                raise TypeError(f"the model must return a tensor, it returned {type(out).__name__}")
            outs.append(out)
            pos += m
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def target_values(
        self,
        points: Tensor,
        sample: Tensor,
        bound: BoundTarget,
        args: tuple[Any, ...] = (),
        batch: int | None = None,
        chunk: int | None = None,
    ) -> Tensor:
        """Target value (float64, CPU) at each row of ``points`` in float32, chunked."""
        n = points.shape[0]
        batch = batch if batch is not None else n
        size = chunk or (
            self.internal_batch_size if isinstance(self.internal_batch_size, int) else 16
        )
        vals = []
        pos = 0
        while pos < n:
            m = min(size, n - pos)
            idx = sample[pos : pos + m]
            try:
                out = self.forward(points[pos : pos + m], select_args(args, idx, batch))
                vals.append(bound(out, idx.to(out.device)).detach().double().cpu())
            except Exception as exc:
                if is_out_of_memory(exc) and m > 1:
                    size = max(1, m // 2)
                    _empty_cache(points.device)
                    continue
                raise
            pos += m
        return torch.cat(vals) if vals else torch.zeros(0, dtype=torch.float64)

    # --------------------------------------------------------------------- core
    def run(
        self,
        inputs: Tensor,
        baselines: Tensor,
        jobs: PathJobs,
        bound: BoundTarget,
        additional_forward_args: Any = None,
        *,
        buckets: int = 1,
        bucket_fn: BucketFn | None = None,
        multiply_by_delta: bool = True,
        per_point: bool = False,
    ) -> EngineResult:
        """Accumulate weighted ``(x - b) * grad`` over ``jobs``.

        Parameters
        ----------
        inputs
            Tensor of shape ``(B, C, *spatial)``.
        baselines
            Baseline bank ``(R, C, *spatial)``; ``jobs.reference`` indexes its rows.
        jobs
            The path points.
        bound
            A bound target (see :func:`medattr.targets.bind_target`).
        buckets, bucket_fn
            Accumulate into several buckets (Split IG: left and right of the saturation point);
            ``bucket_fn`` assigns each point of a chunk after its target value is known, so the
            jobs must be ordered by alpha for each input when it depends on the path order.
        multiply_by_delta
            Multiply each gradient by ``x - b`` (path attribution); ``False`` sums weighted
            gradients only.
        per_point
            Keep each job's weighted contribution in its own row instead of summing by input:
            ``sums`` is then ``(1, M, *input_shape[1:])`` (row ``j`` is job ``j``). For methods
            that re-weight points after seeing them (adaptive quadrature); no buckets.
        """
        if per_point and (buckets != 1 or bucket_fn is not None):
            raise ValueError("per_point=True keeps one row per job; it takes no buckets")
        if self.distributed:
            return self._run_distributed(
                inputs,
                baselines,
                jobs,
                bound,
                additional_forward_args,
                buckets=buckets,
                bucket_fn=bucket_fn,
                multiply_by_delta=multiply_by_delta,
                per_point=per_point,
            )
        t0 = time.perf_counter()
        args = normalize_args(additional_forward_args)
        if inputs.shape[1:] != baselines.shape[1:]:
            raise ValueError(
                f"baseline bank shape {tuple(baselines.shape)} does not match inputs "
                f"{tuple(inputs.shape)}"
            )
        device = inputs.device
        batch = inputs.shape[0]
        m_total = len(jobs)
        rows = (m_total, *inputs.shape[1:]) if per_point else tuple(inputs.shape)
        sums = torch.zeros((buckets, *rows), dtype=torch.float32, device=device)
        outputs = torch.empty(m_total, dtype=torch.float64)
        x_all = inputs.detach().float()
        b_all = baselines.detach().float().to(device)
        result = EngineResult(sums=sums, outputs=outputs)

        fixed = self.internal_batch_size if isinstance(self.internal_batch_size, int) else None
        cap = self._cap(device)
        size = min(fixed or min(2, cap), max(m_total, 1))
        planned = fixed is not None
        key = (tuple(inputs.shape[1:]), str(inputs.dtype), str(device), str(self.amp))
        known = None if planned else footprints(self.forward_func).get(key)
        if known is not None:
            result.bytes_per_point = known
            size = self._plan(known, device, cap)
            planned = True
        scale = 2.0**12 if self.amp is AMP.FP16 else 1.0
        bar = self._progress_bar(m_total)
        pos = 0
        freeze = frozen_parameters(self.forward_func)
        freeze.__enter__()
        try:
            while pos < m_total:
                rest = m_total - pos
                # planned chunks: re-balance every step (16 points at <= 3: 3 3 3 3 2 2, no
                # 1-point tail); a fixed internal_batch_size is kept as given, like Captum
                n = balanced_chunk(size, rest) if planned and fixed is None else min(size, rest)
                sl = slice(pos, pos + n)
                try:
                    grads, vals, nbytes = self._chunk(
                        x_all, b_all, jobs, sl, bound, args, batch, scale, measure=not planned
                    )
                except _NonFinite:
                    if self.amp is AMP.FP16 and scale > 1.0:
                        scale /= 8.0
                        continue
                    raise FloatingPointError(
                        "the model produced non-finite gradients along the path"
                        + (" under fp16 autocast; try amp='bf16' or None" if self.amp else "")
                    ) from None
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    if n == 1:
                        raise MemoryError(
                            "out of memory with a single path point per chunk; the model does not "
                            "fit at this input size (try amp='bf16', a smaller input, or another "
                            "device)"
                        ) from exc
                    _empty_cache(device)
                    size = max(1, n // 2)
                    result.oom_retries += 1
                    planned = True
                    continue
                idx = jobs.sample[sl].to(device)
                ref = jobs.reference[sl].to(device)
                w = jobs.weight[sl].to(device=device, dtype=torch.float32)
                contrib = grads
                if multiply_by_delta:
                    contrib.mul_(x_all.index_select(0, idx) - b_all.index_select(0, ref))
                contrib.mul_(w.view(-1, *([1] * (grads.dim() - 1))))
                if per_point:
                    sums[0, sl] = contrib
                elif bucket_fn is None:
                    sums[0].index_add_(0, idx, contrib)
                else:
                    bk = bucket_fn(jobs.sample[sl], jobs.alpha[sl], vals).to(device)
                    flat = sums.view(buckets * batch, *inputs.shape[1:])
                    flat.index_add_(0, bk * batch + idx, contrib)
                outputs[sl] = vals
                result.chunk_sizes.append(n)
                pos += n
                if bar is not None:
                    bar.update(n)
                if not planned:
                    planned = True
                    if nbytes is not None and nbytes > 0:
                        result.bytes_per_point = math.ceil(nbytes / n)
                        footprints(self.forward_func)[key] = result.bytes_per_point
                        size = self._plan(result.bytes_per_point, device, cap)
                    else:
                        size = cap
        finally:
            freeze.__exit__(None, None, None)
            if bar is not None:
                bar.close()
        result.seconds = time.perf_counter() - t0
        return result

    def _run_distributed(
        self,
        inputs: Tensor,
        baselines: Tensor,
        jobs: PathJobs,
        bound: BoundTarget,
        additional_forward_args: Any,
        *,
        buckets: int,
        bucket_fn: BucketFn | None,
        multiply_by_delta: bool,
        per_point: bool = False,
    ) -> EngineResult:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "distributed=True needs an initialised torch.distributed process group "
                "(run under torchrun, or call torch.distributed.init_process_group)"
            )
        if bucket_fn is not None:
            raise NotImplementedError(
                "this method needs the whole path in order on one process (Split IG); run it "
                "without distributed=True"
            )
        t0 = time.perf_counter()
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = torch.arange(rank, len(jobs), world)
        local = PathJobs(
            jobs.sample[mine], jobs.reference[mine], jobs.alpha[mine], jobs.weight[mine]
        )
        self.distributed = False
        try:
            result = self.run(
                inputs,
                baselines,
                local,
                bound,
                additional_forward_args,
                buckets=buckets,
                multiply_by_delta=multiply_by_delta,
                per_point=per_point,
            )
        finally:
            self.distributed = True
        sums = result.sums.contiguous()
        if per_point:  # each rank holds its own rows; the others stay zero (x + 0 is exact)
            full = sums.new_zeros((1, len(jobs), *sums.shape[2:]))
            full[0].index_copy_(0, mine.to(sums.device), sums[0])
            sums = full
        dist.all_reduce(sums)
        outputs = torch.zeros(len(jobs), dtype=torch.float64, device=sums.device)
        outputs[mine.to(sums.device)] = result.outputs.to(sums.device)
        dist.all_reduce(outputs)
        result.sums = sums
        result.outputs = outputs.cpu()
        result.seconds = time.perf_counter() - t0
        return result

    def _chunk(
        self,
        x_all: Tensor,
        b_all: Tensor,
        jobs: PathJobs,
        sl: slice,
        bound: BoundTarget,
        args: tuple[Any, ...],
        batch: int,
        scale: float,
        measure: bool,
    ) -> tuple[Tensor, Tensor, int | None]:
        device = x_all.device
        idx = jobs.sample[sl].to(device)
        ref = jobs.reference[sl].to(device)
        n = idx.numel()
        a = (
            jobs.alpha[sl]
            .to(device=device, dtype=torch.float32)
            .view(-1, *([1] * (x_all.dim() - 1)))
        )
        b = b_all.index_select(0, ref)
        points = b.add_(a * (x_all.index_select(0, idx) - b)).requires_grad_(True)
        chunk_args = select_args(args, idx, batch)
        windowed = _windowed_region(self.forward_func, bound, idx, chunk_args)
        if windowed is not None:  # a linear target of a sliding-window model: window by window
            with self._autocast(device):
                vals, grads = self.forward_func.value_and_grad(  # type: ignore[attr-defined]
                    points.detach(), windowed[0], windowed[1], scale
                )
            if not bool(torch.isfinite(grads).all()):
                raise _NonFinite()
            # the windows' activations are one window batch whatever the chunk: per point, the
            # point, its padded copy, its gradient and the accumulators
            nbytes = 6 * points[0].numel() * points.element_size() * n if measure else None
            return grads.float(), vals.detach().double().cpu(), nbytes
        nbytes = None
        if measure and device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        counter = (
            saved_activation_bytes(n)
            if measure and device.type != "cuda"
            else contextlib.nullcontext([0])
        )
        with counter as saved, self._autocast(device):
            out = self.forward_func(points, *chunk_args)
            if not isinstance(out, Tensor):
                raise TypeError(f"the model must return a tensor, it returned {type(out).__name__}")
            vals = bound(out, idx)
        total = vals.float().sum()
        (grads,) = torch.autograd.grad(total * scale if scale != 1.0 else total, points)
        if scale != 1.0:
            grads = grads / scale
        if not bool(torch.isfinite(grads).all()):
            raise _NonFinite()
        if measure:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                nbytes = torch.cuda.max_memory_allocated(device) - base
            else:
                point_bytes = points.numel() * points.element_size()
                nbytes = int(saved[0]) + 4 * point_bytes
        return grads.float(), vals.detach().double().cpu(), nbytes


def _windowed_region(
    forward_func: Any, bound: Any, sample: Tensor, args: tuple[Any, ...]
) -> tuple[int, Tensor] | None:
    """``(channel, weights)`` when the model computes window-wise gradients and the target is
    linear in its output (see :class:`medattr.models.inferers.SlidingWindowModel`)."""
    if args or not hasattr(forward_func, "value_and_grad"):
        return None
    linear = getattr(bound, "linear", None)
    return linear(sample) if callable(linear) else None


class _NonFinite(Exception):
    pass


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
