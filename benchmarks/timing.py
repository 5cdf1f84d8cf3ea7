"""Thread control and interleaved, repeated timing.

Every implementation of a workload is a `Variant`: a peer ("fastbp", "numpy",
"torch", ...) at one thread setting. `measure` runs all variants of a workload
interleaved (A B C, A B C, ...) so that a slow spell of the machine hits them
alike, and keeps every raw time. `TwoCoreCheck` measures, before each timed
run, how much a second core adds right then, so that the record shows which
runs met a spell in which the machine's two cores work as little more than one.
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@contextlib.contextmanager
def threads(n):
    """Run the block with `n` BLAS/OpenMP threads in every loaded library
    (threadpoolctl) and ``torch.set_num_threads(n)`` when torch is loaded;
    ``n=None`` changes nothing (each library's default)."""
    if n is None:
        yield
        return
    import sys
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    try:
        if torch is not None:
            torch.set_num_threads(n)
        if threadpool_limits is None:
            yield
        else:
            with threadpool_limits(limits=n):
                yield
    finally:
        if torch is not None:
            torch.set_num_threads(old_torch)


def have_thread_control():
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Variant:
    """One implementation at one thread setting.

    prepare(data, repeat) builds fresh state untimed (a new network from the
    same seed, optimizer state, ...) and returns the callable to time.
    `scale` multiplies each measured time (e.g. 60000/subset for a loop run on a
    subset) and `per` divides it (e.g. the number of calls in one timed run), so
    every stored time is per epoch or per call.
    """

    peer: str
    threads: Optional[int]
    prepare: Callable
    scale: float = 1.0
    per: int = 1
    note: str = ""
    label: str = ""
    times: list = field(default_factory=list)
    checks: list = field(default_factory=list)   # TwoCoreCheck before each time, when checked
    error: Optional[str] = None

    def __post_init__(self):
        if not self.label:
            self.label = self.peer if self.threads is None else f"{self.peer}@{self.threads}t"

    @property
    def median(self):
        return statistics.median(self.times) if self.times else None

    @property
    def min(self):
        return min(self.times) if self.times else None

    @property
    def max(self):
        return max(self.times) if self.times else None


# A check below this counts as a slow spell: the second core added less than
# half of what the first one does. Healthy checks on the development machine
# read 1.8-2.0.
SLOW_SPELL = 1.5


class TwoCoreCheck:
    """How many cores' worth of work two threads get done right now.

    The same single-threaded matrix products (float32, 256 x 256, small
    enough to stay in each core's cache) run on one thread, then on two
    Python threads at once (NumPy releases the GIL in matmul); the result is
    2 x (time alone) / (time of the slower of the two), best of `rounds`
    each: about 2 when both cores are there, about 1 when the host gives the
    two threads one core's worth between them. Takes about 15 ms. No BLAS
    thread pool is woken, so nothing keeps spinning after it.
    """

    description = ("two threads, each 4 single-threaded float32 256x256 NumPy matmuls, at once "
                   "against one alone (best of 5): 2 x time alone / time of both; about 2 "
                   "when both cores are free, about 1 when the two threads get one core's "
                   f"worth between them; below {SLOW_SPELL} counts as a slow spell")

    def __init__(self, size=256, calls=4, rounds=5):
        rng = np.random.default_rng(0)
        self._a = [rng.random((size, size), dtype=np.float32) for _ in range(2)]
        self._b = [rng.random((size, size), dtype=np.float32) for _ in range(2)]
        self._c = [np.empty((size, size), np.float32) for _ in range(2)]
        self.calls = calls
        self.rounds = rounds

    def _products(self, i, barrier, out):
        a, b, c = self._a[i], self._b[i], self._c[i]
        if barrier is not None:
            barrier.wait()
        start = time.perf_counter()
        for _ in range(self.calls):
            np.matmul(a, b, out=c)
        out[i] = time.perf_counter() - start

    def __call__(self):
        alone = both = float("inf")
        out = [0.0, 0.0]
        with threads(1):
            for _ in range(self.rounds):
                self._products(0, None, out)
                alone = min(alone, out[0])
                barrier = threading.Barrier(2)
                pair = [threading.Thread(target=self._products, args=(i, barrier, out))
                        for i in range(2)]
                for t in pair:
                    t.start()
                for t in pair:
                    t.join()
                both = min(both, max(out))
        return 2.0 * alone / both


def time_once(fn, n_threads):
    """Seconds taken by fn(), with the garbage collector paused (as timeit
    does; the garbage is collected later, untimed) and the thread setting applied."""
    enabled = gc.isenabled()
    with threads(n_threads):
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
        finally:
            if enabled:
                gc.enable()
    return elapsed


def measure(variants, data, repeats, warmup_data=None, log=None, settle=0.0, check=None):
    """Time every variant `repeats` times, interleaved; fill `variant.times`.

    Each variant first runs once untimed on `warmup_data` (or `data`) to load
    libraries, spin up thread pools and fault in memory. A variant that raises
    is dropped with its error recorded, never silently.

    `settle` seconds pass (untimed) before each timed run. The worker threads
    of a BLAS or OpenMP pool keep spinning for a while after the call that used
    them (OpenBLAS for about 0.1 s), so without the pause the previous
    variant's pool would take a core from the one being timed: interleaving
    would then penalize whichever implementation follows a multithreaded one.

    `check` (a `TwoCoreCheck`, or None) runs before the pause of each timed
    run; its reading goes to `variant.checks`, one per time.
    """
    gc.collect()        # once per workload: a full collection can take 0.1 s with torch loaded
    live = list(variants)
    for v in live:
        try:
            fn = v.prepare(warmup_data if warmup_data is not None else data, -1)
            time_once(fn, v.threads)
        except Exception as exc:          # a broken peer must not stop the suite
            v.error = f"{type(exc).__name__}: {exc}"
            if log:
                log(f"  {v.label}: failed in warm-up: {v.error}")
    live = [v for v in live if v.error is None]
    for r in range(repeats):
        for v in live:
            if v.error is not None:
                continue
            try:
                fn = v.prepare(data, r)
                reading = check() if check is not None else None
                if settle:
                    time.sleep(settle)
                t = time_once(fn, v.threads)
            except Exception as exc:
                v.error = f"{type(exc).__name__}: {exc}"
                if log:
                    log(f"  {v.label}: failed: {v.error}")
                continue
            v.times.append(t * v.scale / v.per)
            if check is not None:
                v.checks.append(reading)
    return variants
