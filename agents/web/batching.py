"""Coalesce concurrent single triage requests into one batch call on a dedicated worker thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Requests that arrive while a batch runs are taken together next time (no added wait by default).

    The batch function runs on `workers` threads of its own, so CPU-heavy model code never blocks the event loop
    and never competes with itself beyond the cores it was given.
    """

    def __init__(
        self, fn: Callable[[list[T]], list[R]], max_batch: int = 32, max_wait: float = 0.0, workers: int = 1
    ) -> None:
        self.fn, self.max_batch, self.max_wait, self.workers = fn, max_batch, max_wait, workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="triage")
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.items = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, item: T) -> R:
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run other model work on the same threads (big batches go here, chunk by chunk)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _collect(self) -> list[tuple[T, asyncio.Future[R]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [(item, fut) for item, fut in batch if not fut.done()]

    async def _worker(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            self.batches += 1
            self.items += len(batch)
            try:
                results = await self.run(self.fn, [item for item, _ in batch])
            except Exception as exc:  # every caller of this batch sees the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
