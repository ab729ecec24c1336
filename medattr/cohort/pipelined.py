"""A cohort that keeps the device busy: while one study is attributed, the next ones are read
and prepared in background threads and the previous one is written."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medattr.cohort.datalist import CohortEntry
    from medattr.cohort.runner import CohortRunner

__all__ = ["run_pipelined"]


def run_pipelined(
    runner: CohortRunner,
    entries: Sequence[CohortEntry],
    rank: int,
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Process ``entries`` with ``runner.prefetch`` studies read ahead and one write behind.

    Complete studies are reported skipped first; every other study's row is reported once its
    outputs are written. A failure anywhere (reading, attribution, writing) marks that study
    failed and the others go on, as in the one-at-a-time loop.
    """
    rows = [runner.check(e, rank) for e in entries]
    for row in rows:
        if row["status"] == "skipped":
            report(row)
    work = iter([k for k, row in enumerate(rows) if row["status"] != "skipped"])
    started: dict[int, float] = {}
    with (
        ThreadPoolExecutor(runner.prefetch, thread_name_prefix="medattr-read") as readers,
        ThreadPoolExecutor(1, thread_name_prefix="medattr-write") as writer,
    ):
        reads: deque[tuple[int, Future[Any]]] = deque()

        def read_more() -> None:
            while len(reads) < runner.prefetch:
                k = next(work, None)
                if k is None:
                    return
                started[k] = time.perf_counter()
                reads.append((k, readers.submit(runner.load, entries[k])))

        def settle(k: int, future: Future[Any] | None, error: BaseException | None) -> None:
            row = rows[k]
            try:
                if error is not None:
                    raise error
                if future is not None:
                    future.result()
                row["status"] = "done"
            except Exception as exc:
                runner.fail(row, entries[k], exc)
            row["seconds"] = round(time.perf_counter() - started[k], 3)
            report(row)

        writing: tuple[int, Future[Any]] | None = None
        read_more()
        while reads:
            k, loading = reads.popleft()
            read_more()
            try:
                result = runner.compute(loading.result())
            except Exception as exc:  # this study failed; the writes of the others go on
                if writing is not None:
                    settle(*writing, None)
                    writing = None
                settle(k, None, exc)
                continue
            if writing is not None:  # the previous study's outputs: written while we computed
                settle(*writing, None)
                writing = None
            if runner._writes:
                writing = (k, writer.submit(runner._write, entries[k], result, rows[k], started[k]))
            else:
                from medattr.cohort.runner import _numbers

                rows[k].update(_numbers(result))
                settle(k, None, None)
        if writing is not None:
            settle(*writing, None)
