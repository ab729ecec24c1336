"""Worker processes for ``bench_ig.py``, memory caps, and a description of the machine."""

from __future__ import annotations

import argparse
import os
import platform
import re
from typing import Any

from _ig_worker import WorkerSpec, worker_main

__all__ = [
    "BenchmarkError",
    "Worker",
    "cap_label",
    "load_average",
    "machine_info",
    "parse_cap",
    "short_error",
]

_UNITS = {"": 1, "b": 1, "kb": 2**10, "kib": 2**10, "mb": 2**20, "mib": 2**20}
_UNITS.update({"gb": 2**30, "gib": 2**30, "tb": 2**40, "tib": 2**40})


class BenchmarkError(RuntimeError):
    """A worker failed in a way the benchmark cannot report as a table entry."""


def parse_cap(text: str) -> int | None:
    """``"2GB" -> 2 * 2**30`` (binary units, as medattr's ``memory_budget``); ``"none" -> None``.

    Examples
    --------
    >>> parse_cap("512MB"), parse_cap("none")
    (536870912, None)
    """
    if text.strip().lower() in ("none", "inf", "unlimited"):
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"a memory cap must look like '512MB', '2GB' or 'none'; got {text!r}"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def cap_label(cap: int | None) -> str:
    """The inverse of :func:`parse_cap` for display: ``2 * 2**30 -> '2GB'``."""
    if cap is None:
        return "none"
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if cap >= scale and cap % (scale // 4) == 0:
            return f"{cap / scale:g}{unit}"
    return f"{cap}B"


def short_error(reply: dict[str, Any]) -> str:
    """``"OOM"`` for out-of-memory failures, ``"error"`` otherwise (for table cells)."""
    return "OOM" if reply.get("oom") else "error"


class Worker:
    """One configuration in its own process (see ``_ig_worker.py``); ``run()`` measures once.

    Successful measurements accumulate in ``samples``; the first failure is kept in ``error``
    and answers every later ``run()``.
    """

    def __init__(self, ctx: Any, spec: WorkerSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, spec.to_dict()), daemon=True)
        self.proc.start()
        child.close()
        self.samples: list[dict[str, Any]] = []
        reply = self._receive()
        self.error: dict[str, Any] | None = None if reply["status"] == "ready" else reply
        self.info: dict[str, Any] = reply.get("info", {})

    def _receive(self) -> dict[str, Any]:
        if not self.conn.poll(self.timeout):
            self.close()
            raise BenchmarkError(f"worker {self.spec.label} gave no answer in {self.timeout:.0f} s")
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join(10)
            code = self.proc.exitcode
            return {
                "status": "error",
                "error": f"the worker process died (exit code {code}; killed for memory?)",
                "oom": code is not None and code < 0,
            }

    def run(self) -> dict[str, Any]:
        """One measurement: the result dict, or the error reply (``status == "error"``)."""
        if self.error is not None:
            return self.error
        self.conn.send({"cmd": "run"})
        reply = self._receive()
        if reply["status"] != "ok":
            self.error = reply
            return reply
        self.samples.append(reply["result"])
        return reply["result"]

    def close(self) -> None:
        """Stop the process (politely, then by ``terminate``) and close the pipe."""
        if self.proc.is_alive():
            try:
                self.conn.send({"cmd": "stop"})
            except (BrokenPipeError, OSError):
                pass
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5)
        self.conn.close()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for judging how noisy the timings are."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, cores, library versions (imports only: this process does no torch work)."""
    import captum
    import monai
    import torch

    import medattr

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "captum": captum.__version__,
        "medattr": medattr.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_start": load_average(),
    }
