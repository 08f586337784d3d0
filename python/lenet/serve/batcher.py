"""Dynamic batching: the rows of concurrent requests gathered into one engine call.

A request waits at most ``max_wait_s`` after the oldest queued request arrived, or until
``max_batch`` rows are queued, whichever comes first; then one engine call runs on the
concatenated rows and each request gets back exactly its own rows. Only rows of one dtype and
image shape share a call (normalized float32 and raw uint8 pixels are not mixed). What the engine
returns is checked against the rows sent: a wrong row count fails the batch loudly rather than
handing one caller another's answers. When a batch call fails, each request in it is run alone,
so an error fails only the request at fault.

The calls run on engine threads of the batcher's own (the engine releases the GIL), which take
the next batch from the queue themselves as soon as they finish one: the event loop only queues
requests and settles their futures, and the engine never waits for the loop to get a turn
between two calls. A second call may run beside the first when a full batch is waiting
(``MAX_CALLS``).

The queue is bounded in rows: a request that would pass ``max_queue`` rows is refused at once
with a 503 and Retry-After, so a flood costs memory up to that bound, never more.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import ServeError, bad_input, busy


# Engine calls at once. One spreads its batch over every core, but between two calls (taking the
# next batch, answering the requests) the cores would idle: a second call starts when a full
# batch is waiting, and runs on the second engine thread (the engine's pool serves one call at a
# time; another caller computes on its own thread).
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
        # The queue, the row count and the calls running are shared by the event loop (which
        # queues) and the engine threads (which take): all under this lock.
        self._changed = threading.Condition()
        self.queue: deque[Pending] = deque()
        self.queued_rows = 0
        self._running = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """The engine's output rows for ``rows`` (float32 [N,1,S,S] or uint8 [N,H,W]), batched
        with others' of the same dtype and image shape."""
        n = len(rows)
        if n > self.max_queue:
            raise ServeError(413, f"{n} images in one request; the limit is {self.max_queue}")
        loop = asyncio.get_running_loop()
        if self._loop is None:  # started in the loop that serves (uvicorn's, or Ray's)
            self._start(loop)
        pending = Pending(rows, loop.create_future())
        with self._changed:
            if self._closing:
                raise ServeError(503, "the server is shutting down")
            if self.queued_rows + n > self.max_queue:
                raise busy(f"model {self.name!r} has {self.queued_rows} images queued (limit "
                           f"{self.max_queue}); retry shortly")
            self.queue.append(pending)
            self.queued_rows += n
            self._changed.notify()
        return await pending.future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Daemon threads: a batcher never closed (a test's, an app never started) must not keep
        # the process alive; a closed one has finished its queue before they end.
        self._threads = [threading.Thread(target=self._engine_thread, name=f"engine-{self.name}-{i}",
                                          daemon=True) for i in range(MAX_CALLS)]
        for thread in self._threads:
            thread.start()

    async def close(self) -> None:
        """Refuse new work, finish what is queued, stop the engine threads."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._threads:
            # Each thread answers through the loop before it ends, so once they are joined every
            # queued request's answer is scheduled ahead of this coroutine's resumption.
            await asyncio.get_running_loop().run_in_executor(None, self._join)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _engine_thread(self) -> None:
        while (batch := self._next_batch()) is not None:
            start = time.perf_counter()
            try:
                results = self._run_batch([p.rows for p in batch])
            except Exception as exc:  # noqa: BLE001 - no request may hang, whatever failed
                results = [exc] * len(batch)
            stats = BatchStats(sum(len(p.rows) for p in batch), len(batch), time.perf_counter() - start)
            with self._changed:
                self._running -= 1
                self._changed.notify_all()  # a partial batch may go now, or a closing batcher end
            try:
                self._loop.call_soon_threadsafe(self._answer, batch, results, stats)
            except RuntimeError:  # the loop is closed: nobody is left to answer
                pass

    def _next_batch(self) -> list[Pending] | None:
        """The next batch to run (None once closing with the queue empty): as soon as a full
        batch is queued and fewer than MAX_CALLS calls run, or, with no call running, when the
        oldest request has waited max_wait_s for company. A partial batch waits for a running
        call instead of starting beside it, and grows meanwhile."""
        with self._changed:
            while True:
                if not self.queue:
                    if self._closing:
                        return None
                    self._changed.wait()
                    continue
                full = self.queued_rows >= self.max_batch or self._closing
                if self._running >= MAX_CALLS or (self._running and not full):
                    self._changed.wait()
                    continue
                if not full:
                    remaining = self.queue[0].arrived + self.max_wait_s - time.perf_counter()
                    if remaining > 0:
                        self._changed.wait(remaining)
                        continue
                self._running += 1
                return self._take()

    def _answer(self, batch: list[Pending], results: list, stats: BatchStats) -> None:
        """In the loop: each request's future settled with its rows or its error."""
        for pending, result in zip(batch, results):
            if pending.future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(stats)

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
