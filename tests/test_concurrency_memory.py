"""Threads (the GIL is released inside the core; results are exactly the
sequential ones), memory (no growth over thousands of calls) and pickling."""

import contextlib
import copy
import os
import pickle
import threading

import numpy as np
import pytest

import fastbp
from fastbp import reference as ref

from conftest import make_data, make_net, snapshot

N_THREADS = 8


def _calls(net, X, Y):
    """Every concurrent-safe operation on one network, as (name, zero-argument call)."""
    return [
        ("forward", lambda: net.forward(X)),
        ("forward1", lambda: net.forward(X[0])),
        ("trace", lambda: net.trace(X)),
        ("cost", lambda: net.cost(X, Y)),
        ("backprop", lambda: net.backprop(X, Y)),
        ("predict", lambda: net.predict(X)),
        ("score", lambda: net.score(X, net.predict(X))),
    ]


def _flat(result):
    """Any result as a list of arrays, for bit-for-bit comparison."""
    if isinstance(result, fastbp.Gradients):
        return [*result.weights, *result.biases, result.inputs, np.float64(result.cost)]
    if isinstance(result, fastbp.Trace):
        return [*result.z, *result.a]
    return [np.asarray(result)]


def _assert_identical(got, want):
    got, want = _flat(got), _flat(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes()


def _run_threads(work, n_threads=N_THREADS):
    """Run work(i) in n threads started together; re-raise the first error."""
    barrier = threading.Barrier(n_threads)
    errors = []

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:      # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def _networks():
    nets = [
        make_net([20, 64, 32, 10], "relu", "softmax", "log_loss", np.float64, seed=1),
        make_net([20, 48, 5], "tanh", "sigmoid", "cross_entropy", np.float32, seed=2),
        make_net([20, 30, 30, 30, 3], "leaky_relu", "identity", "quadratic", np.float64, seed=3),
    ]
    data = []
    for i, net in enumerate(nets):
        X, Y = make_data(net, 700 + 50 * i, seed=i)    # several chunks of rows
        data.append((net, X, Y))
    return data


# Quick runs use one BLAS thread per call (8 callers x BLAS threads on 2 cores
# mostly measures spinning BLAS threads); the slow runs keep BLAS's own threads.
BLAS_SETTINGS = [pytest.param(1, True, id="quick"),
                 pytest.param(20, False, id="blas-threads", marks=pytest.mark.slow)]


@pytest.mark.parametrize("reps, one_blas_thread", BLAS_SETTINGS)
def test_threads_on_one_network_get_the_sequential_answers(reps, one_blas_thread):
    # The sequential answers are computed under the same BLAS setting: the thread
    # count of a BLAS call may change its rounding.
    with _one_blas_thread() if one_blas_thread else contextlib.nullcontext():
        _threads_on_one_network(reps)


def _threads_on_one_network(reps):
    net, X, Y = _networks()[0]
    calls = _calls(net, X, Y)
    want = {name: call() for name, call in calls}
    before = snapshot(net)

    def work(i):
        for rep in range(reps):
            for name, call in calls[i % len(calls):] + calls[:i % len(calls)]:
                _assert_identical(call(), want[name])

    _run_threads(work)
    assert snapshot(net) == before


@pytest.mark.parametrize("reps, one_blas_thread", BLAS_SETTINGS)
def test_threads_on_different_networks_get_the_sequential_answers(reps, one_blas_thread):
    with _one_blas_thread() if one_blas_thread else contextlib.nullcontext():
        _threads_on_different_networks(reps)


def _threads_on_different_networks(reps):
    data = _networks()
    plans = []
    for net, X, Y in data:
        calls = _calls(net, X, Y)
        plans.append([(call, call()) for _, call in calls])
    befores = [snapshot(net) for net, _, _ in data]

    def work(i):
        for rep in range(reps):
            for j in range(len(plans)):
                for call, want in plans[(i + j) % len(plans)]:
                    _assert_identical(call(), want)

    _run_threads(work)
    assert [snapshot(net) for net, _, _ in data] == befores


def test_gradcheck_in_threads_leaves_the_network_alone():
    """gradcheck nudges a private copy: gradchecks on one network in several
    threads, beside forward calls there, all get the sequential answers."""
    net = make_net([4, 5, 2], "tanh", "sigmoid", "cross_entropy", seed=5)
    X, Y = make_data(net, 7, seed=5)
    want_check = fastbp.gradcheck(net, X, Y)
    want_forward = net.forward(X)
    before = snapshot(net)

    def work(i):
        for _ in range(30):
            if i % 2:
                assert fastbp.gradcheck(net, X, Y) == want_check
            else:
                _assert_identical(net.forward(X), want_forward)

    with _one_blas_thread():
        _run_threads(work, n_threads=4)
    assert snapshot(net) == before


def test_gradcheck_during_fit_does_not_change_the_training():
    net = make_net([6, 8, 3], "relu", "softmax", "log_loss", seed=6)
    X, Y = make_data(net, 400, seed=6)
    alone = net.copy()
    fastbp.Trainer(alone, "adam", batch_size=4, seed=1).fit(X, Y, epochs=3)
    done = threading.Event()

    def check():
        while not done.is_set():
            fastbp.gradcheck(net, X[:5], Y[:5])

    checker = threading.Thread(target=check)
    checker.start()
    try:
        fastbp.Trainer(net, "adam", batch_size=4, seed=1).fit(X, Y, epochs=3)
    finally:
        done.set()
        checker.join()
    assert snapshot(net) == snapshot(alone)


def test_training_buffers_beyond_a_c_int_are_sized_in_py_ssize_t():
    """(2**31 - 2)**2 wraps to 4 in a C int: the buffers were sized from the
    wrapped product (and then written out of bounds). Now the real size is
    computed, and refused as too large before any allocation."""
    from fastbp import _core
    big = 2**31 - 2
    for dtype in (np.float32, np.float64):
        kernel = _core.Kernel((big, big), [int(_core.Activation.SIGMOID)], 0, dtype)
        with pytest.raises(MemoryError, match=r"cannot allocate \d\.\d+e\+19 bytes of training buffers"):
            _core.Workspace(kernel, 1)


def test_more_rows_than_blas_takes_in_one_product_are_refused():
    """BLAS takes a matrix's rows as a C int: 2**31 rows would wrap. The
    unchunked passes refuse them, before reading X (np.empty maps no memory)."""
    from fastbp import _core
    net = fastbp.Network([1, 1], dtype="float32")
    try:
        X = np.empty((2**31, 1), dtype=np.float32)
    except MemoryError:
        pytest.skip("cannot reserve 8 GB of address space here")
    message = r"^X has 2147483648 rows; at most 2147483647 in one call"
    with pytest.raises(ValueError, match=message):
        net._kernel.backprop(net.weights, net.biases, X, X[:1])
    with pytest.raises(ValueError, match=message):
        net._kernel.trace(net.weights, net.biases, X)
    with pytest.raises(ValueError, match=r"^batch must be in \[1, 2147483647\]; got 2147483648"):
        _core.Workspace(net._kernel, 2**31)


def test_forward_through_a_very_wide_layer_takes_few_rows_at_a_time():
    """A layer of 200,000 units: 256-row chunks would need 800 MB of scratch;
    the core takes 2 rows at a time and still gives the reference's answer."""
    net = fastbp.Network([3, 200_000, 2], activation="tanh", seed=0)
    X = np.random.default_rng(0).normal(size=(7, 3))
    want = ref.forward(net.weights, net.biases, net.activations, X)[1][-1]
    np.testing.assert_allclose(net.forward(X), want, rtol=1e-12)
    assert net.cost(X, np.zeros((7, 2))) == pytest.approx(np.sum(want ** 2) / 7, rel=1e-12)


def test_threads_with_different_data_on_one_network():
    net, X, Y = _networks()[2]
    chunks = np.array_split(np.arange(X.shape[0]), N_THREADS)
    want = [(net.forward(X[r]), net.backprop(X[r], Y[r])) for r in chunks]

    def work(i):
        r = chunks[i]
        for _ in range(10):
            _assert_identical(net.forward(X[r]), want[i][0])
            _assert_identical(net.backprop(X[r], Y[r]), want[i][1])

    _run_threads(work)


def test_errors_in_threads_leave_others_unharmed():
    net, X, Y = _networks()[0]
    X, Y = X[:40], Y[:40]
    want = net.backprop(X, Y)
    bad = X.copy()
    bad[3, 3] = np.nan

    def work(i):
        for _ in range(20):
            if i % 2:
                with pytest.raises(ValueError, match="NaN"):
                    net.backprop(bad, Y)
            else:
                _assert_identical(net.backprop(X, Y), want)

    _run_threads(work)


# -- memory ------------------------------------------------------------------------

def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _rss():
    """Resident set size in bytes (Linux /proc; resource's ru_maxrss only grows)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_calls_do_not_grow_memory():
    # Scratch per backprop call here is ~300 kB, the results ~50 kB: a leak of
    # either over 1000 rounds would be hundreds of MB; allow 40 MB of noise.
    net = make_net([32, 64, 64, 10], "relu", "softmax", "log_loss", np.float64, seed=4)
    X, Y = make_data(net, 128)
    net1 = make_net([32, 16, 1], "tanh", "sigmoid", "cross_entropy", np.float32, seed=5)
    X1, Y1 = make_data(net1, 600)
    bad = X.copy()
    bad[0, 0] = np.inf

    def round_():
        net.backprop(X, Y)
        net.forward(X)
        net.cost(X, Y)
        net.trace(X[:64])
        net.predict(X[0])
        net1.backprop(X1, Y1)
        net1.cost(X1, Y1)
        net1.forward(X1)
        for call in (lambda: net.backprop(bad, Y), lambda: net.forward(bad),
                     lambda: net.cost(X, Y[:-1])):
            try:
                call()
            except ValueError:
                pass

    with _one_blas_thread():        # tiny products: spare the test BLAS thread start-ups
        for _ in range(100):
            round_()
        start = _rss()
        for _ in range(1000):
            round_()
        grown = _rss() - start
    assert grown < 40 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB over 1000 rounds"


def test_repeated_calls_do_not_leak_python_objects():
    import tracemalloc
    net = make_net([16, 32, 4], "sigmoid", "softmax", "log_loss", np.float64, seed=6)
    X, Y = make_data(net, 50)
    for _ in range(100):
        net.backprop(X, Y), net.trace(X), fastbp.explain(net, X, Y, 1, 0, 0)
    tracemalloc.start()
    try:
        for _ in range(100):
            net.backprop(X, Y), net.trace(X), fastbp.explain(net, X, Y, 1, 0, 0)
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            net.backprop(X, Y), net.trace(X), fastbp.explain(net, X, Y, 1, 0, 0)
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert grown < 2 * 2**20, f"traced memory grew by {grown / 2**20:.2f} MB"


# -- pickling ----------------------------------------------------------------------

@pytest.mark.parametrize("output, cost", [("softmax", "log_loss"), ("sigmoid", "cross_entropy"),
                                          ("identity", "quadratic")])
def test_pickle_round_trip(output, cost, dtype):
    net = make_net([4, 6, 3], "leaky_relu", output, cost, dtype, seed=7)
    X, Y = make_data(net, 9)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps(net, protocol=protocol))
        assert type(back) is fastbp.Network
        assert (back.sizes, back.activations, back.cost_name, back.dtype) == \
            (net.sizes, net.activations, net.cost_name, net.dtype)
        assert snapshot(back) == snapshot(net)
        _assert_identical(back.forward(X), net.forward(X))
        _assert_identical(back.backprop(X, Y), net.backprop(X, Y))
        back.weights[0][...] = 0                     # independent of the original
        assert net.weights[0].any()
    deep = copy.deepcopy(net)
    _assert_identical(deep.forward(X), net.forward(X))
    assert not np.shares_memory(deep.weights[0], net.weights[0])
