"""Thread control and interleaved, repeated timing.

Every implementation of a workload is a `Variant`: a peer ("fastbp", "numpy",
"torch", ...) at one thread setting. `measure` runs all variants of a workload
interleaved (A B C, A B C, ...) so that a slow spell of the machine hits them
alike, and keeps every raw time. `HandoffCheck` measures, before each timed
run, how long the two cores take to hand data to each other right then, so
that the record shows which runs met one of a shared machine's slow spells.
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
    checks: list = field(default_factory=list)   # HandoffCheck before each time, when checked
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


# A timed run counts as in a slow spell when the core-to-core hand-off read
# before it took more than this many times the fastest hand-off of the whole
# run. (On the development machine: 50-170 ns outside spells, 330-810 ns in.)
SPELL_FACTOR = 4.0


class HandoffCheck:
    """How long two cores take to hand a cache line back and forth right now.

    fastbp's core times round trips of one cache line between the two
    threads of an OpenMP region (`fastbp._core._handoff_ns`, 2000 round
    trips, best of 3: about 1 ms). On a shared virtual machine the host may,
    for seconds at a time, place the two virtual CPUs where a hand-off takes
    several times longer, while each core alone runs as fast as ever: then
    every implementation whose two threads exchange data as they go (fastbp's
    split first layer, OpenBLAS's threaded products) slows down, and a
    single-threaded run does not. Returns nanoseconds, or None where it cannot
    be measured (no OpenMP in fastbp's build, one thread allowed).
    """

    description = ("the core-to-core round trip of one cache line between two OpenMP threads "
                   "(fastbp._core._handoff_ns, 2000 round trips, best of 3), in ns, read "
                   "before each timed run; a run counts as in a slow spell when its reading "
                   f"is more than {SPELL_FACTOR:g}x the run's fastest")

    def __init__(self, rounds=2000, repeats=3):
        from fastbp import _core
        self._handoff = _core._handoff_ns
        self.rounds = rounds
        self.repeats = repeats

    def available(self):
        return self() is not None

    def __call__(self):
        readings = [self._handoff(self.rounds) for _ in range(self.repeats)]
        readings = [r for r in readings if r is not None]
        return min(readings) if readings else None


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


def _read(check):
    """The check's reading, or None (no check, or it failed: a diagnostic
    must not cost a variant its run)."""
    if check is None:
        return None
    try:
        return check()
    except Exception:
        return None


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

    `check` (a `HandoffCheck`, or None) runs before the pause of each timed
    run; its reading (or None) goes to `variant.checks`, one per time.
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
                reading = _read(check)
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
