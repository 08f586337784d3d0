"""The dynamic batcher on the real engine: rows of concurrent requests gathered into one call
(bounded by max_batch and the wait), each request handed exactly its rows, a failing request
failing alone, a full queue refusing at once, a close that finishes what was queued."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from lenet.serve.batcher import MAX_CALLS, Batcher, split_rows
from lenet.serve.errors import ServeError


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.8, size=(n, 1, 32, 32)).astype(np.float32)


class CountingEngine:
    """The engine, with a record of the batch size of each call."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls: list[int] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        return self.engine.scores(x)


def run_batcher(executor, parts: list[np.ndarray], *, max_batch: int = 256, max_wait_s: float = 0.2) -> list:
    """Submit every part at once to a fresh Batcher, close it, and return each part's answer
    (scores or the exception it raised)."""
    async def main():
        batcher = Batcher(executor, max_batch=max_batch, max_wait_s=max_wait_s)
        out = await asyncio.gather(*(batcher.submit(p) for p in parts), return_exceptions=True)
        await batcher.close()
        return out

    return asyncio.run(main())


def test_requests_are_gathered_by_rows_and_get_their_own(engine):
    sizes = [1, 4, 2, 7, 1, 3]
    parts = [images(n, seed=i) for i, n in enumerate(sizes)]
    counting = CountingEngine(engine)

    results = run_batcher(counting, parts)
    assert counting.calls == [sum(sizes)]  # one engine call for all six requests
    for part, result in zip(parts, results):
        np.testing.assert_allclose(result, engine.scores(part), rtol=1e-5, atol=1e-4)


def test_max_batch_bounds_each_call(engine):
    counting = CountingEngine(engine)

    def main(sizes):
        return run_batcher(counting, [images(n, seed=n) for n in sizes], max_batch=8)

    main([5, 5, 5])
    assert counting.calls == [5, 5, 5]  # 5 + 5 would pass 8
    counting.calls.clear()
    main([3, 3, 3, 20])
    # a request larger than max_batch runs alone, whole (two calls may run at once: any order)
    assert sorted(counting.calls) == [3, 6, 20]


def test_full_batches_run_two_calls_at_once_and_partial_ones_wait(engine):
    """With full batches queued a second engine call starts beside the running one (never a
    third); a partial batch waits for the running call instead, and grows meanwhile."""
    active, most, lock = [0], [0], threading.Lock()

    def slow(x: np.ndarray) -> np.ndarray:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return engine.scores(x)

    parts = [images(8, seed=i) for i in range(6)]
    for part, result in zip(parts, run_batcher(slow, parts, max_batch=8)):
        np.testing.assert_allclose(result, engine.scores(part), rtol=1e-5, atol=1e-4)
    assert most[0] == MAX_CALLS == 2

    most[0], calls = 0, []

    def slow_counted(x: np.ndarray) -> np.ndarray:
        calls.append(len(x))
        return slow(x)

    async def trickle():
        batcher = Batcher(slow_counted, max_batch=8, max_wait_s=0)
        first = asyncio.ensure_future(batcher.submit(images(2, seed=1)))
        await asyncio.sleep(0.01)  # the first call is running; the next three are a partial batch
        rest = [asyncio.ensure_future(batcher.submit(images(2, seed=s))) for s in (2, 3, 4)]
        await asyncio.gather(first, *rest)
        await batcher.close()

    asyncio.run(trickle())
    assert calls == [2, 6] and most[0] == 1


def pixels(n: int, seed: int, side: int = 28) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side), dtype=np.uint8)


def test_only_inputs_of_one_kind_share_a_call(engine):
    """Normalized float32 and raw uint8 pixels of two sizes, queued in turn: each call holds one
    kind (consecutive requests of it, first come first served), and each request gets the rows
    the engine gives its own input alone."""
    parts = [pixels(2, 1), pixels(3, 2), images(4, 3), images(1, 4), pixels(5, 5, 32), pixels(2, 6)]
    counting = CountingEngine(engine)

    results = run_batcher(counting, parts)
    assert counting.calls == [5, 5, 5, 2]
    for part, result in zip(parts, results):
        np.testing.assert_allclose(result, engine.scores(part), rtol=1e-5, atol=1e-4)


def test_a_failing_request_fails_alone(engine):
    bad = images(3, seed=9)
    bad[1, 0, 5, 5] = np.nan
    parts = [images(2, seed=1), bad, images(4, seed=2)]
    counting = CountingEngine(engine)

    good1, failed, good2 = run_batcher(counting, parts)
    assert isinstance(failed, ServeError) and failed.status == 400 and "NaN" in failed.message
    np.testing.assert_allclose(good1, engine.scores(parts[0]), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(good2, engine.scores(parts[2]), rtol=1e-5, atol=1e-4)
    assert counting.calls == [9, 2, 3, 4]  # the batch, then each request alone to find the bad one


def test_an_engine_answer_of_the_wrong_size_fails_loudly(engine):
    def drops_a_row(x: np.ndarray) -> np.ndarray:
        return engine.scores(x)[:-1]

    for result in run_batcher(drops_a_row, [images(2, 1), images(3, 2)], max_wait_s=0.1):
        assert isinstance(result, RuntimeError) and "returned" in str(result) and "rows for" in str(result)
    with pytest.raises(RuntimeError, match="returned 4 rows for 5 images"):
        split_rows(np.zeros((4, 10)), [2, 3])


def test_full_queue_refuses_at_once_and_close_finishes_the_queue(engine):
    gate, started = threading.Event(), []

    def held(x: np.ndarray) -> np.ndarray:  # the engine, held until the queue has been tried
        started.append(len(x))
        gate.wait(10)
        return engine.scores(x)

    async def main():
        batcher = Batcher(held, max_batch=8, max_wait_s=0.5, max_queue=16)
        running = [asyncio.ensure_future(batcher.submit(images(8, seed=i))) for i in range(MAX_CALLS)]
        while len(started) < MAX_CALLS:  # every engine thread busy: what comes next stays queued
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.submit(images(8, seed=i))) for i in range(2)]
        await asyncio.sleep(0)  # both queued: 16 images, the limit
        assert batcher.queued_rows == 16
        with pytest.raises(ServeError) as refused:
            await batcher.submit(images(1, seed=5))
        assert refused.value.status == 503 and refused.value.headers() == {"Retry-After": "1"}
        with pytest.raises(ServeError) as too_big:
            await batcher.submit(images(17, seed=6))
        assert too_big.value.status == 413
        gate.set()
        await batcher.close()  # answers the queued requests before it returns
        assert all(f.done() and f.result().shape == (8, 10) for f in running + queued)
        with pytest.raises(ServeError) as closed:
            await batcher.submit(images(1, seed=7))
        assert closed.value.status == 503 and "shutting down" in closed.value.message

    asyncio.run(main())
