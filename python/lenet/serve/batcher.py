"""Dynamic batching: the rows of concurrent requests gathered into one engine call.

A request waits at most ``max_wait_s`` after the oldest queued request arrived, or until
``max_batch`` rows are queued, whichever comes first; then one engine call runs on the
concatenated rows (in a thread of its own: the engine releases the GIL, so the event loop keeps
reading requests meanwhile) and each request gets back exactly its own rows. A second call may
run beside it when a full batch is waiting (``MAX_CALLS``). Only rows of one dtype and image
shape share a call (normalized float32 and raw uint8 pixels are not mixed). What the engine
returns is checked against the rows sent: a wrong row count fails the batch loudly rather than
handing one caller another's answers. When a batch call fails, each request in it is run alone,
so an error fails only the request at fault.

The queue is bounded in rows: a request that would pass ``max_queue`` rows is refused at once
with a 503 and Retry-After, so a flood costs memory up to that bound, never more.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import ServeError, bad_input, busy


# Engine calls at once. One spreads its batch over every core, but between two calls (the hand-off
# to the engine's thread and back, answering the requests) the cores would idle: a second call
# starts when a full batch is waiting, and runs on its own thread (the engine's pool serves one
# call at a time; another caller computes on its own thread).
MAX_CALLS = 2


@dataclass
class Pending:
    rows: np.ndarray
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def kind(self) -> tuple:
        """What rows must share to go into one engine call: dtype and image shape (float32
        [1,32,32] inputs and uint8 [28,28] pixels cannot be concatenated)."""
        return self.rows.dtype, self.rows.shape[1:]


@dataclass
class BatchStats:
    """What one engine call did, for the metrics."""
    rows: int
    requests: int
    seconds: float


class Batcher:
    def __init__(self, run: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 256,
                 max_wait_s: float = 0.002, max_queue: int = 8192,
                 on_batch: Callable[[BatchStats], None] | None = None, name: str = "model") -> None:
        if max_batch < 1 or max_queue < max_batch or max_wait_s < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= max_batch, max_wait_s >= 0; got "
                             f"{max_batch}, {max_queue}, {max_wait_s}")
        self.run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self.name = name
        self.queue: deque[Pending] = deque()
        self.queued_rows = 0
        self._wakeup = asyncio.Event()  # a request arrived, or an engine call finished
        self._worker: asyncio.Task | None = None
        self._closing = False
        self._threads = ThreadPoolExecutor(MAX_CALLS, thread_name_prefix=f"engine-{name}")

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """The engine's output rows for ``rows`` (float32 [N,1,S,S] or uint8 [N,H,W]), batched
        with others' of the same dtype and image shape."""
        n = len(rows)
        if n > self.max_queue:
            raise ServeError(413, f"{n} images in one request; the limit is {self.max_queue}")
        if self._closing:
            raise ServeError(503, "the server is shutting down")
        if self.queued_rows + n > self.max_queue:
            raise busy(f"model {self.name!r} has {self.queued_rows} images queued (limit "
                       f"{self.max_queue}); retry shortly")
        if self._worker is None:  # started in the loop that serves (uvicorn's, or Ray's)
            self._worker = asyncio.get_running_loop().create_task(self._work())
        pending = Pending(rows, asyncio.get_running_loop().create_future())
        self.queue.append(pending)
        self.queued_rows += n
        self._wakeup.set()
        return await pending.future

    async def close(self) -> None:
        """Refuse new work, finish what is queued, stop the worker."""
        self._closing = True
        if self._worker is not None:
            self._wakeup.set()
            await self._worker  # returns once the queue is empty and the last batch answered
        self._threads.shutdown(wait=True)

    async def _work(self) -> None:
        running: set[asyncio.Task] = set()

        def finished(task: asyncio.Task) -> None:
            running.discard(task)
            self._wakeup.set()

        while True:
            self._wakeup.clear()
            if not self.queue:
                if self._closing and not running:
                    return
                await self._wakeup.wait()
                continue
            # A second call only for a full batch: a partial one waits for the running call,
            # and grows meanwhile.
            if len(running) >= MAX_CALLS or (running and self.queued_rows < self.max_batch):
                await self._wakeup.wait()
                continue
            if not running:  # the engine is idle: the oldest request waits a little for company
                deadline = self.queue[0].arrived + self.max_wait_s
                while self.queued_rows < self.max_batch and (remaining := deadline - time.perf_counter()) > 0:
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except asyncio.TimeoutError:
                        break
            task = asyncio.get_running_loop().create_task(self._call(self._take()))
            running.add(task)
            task.add_done_callback(finished)

    async def _call(self, batch: list[Pending]) -> None:
        """One engine call for ``batch``, in the engine's threads; every request in it answered."""
        start = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._threads, self._run_batch, [p.rows for p in batch])
        except Exception as exc:  # noqa: BLE001 - the executor itself failed: no request may hang
            results = [exc] * len(batch)
        for pending, result in zip(batch, results):
            if pending.future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(BatchStats(sum(len(p.rows) for p in batch), len(batch),
                                     time.perf_counter() - start))

    def _take(self) -> list[Pending]:
        """The oldest requests, up to max_batch rows (at least one, however large it is), as
        long as they are of the oldest one's kind: the queue stays first come, first served."""
        batch = [self.queue.popleft()]
        rows, kind = len(batch[0].rows), batch[0].kind
        while self.queue and rows + len(self.queue[0].rows) <= self.max_batch and self.queue[0].kind == kind:
            rows += len(self.queue[0].rows)
            batch.append(self.queue.popleft())
        self.queued_rows -= rows
        return batch

    def _run_batch(self, parts: list[np.ndarray]) -> list[np.ndarray | BaseException]:
        """Each part's output rows, from one engine call; parts alone when that call fails."""
        if len(parts) > 1:
            try:
                return split_rows(self.run(np.concatenate(parts)), [len(p) for p in parts])
            except Exception:  # noqa: BLE001 - find the part at fault by running each alone
                pass
        results: list[np.ndarray | BaseException] = []
        for part in parts:
            try:
                results.append(split_rows(self.run(np.ascontiguousarray(part)), [len(part)])[0])
            except ValueError as exc:  # the engine's word for input it refuses
                results.append(bad_input(str(exc)))
            except Exception as exc:  # noqa: BLE001 - reported as a 500 to this request only
                results.append(exc)
        return results


def split_rows(output: np.ndarray, counts: list[int]) -> list[np.ndarray]:
    """``output`` cut into consecutive pieces of ``counts`` rows; its row count must be their sum."""
    total = sum(counts)
    if output.ndim < 1 or len(output) != total:
        raise RuntimeError(f"the engine returned {output.shape[0] if output.ndim else 'no'} rows "
                           f"for {total} images")
    offsets = np.cumsum([0, *counts])
    return [output[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
