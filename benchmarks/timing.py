"""Thread control and interleaved, repeated timing.

Every implementation of a workload is a `Variant`: a peer ("fastbp", "numpy",
"torch", ...) at one thread setting. `measure` runs all variants of a workload
interleaved (A B C, A B C, ...) so that a slow spell of the machine hits them
alike, and keeps every raw time.
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


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


def measure(variants, data, repeats, warmup_data=None, log=None, settle=0.0):
    """Time every variant `repeats` times, interleaved; fill `variant.times`.

    Each variant first runs once untimed on `warmup_data` (or `data`) to load
    libraries, spin up thread pools and fault in memory. A variant that raises
    is dropped with its error recorded, never silently.

    `settle` seconds pass (untimed) before each timed run. The worker threads
    of a BLAS or OpenMP pool keep spinning for a while after the call that used
    them (OpenBLAS for about 0.1 s), so without the pause the previous
    variant's pool would take a core from the one being timed: interleaving
    would then penalize whichever implementation follows a multithreaded one.
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
                if settle:
                    time.sleep(settle)
                t = time_once(fn, v.threads)
            except Exception as exc:
                v.error = f"{type(exc).__name__}: {exc}"
                if log:
                    log(f"  {v.label}: failed: {v.error}")
                continue
            v.times.append(t * v.scale / v.per)
    return variants
