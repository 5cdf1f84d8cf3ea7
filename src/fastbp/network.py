"""`Network`: a fully-connected network in the notation of the chain rule.

    z^l = W^l a^(l-1) + b^l,   a^l = sigma(z^l),   C0 = sum_j (a^L_j - y_j)^2

Arrays are row-major with one example per row, like NumPy and scikit-learn:
``X`` is ``(n, sizes[0])`` and the weighted sums of a layer are
``Z = X @ W.T + b``. ``weights[l-1][j, k]`` is ``w^l_jk``, the weight from
neuron k of layer l-1 to neuron j of layer l. The passes run in the compiled
core (``fastbp._core``) with the GIL released.
"""
from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from fastbp import _checks, _core

FORMAT = "fastbp-network"
FORMAT_VERSION = 1

# init="auto" | "normal" | init(fan_in, fan_out, rng) -> (fan_out, fan_in) array
Init = Union[str, Callable[[int, int, np.random.Generator], ArrayLike]]
Seed = Union[int, np.random.Generator, None]


@dataclass
class Trace:
    """A forward pass kept whole: ``z[l-1]`` is z^l (n, sizes[l]) for l = 1..L,
    ``a[l]`` is a^l (n, sizes[l]) for l = 0..L (``a[0]`` is the input)."""

    z: list[np.ndarray]
    a: list[np.ndarray]


@dataclass
class Gradients:
    """Gradients of C, the mean cost over the examples (as PyTorch's mean reduction).

    ``weights[l-1]`` is dC/dW^l (same shape as W^l), ``biases[l-1]`` is dC/db^l,
    ``inputs`` is dC/da^0 with the shape of X (row i carries the 1/n: multiply
    by n for dC0/da^0 of example i), ``cost`` is C itself.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    inputs: np.ndarray
    cost: float



CACHE_LINE = 64


def _parameter_array(a, dtype) -> np.ndarray:
    """A C-contiguous copy of `a` in `dtype` whose data start on a 64-byte
    cache line. The compiled core splits a first layer between two threads at
    a column that starts a cache line when the rows do (784 inputs), so they
    never write to one line; NumPy aligns its data only to 16 bytes."""
    a = np.asarray(a)
    dtype = np.dtype(dtype)
    buf = np.empty(a.size * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -buf.ctypes.data % CACHE_LINE
    out = buf[start:start + a.size * dtype.itemsize].view(dtype).reshape(a.shape)
    out[...] = a
    return out

class Network:
    """A fully-connected feed-forward network trained by backpropagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first, e.g. ``[784, 16, 16, 10]``; at least two.
    activation : str
        Hidden-layer activation: ``"sigmoid"``, ``"relu"``, ``"tanh"``,
        ``"identity"`` or ``"leaky_relu"`` (slope 0.01).
    output : str or None
        Output-layer activation; defaults to `activation`; may also be ``"softmax"``.
    cost : str
        ``"quadratic"`` (C0 = sum_j (a_j - y_j)^2, no 1/2; any output),
        ``"cross_entropy"`` (binary; needs a sigmoid output) or
        ``"log_loss"`` (categorical; needs a softmax output).
    dtype : str, numpy dtype or type
        ``float32`` or ``float64``: parameters and computation.
    init : "auto", "normal" or callable
        ``"auto"``: Glorot uniform for sigmoid, tanh, identity and softmax
        layers, He normal for relu and leaky_relu; ``"normal"``: N(0, 1/n_in);
        a callable is called as ``init(fan_in, fan_out, rng)`` and returns a
        ``(fan_out, fan_in)`` array. Biases start at zero.
    seed : int, numpy.random.Generator or None
        The same seed gives the same network.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[i]`` has shape ``(sizes[i+1], sizes[i])``: ``weights[L-1][j, k]``
        is w^L_jk. Plain writable arrays used in place by the core. The
        network allocates each on a 64-byte cache line (a view of a buffer of
        its own, so ``flags.owndata`` is False); training is fastest that way
        (see ``_parameter_array``), and arrays you assign work as well.
    biases : list of ndarray
        ``biases[i]`` has shape ``(sizes[i+1],)``.
    n_layers : int
        L = len(sizes) - 1.

    Thread safety: `forward`, `trace`, `cost`, `backprop`, `predict` and `score`
    may be called from any number of threads at once, and so may `gradcheck`
    (it nudges private copies of the parameters); training takes the
    network's training lock.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid",
                 output: str | None = None, cost: str = "quadratic",
                 dtype: DTypeLike = "float64", init: Init = "auto", seed: Seed = None) -> None:
        sizes, activation, output, cost, dtype = _layout(sizes, activation, output, cost, dtype)
        if not (callable(init) or isinstance(init, str)):
            raise TypeError(f"init must be 'auto', 'normal' or a callable; got {type(init).__name__}")
        if isinstance(init, str) and init not in ("auto", "normal"):
            raise ValueError(f"init must be 'auto', 'normal' or a callable; got {init!r}")
        rng = _checks.rng(seed)

        self._setup(sizes, activation, output, cost, dtype)
        self.weights = []
        self.biases = []
        for l in range(self.n_layers):
            fan_in, fan_out = sizes[l], sizes[l + 1]
            drawn = _initial_weights(init, fan_in, fan_out, self.activations[l], rng)
            with np.errstate(over="ignore"):
                # Always a copy: the network owns its parameters, even when init
                # returns the same (or a read-only) array for several layers.
                W = _parameter_array(drawn, dtype)
            if not _core.finite(W):   # after the cast: 1e300 is finite, but not in float32
                raise ValueError(_checks.not_finite(f"the array init returned for layer {l + 1}",
                                                    drawn, dtype))
            self.weights.append(W)
            self.biases.append(_parameter_array(np.zeros(fan_out), dtype))

    def _setup(self, sizes, activation, output, cost, dtype):
        self._sizes = tuple(sizes)
        self.activation = activation
        self.output = output
        self.cost_name = cost
        self.dtype = dtype
        self.n_layers = len(sizes) - 1
        self.activations = (activation,) * (self.n_layers - 1) + (output,)
        self._kernel = _core.Kernel(self._sizes, [_checks.ACTIVATIONS[a] for a in self.activations],
                                    _checks.COSTS[cost], dtype)
        self._train_lock = threading.Lock()

    @property
    def sizes(self) -> list[int]:
        """Layer widths, input first (a new list each time)."""
        return list(self._sizes)

    def __repr__(self):
        return (f"Network(sizes={list(self._sizes)}, activation={self.activation!r}, "
                f"output={self.output!r}, cost={self.cost_name!r}, dtype='{self.dtype}')")

    # -- conversions ----------------------------------------------------------

    def _inputs(self, X: ArrayLike, allow_1d: bool = False, what: str = "X") -> np.ndarray:
        # Fast path: already what the core wants (the NaN/inf scan is left to the core).
        if (type(X) is np.ndarray and X.dtype == self.dtype and X.flags.c_contiguous
                and X.flags.aligned and (X.ndim == 2 or (allow_1d and X.ndim == 1))
                and X.shape[-1] == self._sizes[0] and X.size > 0):
            return X
        return _checks.inputs(X, self._sizes[0], self.dtype, allow_1d, what)

    def _data(self, X: ArrayLike, Y: ArrayLike,
              what: str = "X", what_y: str = "Y") -> tuple[np.ndarray, np.ndarray, bool]:
        """(X 2-D, Y 2-D, X was 1-D) for the cost and gradient methods; error
        messages call the arrays `what` and `what_y`."""
        X = self._inputs(X, allow_1d=True, what=what)
        single = X.ndim == 1
        if single:
            X = X.reshape(1, -1)
            Y = _checks.numeric(Y, what_y)
            if Y.ndim == 0 or (Y.ndim == 1 and self._sizes[-1] > 1 and Y.shape[0] == self._sizes[-1]):
                Y = Y.reshape(1, *Y.shape)   # one label, or one target vector
        Y = _checks.targets(Y, X.shape[0], self._sizes[-1], self.cost_name, self.dtype,
                            what_y, what)
        return X, Y, single

    # -- the passes -----------------------------------------------------------

    def forward(self, X: ArrayLike) -> np.ndarray:
        """Output activations a^L: ``(n, sizes[-1])`` for X ``(n, sizes[0])``;
        a single example ``(sizes[0],)`` gives a 1-D result."""
        return self._kernel.forward(self.weights, self.biases, self._inputs(X, allow_1d=True))

    def trace(self, X: ArrayLike) -> Trace:
        """The forward pass with every z^l and a^l kept (see `Trace`)."""
        X = self._inputs(X, allow_1d=True)
        single = X.ndim == 1
        X2 = X.reshape(1, -1) if single else X
        zs, As = self._kernel.trace(self.weights, self.biases, X2)
        a = [X2.copy()] + As     # a^0 is the trace's own, not a view of the caller's X
        if single:
            return Trace(z=[z[0] for z in zs], a=[x[0] for x in a])
        return Trace(z=zs, a=a)

    def cost(self, X: ArrayLike, Y: ArrayLike) -> float:
        """C: the mean over the examples of C0 (see the class doc for each cost).

        Y is ``(n, sizes[-1])``; or class labels ``(n,)`` (ints, one-hot
        encoded); or, when ``sizes[-1] == 1``, the target column ``(n,)``.
        """
        X, Y, _ = self._data(X, Y)
        return float(self._kernel.cost_value(self.weights, self.biases, X, Y))

    def backprop(self, X: ArrayLike, Y: ArrayLike) -> Gradients:
        """Gradients of the mean cost C with respect to every weight, bias and
        input, by the delta recurrence (see `Gradients`)."""
        X, Y, single = self._data(X, Y)
        gW, gb, gX, c = self._kernel.backprop(self.weights, self.biases, X, Y)
        return Gradients(weights=gW, biases=gb, inputs=gX[0] if single else gX, cost=float(c))

    def predict(self, X: ArrayLike) -> np.ndarray | int:
        """Class indices: argmax of the output (``a > 0.5`` when there is one
        output unit). A single example gives a Python int."""
        A = self.forward(X)
        if self._sizes[-1] == 1:
            idx = (A[..., 0] > 0.5).astype(np.int64)
        else:
            idx = A.argmax(axis=-1)
        return int(idx) if A.ndim == 1 else idx

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy: the fraction of examples whose `predict` equals the label.

        y is class labels ``(n,)``, one-hot rows ``(n, sizes[-1])``, or a 0/1
        column when there is one output unit.
        """
        X = self._inputs(X)
        y = _checks.labels(y, X.shape[0], self._sizes[-1])
        pred = self.predict(X)
        return float(np.mean(pred == y))

    # -- persistence ----------------------------------------------------------

    def copy(self) -> Network:
        """An independent network with the same layout and equal parameters."""
        net = Network.__new__(Network)
        net._setup(self._sizes, self.activation, self.output, self.cost_name, self.dtype)
        net.weights = [_parameter_array(W, self.dtype) for W in self.weights]
        net.biases = [_parameter_array(b, self.dtype) for b in self.biases]
        return net

    def __getstate__(self):
        return {"meta": self._meta(), "weights": self.weights, "biases": self.biases}

    def __setstate__(self, state):
        meta = state["meta"]
        self._setup(tuple(meta["sizes"]), meta["activation"], meta["output"], meta["cost"],
                    np.dtype(meta["dtype"]))
        self.weights = [_parameter_array(W, self.dtype) for W in state["weights"]]
        self.biases = [_parameter_array(b, self.dtype) for b in state["biases"]]

    def _meta(self):
        return {"format": FORMAT, "version": FORMAT_VERSION, "sizes": list(self._sizes),
                "activation": self.activation, "output": self.output,
                "cost": self.cost_name, "dtype": str(self.dtype)}

    def save(self, path: str | bytes | os.PathLike[str]) -> None:
        """Write the network to exactly `path` (an ``.npz``: JSON metadata plus
        ``W1..WL``, ``b1..bL``), atomically: a temporary file in the same
        directory is written, flushed and renamed over `path`. A symbolic
        link is written through (its target is replaced, the link kept), as
        ``open(path, "wb")`` would."""
        given = os.fsdecode(os.fspath(path))
        path = os.path.realpath(given)
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot save the network to {given!r}: it is a directory")
        _checks.parameters(self.weights, self.biases, self._sizes, self.dtype)  # never write what load refuses
        arrays = {"meta": np.array(json.dumps(self._meta()))}
        for l in range(self.n_layers):
            arrays[f"W{l + 1}"] = np.ascontiguousarray(self.weights[l], dtype=self.dtype)
            arrays[f"b{l + 1}"] = np.ascontiguousarray(self.biases[l], dtype=self.dtype)
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = _temporary_file(directory)
        except OSError as e:      # name the file asked for, not the temporary one
            raise type(e)(e.errno, f"cannot save the network to {given!r}: {e.strerror}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    @classmethod
    def load(cls, path: str | bytes | os.PathLike[str]) -> Network:
        """Read a network written by `save`. Never unpickles: object arrays
        are refused. A missing file raises FileNotFoundError; anything that is
        not a well-formed fastbp network raises ValueError naming the file."""
        from fastbp._modelfile import read
        return read(cls, path)


def _temporary_file(directory):
    """(fd, path) of a new file in `directory`, created with the permissions a plain
    ``open(path, "wb")`` would give (0o666 less the umask; mkstemp would give 0o600)."""
    while True:
        tmp = os.path.join(directory, f".fastbp-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                           0o666), tmp
        except FileExistsError:
            continue


def _layout(sizes, activation, output, cost, dtype):
    """Check and normalise the layout arguments (shared with `load`)."""
    sizes = _sizes(sizes)
    activation = _checks.name(activation, "activation", _checks.HIDDEN_ACTIVATIONS)
    if output is None:
        output = activation
    output = _checks.name(output, "output activation", tuple(_checks.ACTIVATIONS))
    cost = _checks.name(cost, "cost", tuple(_checks.COSTS))
    required = _checks.COST_REQUIRES[cost]
    if required is not None and output != required:
        raise ValueError(f"the {cost} cost requires a {required} output layer; got output={output!r}")
    return sizes, activation, output, cost, _checks.float_dtype(dtype)


MAX_SIZE = 2**31 - 2


def _sizes(sizes):
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes must be a sequence of ints such as [784, 16, 10]; got {sizes!r}")
    sizes = [_checks.integer(s, "each layer size") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two layers (input and output); got {sizes}")
    for s in sizes:
        if s <= 0:
            raise ValueError(f"layer sizes must be positive; got {sizes}")
        if s > MAX_SIZE:   # the core and BLAS index with C ints
            raise ValueError(f"layer sizes must be at most {MAX_SIZE}; got {sizes}")
    return sizes


def _initial_weights(init, fan_in, fan_out, activation, rng):
    if callable(init):
        W = _checks.numeric(init(fan_in, fan_out, rng), "the array init returned")
        if W.shape != (fan_out, fan_in):
            raise ValueError(f"init returned shape {W.shape}; expected (fan_out, fan_in) = ({fan_out}, {fan_in})")
        return W
    if init == "normal":
        return rng.normal(0.0, np.sqrt(1.0 / fan_in), size=(fan_out, fan_in))
    if activation in ("relu", "leaky_relu"):
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in))  # He
    limit = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
    return rng.uniform(-limit, limit, size=(fan_out, fan_in))
