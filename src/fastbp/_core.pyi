"""Type stubs for the compiled core, ``fastbp._core`` (built from _core.pyx, which
includes _core_impl.pxi; on CPUs with AVX2 its public names are ``_core_avx2``'s).

Keep in step with the ``def``/``cpdef`` API of _core_impl.pxi: tests/test_packaging.py
runs mypy's stubtest against the built module and fails when they differ.

Every method of `Kernel` takes the network's current parameter lists
(``weights[l]`` of shape ``(sizes[l+1], sizes[l])``, ``biases[l]`` of shape
``(sizes[l+1],)``) and C-contiguous arrays of the kernel's dtype.
"""
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]  # float32 or float64, the kernel's dtype
_Params = list[_Array]

__all__ = ["BUILD", "Activation", "Cost", "Kernel", "Optimizer", "Workspace", "absmax_of",
           "finite", "in_unit_interval", "openmp_threads"]

BUILD: str  # "base" or "avx2"

class Activation(IntEnum):
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    SOFTMAX = 5

class Cost(IntEnum):
    QUADRATIC = 0
    CROSS_ENTROPY = 1
    LOG_LOSS = 2

class Optimizer(IntEnum):
    SGD = 0
    ADAM = 1

def finite(x: npt.NDArray[Any]) -> bool:
    """True if every element of `x` is finite (one pass, no temporary array)."""

def _handoff_ns(rounds: int = 2000, budget: float = 0.05) -> float | None:
    """Round trip of a cache line between two OpenMP threads, in ns (benchmark diagnostic)."""

def in_unit_interval(x: npt.NDArray[Any]) -> bool:
    """True if no element of `x` lies outside [0, 1] (NaN counts as inside)."""

def absmax_of(x: npt.NDArray[Any]) -> float:
    """An upper bound on max |x| (inf or NaN if any element is not finite)."""

def openmp_threads() -> int:
    """OpenMP threads a training loop may start now; 1 without OpenMP."""

def _set_adapt_force(windows: int) -> None:
    """Make a two-thread training loop switch between two threads and one after
    every `windows` counted windows of 64 steps (the first window after a
    switch is not counted), whatever it measures (0, the default: the faster
    way as measured; for the tests)."""

def _forget_shared_measurements() -> None:
    """Make networks start the two-or-one measurement from their own state or
    from nothing, not from the last training call's of the same layout
    (tests)."""

def _set_window_seconds(seconds: float) -> None:
    """Make the two-or-one measurement's windows end after `seconds` as well
    as after 64 steps (0.002, the default; infinity: 64 steps only, for the
    tests)."""

class Kernel:
    """Compiled passes for one network layout (sizes, activations, cost, dtype)."""

    # A cdef class built by __cinit__: the arguments go to __new__.
    def __new__(
        cls,
        sizes: Sequence[int],
        activations: Sequence[int],
        cost: int,
        dtype: npt.DTypeLike,
    ) -> Kernel: ...
    @property
    def L(self) -> int: ...
    @property
    def typenum(self) -> int: ...
    @property
    def cost(self) -> int: ...
    @property
    def layer_sizes(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    def check_parameters(
        self, weights: _Params, biases: _Params, writeable: bool = True
    ) -> None:
        """The checks every pass makes on the parameter lists, raising TypeError or
        ValueError; nothing is computed."""
    def forward(self, weights: _Params, biases: _Params, X: _Array) -> _Array:
        """Output activations (n, sizes[-1]); a 1-D x gives a 1-D result."""
    def cost_value(self, weights: _Params, biases: _Params, X: _Array, Y: _Array) -> float:
        """Mean of C0 over the rows of X."""
    def trace(
        self, weights: _Params, biases: _Params, X: _Array
    ) -> tuple[list[_Array], list[_Array]]:
        """Weighted sums [Z^1..Z^L] and activations [A^1..A^L]."""
    def backprop(
        self, weights: _Params, biases: _Params, X: _Array, Y: _Array
    ) -> tuple[list[_Array], list[_Array], _Array, float]:
        """Gradients of the mean cost: (dW list, db list, dX, cost)."""
    def train(
        self,
        weights: _Params,
        biases: _Params,
        X: _Array,
        Y: _Array,
        order: npt.NDArray[np.int64] | None,
        first: int,
        last: int,
        batch: int,
        kind: int,
        lr: float,
        momentum: float,
        nesterov: bool,
        beta1: float,
        beta2: float,
        eps: float,
        l2: float,
        state1: _Params,
        state2: _Params,
        t: int,
        ws: Workspace,
        x_bound: float = ...,
    ) -> int:
        """Mini-batch steps over order[first:last]; 0 done, 1 cost or 2 update not finite, 3 bad X."""
    def _adapt_state(self) -> tuple[float, float, bool, float]:
        """(seconds per step alone, on two threads, whether two threads are the
        faster way, seconds measured) as a two-thread training loop measured them."""

class Workspace:
    """Scratch memory for training steps of up to `batch` rows."""

    def __new__(cls, kernel: Kernel, batch: int) -> Workspace: ...
    @property
    def batch(self) -> int: ...
    @property
    def kernel(self) -> Kernel:
        """The kernel whose layout the buffers were sized for (Kernel.train checks it)."""
    @property
    def steps_done(self) -> int: ...
    @property
    def checked_steps(self) -> int: ...
    @property
    def threads(self) -> int:
        """Threads the last Kernel.train call could run on: 2 for a split
        first layer with small products when OpenMP allows two and no other
        training call is running, else 1 (0 before any call)."""
    @property
    def solo_steps(self) -> int:
        """Steps of that call which thread 0 ran alone although it could run on
        two threads: one thread measured faster or was tried (see
        _core_impl.pxi, _adapt), another training call started, or a
        momentum or Adam step was not proven finite."""
    @property
    def loss_sum(self) -> float: ...
