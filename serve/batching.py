"""Greedy dynamic batching for the Serve replica (pure asyncio; tested without Ray).

:class:`GreedyBatcher` runs one batch at a time and cuts the next batch only when the
previous one has finished: under load the next batch holds everything that queued while
the last one computed (up to ``max_batch_size``), and at low load a lone request waits at
most ``wait_s`` for company (``0``: it runs at once).

Why not ``@serve.batch``: in Ray 2.60 its loop cuts a batch every ``batch_wait_timeout_s``
and only then queues it behind ``max_concurrent_batches``
(``_BatchQueue._process_batches``), so while one forward computes in a worker thread the
requests arriving meanwhile are split into many small batches (mean batch size ~1.2 at 16
concurrent clients in ``tests/benchmarks/bench_serve.py``), and a short wait makes the
split finer. Cutting the batch when the model is free is what makes batching pay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mixhic.core.config import check

__all__ = ["GreedyBatcher"]

log = logging.getLogger(__name__)


class GreedyBatcher:
    """Batches single items for ``fn(items) -> results`` (same length and order).

    ``fn`` runs in a worker thread (the event loop keeps accepting requests meanwhile).
    A result that is an ``Exception`` is raised to that item's caller only; an exception
    raised by ``fn`` itself goes to every caller of the batch.
    """

    def __init__(self, fn: Callable[[list], list], max_batch_size: int = 16,
                 wait_s: float = 0.0) -> None:
        check(max_batch_size >= 1, "max_batch_size", f"must be >= 1, got {max_batch_size}")
        check(wait_s >= 0, "wait_s", f"must be >= 0, got {wait_s}")
        self.fn, self.max_batch_size, self.wait_s = fn, int(max_batch_size), float(wait_s)
        self.batches = 0  # batches run
        self.items = 0  # items served
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """The result of ``item`` once its batch has run."""
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._loop())
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        out = await fut
        if isinstance(out, Exception):
            raise out
        return out

    async def _next_batch(self) -> list:
        q = self._queue
        batch = [await q.get()]
        while len(batch) < self.max_batch_size and not q.empty():
            batch.append(q.get_nowait())
        if len(batch) < self.max_batch_size and self.wait_s > 0:
            deadline = asyncio.get_running_loop().time() + self.wait_s
            while len(batch) < self.max_batch_size:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(q.get(), left))
                except asyncio.TimeoutError:
                    break
        return batch

    async def _loop(self) -> None:
        while True:
            batch = await self._next_batch()
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                results = await asyncio.to_thread(self.fn, [item for item, _ in live])
                if len(results) != len(live):
                    raise RuntimeError(f"batch function returned {len(results)} results "
                                       f"for {len(live)} items")
            except Exception as exc:  # noqa: BLE001 - handed to the callers
                log.exception("batch of %d failed", len(live))
                results = [exc] * len(live)
            self.batches += 1
            self.items += len(live)
            for (_, fut), out in zip(live, results):
                if not fut.done():
                    fut.set_result(out)
