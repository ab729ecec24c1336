"""One benchmark configuration in its own process: build, then run on command.

A worker is started by ``bench_ig.py`` for each configuration (Captum at one
``internal_batch_size``, medattr at one memory cap and precision, or the raw model at one
batch size). It builds the seeded model and input once, answers ``"run"`` commands over a
pipe with one timed measurement each, and keeps the process's own memory peak, so every
configuration's peak is its own and not that of whatever ran before it in the same process.

Memory is reported as an absolute peak and as the increment over the state after setup:

* CPU: peak resident set size (``VmHWM`` in ``/proc/self/status``, reset after setup) and
  ``VmRSS`` after setup;
* CUDA: ``torch.cuda.max_memory_allocated`` since the run started, and ``memory_allocated``
  before it (model weights, input and baseline).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import statistics
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WorkerSpec", "worker_main"]

KINDS = ("captum", "medattr", "raw")


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds and runs.

    Attributes
    ----------
    kind
        ``"captum"`` (``captum.attr.IntegratedGradients`` at ``internal_batch_size``),
        ``"medattr"`` (``medattr.IntegratedGradients`` with ``memory_budget=cap_bytes``) or
        ``"raw"`` (one forward and backward of the model at ``batch`` points).
    model
        ``"densenet121"`` (MONAI DenseNet121, 3D, 1 input channel, 2 classes) or ``"tiny"`` (a
        small MONAI DenseNet for smoke tests).
    size
        Edge length of the cubic input, in voxels: the input has shape ``(1, 1, size, size, size)``.
    """

    kind: str
    model: str
    size: int
    n_steps: int
    method: str
    seed: int
    device: str
    threads: int | None = None
    target: int | None = None
    internal_batch_size: int | None = None
    cap_bytes: int | None = None
    amp: str | None = None
    batch: int | None = None
    raw_repeats: int = 1
    enforce_cap: bool = False
    randomize_norm: bool = False
    save_dir: str | None = None
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- building blocks
def build_model(name: str, randomize_norm: bool = False, seed: int = 0) -> Any:
    """The benchmark model with seeded random weights (call after ``torch.manual_seed``).

    With MONAI's initialisation (no convolution biases, batch-norm statistics 0 and 1, zero
    shifts and a zero classifier bias) the network is positively homogeneous, f(a x) = a f(x),
    so the straight path from a zero baseline is linear and every quadrature is exact: the
    convergence delta then measures numerical error only (float32 or bf16 rounding).
    ``randomize_norm`` draws batch-norm statistics, affine parameters and the classifier bias
    from ``seed`` (as a trained network has them), so the delta also carries quadrature error.
    """
    import torch
    from monai.networks.nets import DenseNet, DenseNet121

    if name == "densenet121":
        model = DenseNet121(spatial_dims=3, in_channels=1, out_channels=2)
    elif name == "tiny":
        model = DenseNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=2,
            init_features=8,
            growth_rate=8,
            block_config=(2, 2),
            bn_size=2,
        )
    else:
        raise ValueError(f"model must be 'densenet121' or 'tiny', got {name!r}")
    if randomize_norm:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    c = mod.num_features
                    mod.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                    mod.running_var.copy_(torch.empty(c).uniform_(0.5, 1.5, generator=g))
                    mod.weight.copy_(torch.empty(c).uniform_(0.8, 1.2, generator=g))
                    mod.bias.copy_(0.1 * torch.randn(c, generator=g))
                elif isinstance(mod, torch.nn.Linear) and mod.bias is not None:
                    mod.bias.copy_(0.1 * torch.randn(mod.out_features, generator=g))
    return model


def build_input(size: int, seed: int) -> Any:
    """A seeded CT-like phantom of shape ``(1, 1, size, size, size)`` in [0, 1].

    A soft ellipsoidal body, a brighter spherical lesion off centre and Gaussian noise, so
    that the model's output moves visibly between the zero baseline and the input.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1.0, 1.0, size)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    body = torch.sigmoid(12.0 * (1.0 - (x / 0.8) ** 2 - (y / 0.7) ** 2 - (z / 0.9) ** 2))
    lesion = torch.exp(-((x - 0.3) ** 2 + (y + 0.2) ** 2 + z**2) / (2 * 0.12**2))
    vol = 0.4 * body + 0.5 * lesion + 0.05 * torch.randn(size, size, size, generator=g)
    return vol.clamp(0.0, 1.0).reshape(1, 1, size, size, size)


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_peak_bytes() -> int:
    try:
        return _proc_status_bytes("VmHWM")
    except OSError:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)


def _cpu_current_bytes() -> int:
    try:
        return _proc_status_bytes("VmRSS")
    except OSError:
        return _cpu_peak_bytes()


def _reset_peak() -> None:
    """Start the peak resident set (``VmHWM``) afresh from the current one (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _release_heap() -> None:
    """Give freed heap back to the OS (glibc) so idle workers stay small."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------- the worker
class _Runner:
    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        self.spec = spec
        self.torch = torch
        if spec.threads:
            torch.set_num_threads(spec.threads)
        self.device = torch.device(spec.device)
        self.cuda = self.device.type == "cuda"
        torch.manual_seed(spec.seed)
        model = build_model(spec.model, spec.randomize_norm, spec.seed)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.x = build_input(spec.size, spec.seed).to(self.device)
        self.baseline = torch.zeros_like(self.x)
        with torch.no_grad():
            out = self.model(torch.cat([self.x, self.baseline]))
        diff = (out[0] - out[1]).abs()
        self.target = int(spec.target) if spec.target is not None else int(diff.argmax())
        if self.cuda:
            torch.cuda.synchronize(self.device)
            if spec.enforce_cap and spec.cap_bytes:
                total = torch.cuda.get_device_properties(self.device).total_memory
                torch.cuda.set_per_process_memory_fraction(
                    min(1.0, spec.cap_bytes / total), self.device
                )
            self.base_bytes = torch.cuda.memory_allocated(self.device)
        else:  # setup's own peak (imports, the forward above) must not count as the run's
            _release_heap()
            _reset_peak()
            self.base_bytes = _cpu_current_bytes()
        self.runs = 0
        self.ig: Any = None
        if spec.kind == "captum":
            from captum.attr import IntegratedGradients as CaptumIG

            self.ig = CaptumIG(self.model)
        elif spec.kind == "medattr":
            from medattr import IntegratedGradients as MedattrIG

            self.ig = MedattrIG(self.model, progress=False)
        elif spec.kind != "raw":
            raise ValueError(f"kind must be one of {KINDS}, got {spec.kind!r}")

    def info(self) -> dict[str, Any]:
        torch = self.torch
        out: dict[str, Any] = {
            "target": self.target,
            "base_bytes": self.base_bytes,
            "threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            out.update(
                gpu_name=props.name,
                gpu_total_bytes=int(props.total_memory),
                cuda_version=torch.version.cuda,
            )
        return out

    def _sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def _begin(self) -> int:
        if self.cuda:
            self._sync()
            self.torch.cuda.reset_peak_memory_stats(self.device)
            return int(self.torch.cuda.memory_allocated(self.device))
        return self.base_bytes

    def _peaks(self, start_bytes: int) -> dict[str, int]:
        if self.cuda:
            self._sync()
            peak = int(self.torch.cuda.max_memory_allocated(self.device))
            return {
                "peak_bytes": peak,
                "peak_increment_bytes": peak - start_bytes,
                "peak_reserved_bytes": int(self.torch.cuda.max_memory_reserved(self.device)),
            }
        peak = _cpu_peak_bytes()
        return {"peak_bytes": peak, "peak_increment_bytes": peak - self.base_bytes}

    def run(self) -> dict[str, Any]:
        spec = self.spec
        self.runs += 1
        if spec.kind == "raw":
            return self._run_raw()
        start_bytes = self._begin()
        c0 = time.process_time()
        t0 = time.perf_counter()
        if spec.kind == "captum":
            attr, delta = self.ig.attribute(
                self.x,
                baselines=self.baseline,
                target=self.target,
                n_steps=spec.n_steps,
                method=spec.method,
                internal_batch_size=spec.internal_batch_size,
                return_convergence_delta=True,
            )
            self._sync()
            seconds = time.perf_counter() - t0
            cpu_seconds = time.process_time() - c0
            with self.torch.no_grad():
                f = self.model(self.torch.cat([self.x, self.baseline]))[:, self.target].double()
            result: dict[str, Any] = {
                "delta": float(delta.double().sum()),
                "f_input": float(f[0]),
                "f_baseline": float(f[1]),
            }
        else:
            exp = self.ig.explain(
                self.x,
                baselines=self.baseline,
                target=self.target,
                n_steps=spec.n_steps,
                method=spec.method,
                internal_batch_size="auto",
                memory_budget=spec.cap_bytes,
                amp=spec.amp,
            )
            self._sync()
            seconds = time.perf_counter() - t0
            cpu_seconds = time.process_time() - c0
            attr = exp.attributions
            result = {
                "delta": float(exp.convergence_delta.sum()),
                "f_input": float(exp.f_input[0]),
                "f_baseline": float(exp.f_baseline[0]),
                "chunk_sizes": list(exp.chunk_sizes),
                "n_evaluations": int(exp.n_evaluations),
                "oom_retries": int(exp.oom_retries),
                "bytes_per_point": exp.extras.get("bytes_per_point"),
                "reported_seconds": float(exp.seconds),
            }
        result.update(self._peaks(start_bytes))
        result["seconds"] = seconds
        result["cpu_seconds"] = cpu_seconds  # CPU time of all threads, for context
        result["attribution_sum"] = float(attr.double().sum())
        if spec.save_dir and self.runs == 1:
            import numpy as np

            path = os.path.join(spec.save_dir, f"{spec.label or spec.kind}.npy")
            np.save(path, attr.detach().float().cpu().numpy())
            result["attribution_file"] = path
        del attr
        self._release()
        return result

    def _run_raw(self) -> dict[str, Any]:
        """Forward and backward of the target sum at ``batch`` path points, timed."""
        torch = self.torch
        spec = self.spec
        n = int(spec.batch or 1)
        alphas = torch.linspace(0.0, 1.0, n + 2, device=self.device)[1:-1].view(-1, 1, 1, 1, 1)
        points = (self.baseline + alphas * (self.x - self.baseline)).detach()
        repeats = max(1, spec.raw_repeats) + (1 if self.runs == 1 else 0)  # first call warms up
        start_bytes = self._begin()
        times, cpu_times = [], []
        for _ in range(repeats):
            pts = points.clone().requires_grad_(True)
            ctx: Any = contextlib.nullcontext()
            if spec.amp:
                dtype = torch.bfloat16 if spec.amp == "bf16" else torch.float16
                ctx = torch.autocast(device_type=self.device.type, dtype=dtype)
            self._sync()
            c0 = time.process_time()
            t0 = time.perf_counter()
            with ctx:
                out = self.model(pts)
            (grad,) = torch.autograd.grad(out[:, self.target].float().sum(), pts)
            self._sync()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            del out, grad, pts
        if self.runs == 1 and len(times) > 1:
            times, cpu_times = times[1:], cpu_times[1:]
        result: dict[str, Any] = {
            "seconds": statistics.median(times),
            "samples": times,
            "per_point_seconds": statistics.median(times) / n,
            "cpu_per_point_seconds": statistics.median(cpu_times) / n,
            "batch": n,
        }
        result.update(self._peaks(start_bytes))
        self._release()
        return result

    def _release(self) -> None:
        if self.cuda:
            self.torch.cuda.empty_cache()
        else:
            _release_heap()


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "outofmemory" in text


def worker_main(conn: Any, spec_dict: dict[str, Any]) -> None:
    """Process entry point: build from ``spec_dict``, then serve ``run``/``stop`` commands.

    Every reply is a dict with ``status`` ``"ready"``, ``"ok"`` or ``"error"``; an error reply
    carries ``error`` (one line), ``oom`` (bool) and ``traceback``.
    """
    try:
        spec = WorkerSpec(**spec_dict)
        runner = _Runner(spec)
        conn.send({"status": "ready", "info": runner.info()})
    except BaseException as exc:  # report and leave: the parent decides what to do
        conn.send(
            {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "oom": _is_oom(exc),
                "traceback": traceback.format_exc(),
            }
        )
        conn.close()
        return
    while True:
        try:
            cmd = conn.recv()
        except EOFError:
            break
        if not isinstance(cmd, dict) or cmd.get("cmd") == "stop":
            break
        try:
            res = runner.run()
            if not all(
                math.isfinite(float(v))
                for k, v in res.items()
                if k in ("seconds", "delta") and v is not None
            ):
                raise FloatingPointError(f"non-finite result: {res}")
            conn.send({"status": "ok", "result": res})
        except BaseException as exc:
            runner._release()
            conn.send(
                {
                    "status": "error",
                    "error": f"{type(exc).__name__}: {exc}",
                    "oom": _is_oom(exc),
                    "traceback": traceback.format_exc(),
                }
            )
    conn.close()
