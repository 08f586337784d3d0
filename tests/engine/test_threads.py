"""The engine's thread pool: calls that one thread and several share give the same scores as one
thread, call after call, and the pool's workers poll for work after a call, sleep when idle and
wake for the next call."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

import lenet_ext

from .conftest import assert_scores_close, make_model, normalize, reference_scores
from .test_correctness import IMAGES, ISAS


def _engine(model, threads, isa=None):
    if isa is not None and ISAS.index(isa) > ISAS.index(lenet_ext.build_info()["cpu_isa"]):
        pytest.skip(f"this CPU cannot run {isa}")
    return lenet_ext.from_state_dict(model.spec, model.state_dict(), threads=threads, isa=isa)


@pytest.mark.parametrize("isa", ISAS)
def test_two_threads_give_one_threads_scores_over_many_calls(model_and_engine, isa):
    """A lone block (shared stage by stage), single images and several blocks: the second thread
    may join a call at once, late or not at all, and the scores must not change by a bit."""
    model, _ = model_and_engine
    one, two = _engine(model, 1, isa), _engine(model, 2, isa)
    sizes = (1, 16, 1, 9, 25, 2, 16, 40)
    for call in range(400):
        n = sizes[call % len(sizes)]
        x = IMAGES[(call * 7) % 2000:][:n]
        got, want = two.scores(x), one.scores(x)
        assert np.array_equal(got, want), f"call {call}, batch {n}: 2 threads differ from 1"


def _threads() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def _state_and_runtime(tid: int) -> tuple[str, int]:
    """The thread's scheduler state letter and its CPU time in nanoseconds."""
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    runtime = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
    return stat[stat.rindex(")") + 2], runtime


@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/schedstat").exists(),
                    reason="needs Linux /proc schedstat")
def test_pool_worker_sleeps_when_idle_and_wakes_for_a_call():
    """After a call the worker polls for the next one for a bounded window (about 100 us), then
    sleeps; a call after that wakes it and it takes part. Calls spaced more and less widely than
    the window all give the reference scores."""
    model = make_model("lenet5")
    reference = reference_scores(model, normalize(IMAGES, model.spec))
    before = _threads()
    engine = _engine(model, 2)
    workers = _threads() - before
    assert len(workers) == 1, f"expected one pool worker, found threads {workers}"
    (worker,) = workers
    for pause in (0.0, 0.0002, 0.003, 0.0, 0.0, 0.05, 0.0001):
        time.sleep(pause)
        for n in (16, 1, 333, 20):
            assert_scores_close(engine.scores(IMAGES[:n]), reference[:n])
    # Idle: the polling window is long over, so the worker sleeps instead of spinning.
    deadline = time.monotonic() + 5
    while _state_and_runtime(worker)[0] != "S":
        assert time.monotonic() < deadline, "the pool's worker still runs 5 s after the last call"
        time.sleep(0.01)
    # A large call wakes it: it runs blocks (its CPU time grows by milliseconds).
    _, runtime = _state_and_runtime(worker)
    for _ in range(50):
        assert_scores_close(engine.scores(IMAGES), reference)
        if _state_and_runtime(worker)[1] - runtime > 2_000_000:
            break
        time.sleep(0.01)  # let it fall asleep again: every call must wake it
    else:
        pytest.fail("the sleeping worker took no part in 50 calls of 4133 images")


_REFUSED_THREADS = """
import resource, sys
import lenet_ext
lenet_ext.load(sys.argv[1], threads=1)  # imports and first allocations before the limit
vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize:"))
limit = (vm + 512 * 1024) * 1024  # room for the model, not for 1024 thread stacks (8 MB each)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    lenet_ext.load(sys.argv[1], threads=1024)
except RuntimeError as exc:
    print("refused:", exc)
    sys.exit(0)
print("loaded")
sys.exit(1)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_threads_the_system_refuses_raise_instead_of_hanging(tmp_path):
    """A process or memory limit refusing one of the pool's threads is an error naming the thread
    count; before, the engine's constructor waited forever for the workers it had started."""
    import subprocess
    import sys

    from .conftest import write_artifact

    artifact = write_artifact(make_model("lenet5"), tmp_path / "art")
    done = subprocess.run([sys.executable, "-c", _REFUSED_THREADS, str(artifact)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot start 1024 engine threads" in done.stdout and "fewer threads" in done.stdout
