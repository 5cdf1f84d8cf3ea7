"""The workloads of issue 4 (and the backprop items of issue 2), and their data.

Training workloads are one epoch over 60,000 examples of 784 features: the
Fashion-MNIST training set when its files are installed, otherwise random data
of that shape (uniform pixels in [0, 1), random labels). ``--quick`` shrinks the
example counts, never the layer widths, so the shapes stay those of the real
workloads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

import fastbp
from . import limit


@dataclass(frozen=True)
class Workload:
    """One thing to time.

    kind: "epoch" (one training epoch), "infer" (one example through `forward`),
    "predict" (class indices for a batch), "backprop" (gradients of one batch).
    optimizer: ("sgd", {...}) / ("adam", {...}) in `fastbp.reference`'s form.
    batch: mini-batch size (epoch), examples per call (predict, backprop).
    data: "train" (60k x 784, or fewer with --quick), "digits", "test".
    dtypes: restricts the dtypes run (None = all requested).
    """

    name: str
    title: str
    kind: str
    sizes: tuple
    activation: str
    output: str
    cost: str
    optimizer: Optional[tuple] = None
    batch: int = 1
    data: str = "train"
    group: str = ""
    note: str = ""
    dtypes: Optional[tuple] = None

    @property
    def activations(self):
        return (self.activation,) * (len(self.sizes) - 2) + (self.output,)

    def flops(self, examples):
        """FLOPs of the matrix products the workload needs for `examples`
        examples (see benchmarks.limit.products)."""
        return limit.product_flops(self.sizes, self.kind, examples)

    def network(self, dtype, seed=0):
        return fastbp.Network(list(self.sizes), activation=self.activation, output=self.output,
                              cost=self.cost, dtype=dtype, seed=seed)

    def fastbp_optimizer(self):
        name, hyper = self.optimizer
        return fastbp.SGD(**hyper) if name == "sgd" else fastbp.Adam(**hyper)

    def describe(self):
        net = "-".join(str(s) for s in self.sizes)
        parts = [net, self.activation]
        if self.output != self.activation:
            parts.append(self.output)
        parts.append(self.cost)
        if self.optimizer:
            name, hyper = self.optimizer
            parts.append(f"{name.upper()} lr {hyper['lr']:g}")
        if self.kind == "epoch":
            parts.append(f"batch {self.batch}")
        elif self.kind in ("predict", "backprop"):
            parts.append(f"{self.batch} examples")
        return ", ".join(parts)


SGD3 = ("sgd", {"lr": 3.0})
ADAM = ("adam", {"lr": 1e-3})

WORKLOADS = [
    Workload("W1", "3Blue1Brown", "epoch", (784, 16, 16, 10), "sigmoid", "sigmoid", "quadratic",
             SGD3, 10, group="W1"),
    Workload("W2", "Nielsen", "epoch", (784, 30, 10), "sigmoid", "sigmoid", "quadratic",
             SGD3, 10, group="W2"),
    Workload("W3", "scikit-learn default", "epoch", (784, 100, 10), "relu", "softmax", "log_loss",
             ADAM, 200, group="W3"),
    Workload("W4", "wide", "epoch", (784, 1024, 1024, 10), "relu", "softmax", "log_loss",
             ("sgd", {"lr": 0.01}), 256, group="W4"),
    Workload("infer", "one example", "infer", (784, 16, 16, 10), "sigmoid", "sigmoid", "quadratic",
             batch=1, data="test", group="infer",
             note="forward of a 1-D example, per call"),
    Workload("predict", "10k examples", "predict", (784, 16, 16, 10), "sigmoid", "sigmoid",
             "quadratic", batch=10000, data="test", group="predict"),
    Workload("bp-b10", "backprop b=10", "backprop", (784, 16, 16, 10), "sigmoid", "sigmoid",
             "quadratic", batch=10, data="train", group="backprop",
             note="issue 2 target is for float64"),
    Workload("bp-wide", "backprop b=256 wide", "backprop", (784, 1024, 1024, 10), "relu", "softmax",
             "log_loss", batch=256, data="train", group="backprop"),
    Workload("digits", "shipped digits", "epoch", (64, 32, 10), "relu", "softmax", "log_loss",
             ADAM, 32, data="digits", group="digits",
             note="1,797 8x8 digits shipped with fastbp; many epochs per timing"),
]

GROUPS = ("W1", "W2", "W3", "W4", "infer", "predict", "backprop", "digits", "time-to-acc", "scaling")
DEFAULT_GROUPS = ("W1", "W2", "W3", "W4", "infer", "predict", "backprop", "digits")
SLOW_GROUPS = ("time-to-acc", "scaling")


def select(groups):
    return [w for w in WORKLOADS if w.group in groups]


@dataclass
class Data:
    """Training and test arrays for one dtype: X float, Y one-hot of X's dtype,
    y int64 labels."""

    X: np.ndarray
    Y: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    y_test: np.ndarray
    source: str
    extra: dict = field(default_factory=dict)


class DataSets:
    """Loads each data set once per dtype and keeps it."""

    def __init__(self, n_train, n_test, seed=0):
        self.n_train = n_train
        self.n_test = n_test
        self.seed = seed
        self._cache = {}
        self._fashion = None
        self.notes = []

    def fashion_available(self):
        return self._raw_fashion() is not None

    def _raw_fashion(self):
        if self._fashion is None:
            try:
                self._fashion = fastbp.datasets.load_fashion_mnist(dtype="float64")
            except (FileNotFoundError, OSError, ValueError) as exc:
                self._fashion = False
                self.notes.append(f"Fashion-MNIST not available ({exc.__class__.__name__}); "
                                  "random data of the same shape used instead")
        return self._fashion or None

    def get(self, kind, dtype):
        key = (kind, np.dtype(dtype).name)
        if key not in self._cache:
            self._cache[key] = self._load(kind, np.dtype(dtype))
        return self._cache[key]

    def _load(self, kind, dtype):
        if kind == "digits":
            X, y = fastbp.datasets.load_digits()
            X = X.astype(dtype)
            Y = fastbp.datasets.one_hot(y, 10).astype(dtype)
            return Data(X, Y, y, X, Y, y, "digits (shipped, 1797 x 64)")
        raw = self._raw_fashion()
        if raw is not None:
            (Xtr, ytr), (Xte, yte) = raw
            source = "Fashion-MNIST"
        else:
            rng = np.random.default_rng(self.seed)
            Xtr = rng.random((self.n_train, 784))
            ytr = rng.integers(0, 10, self.n_train)
            Xte = rng.random((self.n_test, 784))
            yte = rng.integers(0, 10, self.n_test)
            source = "random (Fashion-MNIST files not found)"
        Xtr = np.ascontiguousarray(Xtr[:self.n_train], dtype=dtype)
        ytr = np.ascontiguousarray(ytr[:self.n_train], dtype=np.int64)
        Xte = np.ascontiguousarray(Xte[:self.n_test], dtype=dtype)
        yte = np.ascontiguousarray(yte[:self.n_test], dtype=np.int64)
        if Xtr.shape[0] < self.n_train:
            self.notes.append(f"only {Xtr.shape[0]} training examples available")
        return Data(Xtr, fastbp.datasets.one_hot(ytr, 10).astype(dtype), ytr,
                    Xte, fastbp.datasets.one_hot(yte, 10).astype(dtype), yte,
                    f"{source}, {Xtr.shape[0]} x {Xtr.shape[1]} train, {Xte.shape[0]} test")
