"""Shared helpers for the tests of the core and the Network API."""

import sys

import numpy as np
import pytest

import fastbp


@pytest.fixture(autouse=True)
def fresh_thread_measurements():
    """Each test's networks start the two-threads-or-one measurement from
    nothing, not from what an earlier test's network of the same layout left
    (so that a test meant to run two threads does, whatever ran before)."""
    for name in ("fastbp._core", "fastbp._core_avx2"):
        core = sys.modules.get(name)
        if core is not None:
            core._forget_shared_measurements()

HIDDEN = ("sigmoid", "relu", "tanh", "identity", "leaky_relu")
OUTPUTS = HIDDEN + ("softmax",)
# The spec's "Pairs" rule: quadratic with every output; cross_entropy needs a
# sigmoid output; log_loss needs a softmax output.
PAIRS = [(out, "quadratic") for out in OUTPUTS] + [("sigmoid", "cross_entropy"),
                                                   ("softmax", "log_loss")]
DTYPES = (np.float32, np.float64)


def make_net(sizes, activation="sigmoid", output=None, cost="quadratic", dtype=np.float64,
             seed=0, bias_std=0.5):
    """A Network with random (non-zero) biases, so the biases matter in every check."""
    net = fastbp.Network(sizes, activation=activation, output=output, cost=cost,
                         dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for b in net.biases:
        b[...] = rng.normal(0.0, bias_std, b.shape)
    return net


def make_data(net, n, seed=0):
    """(X, Y): X ~ N(0, 1); Y any reals for quadratic, soft targets in [0, 1] otherwise.

    Both in the network's dtype, C-contiguous, shapes (n, sizes[0]) and (n, sizes[-1]).
    """
    rng = np.random.default_rng(seed)
    sizes = net.sizes
    X = rng.normal(0.0, 1.0, (n, sizes[0]))
    if net.cost_name == "quadratic":
        Y = rng.normal(0.0, 1.0, (n, sizes[-1]))
    else:
        Y = rng.uniform(0.0, 1.0, (n, sizes[-1]))
    return X.astype(net.dtype), Y.astype(net.dtype)


def params64(net):
    """The network's parameters cast to float64 (the reference's inputs)."""
    return ([np.asarray(W, dtype=np.float64) for W in net.weights],
            [np.asarray(b, dtype=np.float64) for b in net.biases])


def rel_err(got, want):
    """||got - want|| / ||want|| (Euclidean norm of the whole array, in float64)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), np.finfo(float).tiny))


def snapshot(net):
    """Every parameter's bytes, dtype and shape: equal snapshots mean bit-identical."""
    return [(a.dtype.str, a.shape, a.tobytes()) for a in (*net.weights, *net.biases)]


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param
