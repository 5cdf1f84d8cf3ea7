"""`fastbp.Trainer`: fused training epochs against the NumPy oracle (reference.py),
optimizer state, History, callbacks, early stopping, divergence, bad arguments,
threads, Ctrl-C, progress bars, memory, and learning the shipped digits for real.

The oracle is ``reference.train_epoch`` (itself checked against torch.optim in
test_reference.py), run on copies of the network's parameters in the network's
dtype, with the orders the trainer documents: ``arange(n)`` without shuffling,
``np.random.default_rng(seed).permutation(n)`` once per epoch with it.
"""

import _thread
import contextlib
import os
import re
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fastbp
from fastbp import _core
from fastbp import reference as ref

# -- helpers ----------------------------------------------------------------------------

RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

# (id, fastbp optimizer, reference optimizer spec)
OPTIMIZERS = [
    ("sgd", fastbp.SGD(lr=0.5), ("sgd", dict(lr=0.5))),
    ("momentum", fastbp.SGD(lr=0.2, momentum=0.9),
     ("sgd", dict(lr=0.2, momentum=0.9))),
    ("nesterov", fastbp.SGD(lr=0.2, momentum=0.9, nesterov=True),
     ("sgd", dict(lr=0.2, momentum=0.9, nesterov=True))),
    ("adam", fastbp.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7),
     ("adam", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7))),
]
OPT_IDS = [o[0] for o in OPTIMIZERS]

# (activation, output, cost) layouts of a [5, 7, 6, 3] network
LAYOUTS = [("tanh", "sigmoid", "quadratic"), ("relu", "softmax", "log_loss")]


def make_net(layout=LAYOUTS[0], dtype=np.float64, seed=0, sizes=(5, 7, 6, 3)):
    """A network with non-zero biases, so that every parameter matters."""
    activation, output, cost = layout
    net = fastbp.Network(list(sizes), activation=activation, output=output, cost=cost,
                         dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for b in net.biases:
        b[...] = rng.normal(0.0, 0.3, b.shape)
    return net


def make_data(net, n, seed=1):
    """(X, Y) in the network's dtype: Y any reals for quadratic, soft targets else."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 1.0, (n, net.sizes[0]))
    if net.cost_name == "quadratic":
        Y = rng.normal(0.0, 1.0, (n, net.sizes[-1]))
    else:
        Y = rng.uniform(0.0, 1.0, (n, net.sizes[-1]))
    return X.astype(net.dtype), Y.astype(net.dtype)


def snapshot(net):
    """Every parameter's dtype, shape and bytes: equal snapshots mean bit-identical."""
    return [(a.dtype.str, a.shape, a.tobytes()) for a in (*net.weights, *net.biases)]


def opt_state(trainer):
    """The trainer's optimizer state (momentum buffers / Adam moments and step count).

    The spec makes this state observable only through later steps; the tests read
    the trainer's arrays directly to check that a failing step left it alone."""
    return (trainer.steps, [a.tobytes() for a in trainer._state1],
            [a.tobytes() for a in trainer._state2])


def rel_err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


class Oracle:
    """reference.train_epoch on copies of a network's parameters (same dtype)."""

    def __init__(self, net, opt_spec, l2=0.0):
        self.weights = [W.copy() for W in net.weights]
        self.biases = [b.copy() for b in net.biases]
        self.activations = list(net.activations)
        self.cost = net.cost_name
        self.opt = opt_spec
        self.l2 = l2
        self.state = ref.init_state(self.weights, self.biases, opt_spec)

    def epoch(self, X, Y, order, batch_size):
        return ref.train_epoch(self.weights, self.biases, self.activations, self.cost, X, Y,
                               np.asarray(order), batch_size, self.opt, self.state, l2=self.l2)

    def assert_matches(self, net, rtol):
        for got, want in zip(net.weights + net.biases, self.weights + self.biases):
            assert got.dtype == want.dtype
            assert rel_err(got, want) <= rtol


def replay_steps(net0, X, Y, optimizer, batch_size, k, l2=0.0):
    """A copy of net0 after the first k mini-batch steps of unshuffled epochs over
    (X, Y), done by a fresh trainer with `step`; returns (net, trainer)."""
    net = net0.copy()
    tr = fastbp.Trainer(net, optimizer, batch_size=batch_size, l2=l2, shuffle=False)
    n = X.shape[0]
    starts = list(range(0, n, batch_size))
    for i in range(k):
        s = starts[i % len(starts)]
        tr.step(X[s:s + batch_size], Y[s:s + batch_size])
    return net, tr


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# -- fit equals the reference -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("l2", [0.0, 0.01], ids=["l2=0", "l2=0.01"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l[2])
def test_fit_unshuffled_equals_reference(layout, opt_id, optimizer, spec, l2, dtype):
    net = make_net(layout, dtype)
    X, Y = make_data(net, 23)             # batches of 5: 5, 5, 5, 5, 3
    oracle = Oracle(net, spec, l2)
    tr = fastbp.Trainer(net, optimizer, batch_size=5, l2=l2, shuffle=False, seed=0)
    hist = tr.fit(X, Y, epochs=3)
    rtol = RTOL[np.dtype(dtype)]
    want = [oracle.epoch(X, Y, np.arange(23), 5) for _ in range(3)]
    oracle.assert_matches(net, rtol)
    assert len(hist.loss) == 3
    for got, w in zip(hist.loss, want):
        assert got == pytest.approx(w, rel=rtol)
    assert tr.steps == 15
    assert hist is tr.history


@pytest.mark.parametrize("dtype, eps", [(np.float64, 1e-310), (np.float64, 0.0),
                                        (np.float32, 1e-45), (np.float32, 0.0)])
def test_adam_on_the_checked_path_equals_reference(dtype, eps):
    """Momentum SGD and Adam write each update in one pass when running bounds
    prove it finite. With eps tiny (or 0) nothing bounds m / (sqrt(v) + eps)
    ahead of time, so every step takes the checked two-pass path instead: the
    training must be the same."""
    net = make_net(LAYOUTS[0], dtype)
    X, Y = make_data(net, 23)
    hyper = dict(lr=0.01, beta1=0.8, beta2=0.99, eps=eps)
    oracle = Oracle(net, ("adam", hyper), l2=0.01)
    tr = fastbp.Trainer(net, fastbp.Adam(**hyper), batch_size=5, l2=0.01, shuffle=False)
    hist = tr.fit(X, Y, epochs=3)
    want = [oracle.epoch(X, Y, np.arange(23), 5) for _ in range(3)]
    rtol = RTOL[np.dtype(dtype)]
    oracle.assert_matches(net, rtol)
    assert hist.loss == pytest.approx(want, rel=rtol)


def _one_call(net, optimizer, X, Y, batch, order=None, x_bound=0.0, l2=0.0):
    """Every mini-batch of (X, Y) (in `order`, or in order) in one core call;
    returns the Workspace (its steps_done, checked_steps, threads) and the status.
    x_bound=inf sends every step down the checked path."""
    tr = fastbp.Trainer(net, optimizer, batch_size=batch, l2=l2, shuffle=False)
    ws = _core.Workspace(net._kernel, batch)
    tr._x_bound = x_bound
    status = tr._run(X, Y, order, 0, X.shape[0], batch, ws)
    return ws, status


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_long_calls_stay_on_the_proven_path(opt_id, optimizer, spec, dtype):
    """The running bounds must not drift up and lose the proof over a long
    call: 4000 steps (a 60,000-example epoch at batch 15) all prove finite."""
    net = make_net(LAYOUTS[1], dtype)
    X, Y = make_data(net, 4000)
    ws, status = _one_call(net, optimizer, X, Y, 1)
    assert status == 0 and ws.steps_done == 4000
    assert ws.checked_steps == 0


@pytest.mark.parametrize("optimizer", [fastbp.Adam(lr=0.01, eps=1e-310),
                                       fastbp.SGD(lr=1e305, momentum=0.5),
                                       fastbp.SGD(lr=1e305)], ids=["adam", "momentum", "sgd"])
def test_unprovable_steps_take_the_checked_path(optimizer):
    """Finite updates that no bound proves finite in advance (m / eps with eps
    tiny; lr times a gradient bound beyond 1e300) are checked, then written."""
    net = make_net(LAYOUTS[0], np.float64)
    X, Y = make_data(net, 10)
    ws, status = _one_call(net, optimizer, X, Y, 5)
    assert ws.checked_steps == ws.steps_done >= 1
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS + [
    ("adam-beta1-0.3", fastbp.Adam(lr=0.01, beta1=0.3), None)], ids=OPT_IDS + ["adam-beta1-0.3"])
def test_proven_and_checked_updates_are_bit_identical(opt_id, optimizer, spec, l2, dtype):
    """The one-pass update (proven finite by the running bounds) and the checked
    two-pass update compute the same rule, bit for bit; an infinite bound on |X|
    proves nothing, so every step takes the checked path."""
    results = []
    for x_bound in (0.0, np.inf):
        net = make_net(LAYOUTS[1], dtype)
        X, Y = make_data(net, 40)
        tr = fastbp.Trainer(net, optimizer, batch_size=8, l2=l2, shuffle=False)
        ws = _core.Workspace(net._kernel, 8)
        tr._x_bound = x_bound
        assert tr._run(X, Y, None, 0, 40, 8, ws) == 0
        assert ws.checked_steps == (0 if x_bound == 0 else 5)
        results.append((snapshot(net), opt_state(tr)))
    assert results[0] == results[1]


def test_float32_adam_uses_torchs_coefficients():
    """torch rounds 1 - beta1 and 1 - beta2 from double (0.1f, 0.001f), not
    1 - 0.9f = 0.10000002 in float32: after one step m = 0.1f g, v = 0.001f g g."""
    net = fastbp.Network([1, 1], activation="identity", dtype="float32", seed=0)
    X, Y = np.array([[1.5]], np.float32), np.array([[-2.0]], np.float32)
    g = net.backprop(X, Y).weights[0][0, 0]
    tr = fastbp.Trainer(net, fastbp.Adam(lr=1e-3), shuffle=False)
    tr.step(X, Y)
    m, v = tr._state1[0][0, 0], tr._state2[0][0, 0]
    assert m == np.float32(0.1) * g and m != (np.float32(1) - np.float32(0.9)) * g
    assert v == np.float32(0.001) * g * g


def test_a_workspace_works_only_with_the_kernel_it_was_sized_for():
    small = make_net(sizes=(5, 7, 6, 3))
    big = make_net(sizes=(5, 700, 6, 3))
    X, Y = make_data(big, 8)
    tr = fastbp.Trainer(big, batch_size=8, shuffle=False)
    with pytest.raises(ValueError, match="workspace was made for another network"):
        tr._run(X, Y, None, 0, 8, 8, _core.Workspace(small._kernel, 8))


def test_replacing_the_trainers_network_from_a_callback_is_an_error_not_a_crash():
    net = make_net()
    X, Y = make_data(net, 16)
    tr = fastbp.Trainer(net, batch_size=4)
    other = make_net(sizes=(5, 700, 6, 3))
    with pytest.raises(ValueError, match="workspace was made for another network"):
        tr.fit(X, Y, epochs=3, callbacks=lambda e, h: setattr(tr, "network", other))


def test_x_edited_by_a_callback_is_bounded_again_before_the_next_epoch(dtype):
    """The overflow proof of the fused SGD update needs a true bound on |X|: a
    callback that makes X huge must still end in FloatingPointError with the
    last finite parameters, and one that puts NaN in X in a ValueError."""
    net = fastbp.Network([1, 1], activation="identity", dtype=dtype, seed=0)
    net.weights[0][...] = 1e-12
    X = np.ones((4, 1), dtype=dtype)
    Y = np.zeros((4, 1), dtype=dtype)
    big = 1e160 if np.dtype(dtype) == np.float64 else 1e20

    def grow(epoch, history):
        X[...] = big

    tr = fastbp.Trainer(net, fastbp.SGD(lr=1.0), batch_size=4, shuffle=False)
    with pytest.raises(FloatingPointError):
        tr.fit(X, Y, epochs=3, callbacks=grow)
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    X[...] = 1
    net.weights[0][...] = 1e-12
    net.biases[0][...] = 0

    def poison(epoch, history):
        X[0, 0] = np.nan

    with pytest.raises(ValueError, match=r"X \(as the callbacks left it\) contains NaN"):
        tr.fit(X, Y, epochs=3, callbacks=poison)
    assert len(tr.history.loss) == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_fit_shuffled_equals_reference_with_documented_permutation(opt_id, optimizer, spec, dtype):
    net = make_net(LAYOUTS[1], dtype)
    X, Y = make_data(net, 30)
    oracle = Oracle(net, spec, l2=0.003)
    tr = fastbp.Trainer(net, optimizer, batch_size=8, l2=0.003, shuffle=True, seed=1234)
    hist = tr.fit(X, Y, epochs=3)
    rng = np.random.default_rng(1234)
    want = [oracle.epoch(X, Y, rng.permutation(30), 8) for _ in range(3)]
    rtol = RTOL[np.dtype(dtype)]
    oracle.assert_matches(net, rtol)
    assert hist.loss == pytest.approx(want, rel=rtol)


def test_batch_size_larger_than_the_data_is_one_batch():
    net = make_net()
    X, Y = make_data(net, 7)
    oracle = Oracle(net, OPTIMIZERS[1][2])
    tr = fastbp.Trainer(net, OPTIMIZERS[1][1], batch_size=32, shuffle=False)
    hist = tr.fit(X, Y, epochs=2)
    want = [oracle.epoch(X, Y, np.arange(7), 32) for _ in range(2)]
    oracle.assert_matches(net, 1e-12)
    assert hist.loss == pytest.approx(want, rel=1e-12)
    assert tr.steps == 2


def test_batch_size_one_and_labels_as_targets():
    net = make_net(LAYOUTS[1])
    X, _ = make_data(net, 9)
    y = np.arange(9) % 3
    oracle = Oracle(net, ("sgd", dict(lr=0.3)))
    fastbp.Trainer(net, fastbp.SGD(lr=0.3), batch_size=1, shuffle=False).fit(X, y, epochs=2)
    Y = np.eye(3)[y]
    for _ in range(2):
        oracle.epoch(X, Y, np.arange(9), 1)
    oracle.assert_matches(net, 1e-12)


# -- state carries across fit and step ------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_two_fits_equal_one_fit_of_two_epochs(opt_id, optimizer, spec, shuffle):
    a, b = make_net(), make_net()
    X, Y = make_data(a, 23)
    ta = fastbp.Trainer(a, optimizer, batch_size=5, l2=0.01, shuffle=shuffle, seed=3)
    tb = fastbp.Trainer(b, optimizer, batch_size=5, l2=0.01, shuffle=shuffle, seed=3)
    ha = ta.fit(X, Y, epochs=2)
    h1 = tb.fit(X, Y, epochs=1)
    h2 = tb.fit(X, Y, epochs=1)
    assert snapshot(a) == snapshot(b)
    assert ta.steps == tb.steps == 10
    assert [h1.loss[0], h2.loss[0]] == ha.loss
    assert len(h2.loss) == 1 and tb.history is h2     # each fit returns its own History


@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_steps_then_fit_continue_the_same_state(opt_id, optimizer, spec):
    net = make_net()
    X, Y = make_data(net, 20)
    oracle = Oracle(net, spec, l2=0.01)
    tr = fastbp.Trainer(net, optimizer, batch_size=5, l2=0.01, shuffle=False)
    c1 = tr.step(X[:4], Y[:4])
    c2 = tr.step(X[4:10], Y[4:10])
    tr.fit(X, Y, epochs=1)
    tr.step(X[10:13], Y[10:13])
    w1 = oracle.epoch(X[:4], Y[:4], np.arange(4), 4)
    w2 = oracle.epoch(X[4:10], Y[4:10], np.arange(6), 6)
    oracle.epoch(X, Y, np.arange(20), 5)
    oracle.epoch(X[10:13], Y[10:13], np.arange(3), 3)
    oracle.assert_matches(net, 1e-12)
    assert (c1, c2) == pytest.approx((w1, w2), rel=1e-12)
    assert tr.steps == 7
    if spec[0] == "adam":
        assert oracle.state["t"] == 7


# -- step -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_step_agrees_with_fit_on_one_batch(opt_id, optimizer, spec, dtype):
    a = make_net(LAYOUTS[1], dtype)
    b = make_net(LAYOUTS[1], dtype)
    X, Y = make_data(a, 11)
    before = a.cost(X, Y)
    ta = fastbp.Trainer(a, optimizer, l2=0.01, shuffle=False)
    cost = ta.step(X, Y)
    hist = fastbp.Trainer(b, optimizer, batch_size=11, l2=0.01, shuffle=False).fit(X, Y)
    assert snapshot(a) == snapshot(b)
    assert type(cost) is float
    rtol = RTOL[np.dtype(dtype)]
    assert cost == pytest.approx(before, rel=rtol)      # the cost before the update
    assert cost == pytest.approx(hist.loss[0], rel=rtol)
    assert a.cost(X, Y) != before
    assert ta.steps == 1


def test_step_accepts_a_single_example_and_labels():
    net = make_net(LAYOUTS[1])
    X, _ = make_data(net, 1)
    before = net.cost(X[0], 2)
    c = fastbp.Trainer(net, "sgd").step(X[0], 2)
    assert c == pytest.approx(before, rel=1e-12)
    assert net.cost(X[0], 2) < before


# -- determinism ----------------------------------------------------------------------------

def test_same_seeds_give_bit_identical_training():
    runs = []
    for trainer_seed in (7, 7, 8):
        net = fastbp.Network([5, 7, 3], activation="relu", output="softmax", cost="log_loss",
                             seed=42)
        X, Y = make_data(net, 50, seed=5)
        hist = fastbp.Trainer(net, "adam", batch_size=8, seed=trainer_seed).fit(X, Y, epochs=3)
        runs.append((snapshot(net), hist.loss))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0]
    assert runs[0][1] != runs[2][1]


def test_trainer_accepts_a_generator_as_seed():
    a, b = make_net(), make_net()
    X, Y = make_data(a, 20)
    fastbp.Trainer(a, batch_size=3, seed=np.random.default_rng(11)).fit(X, Y, epochs=2)
    fastbp.Trainer(b, batch_size=3, seed=11).fit(X, Y, epochs=2)
    assert snapshot(a) == snapshot(b)


# -- History ----------------------------------------------------------------------------------

def test_history_without_validation_data():
    net = make_net()
    X, Y = make_data(net, 20)
    hist = fastbp.Trainer(net, batch_size=6).fit(X, Y, epochs=4)
    assert isinstance(hist, fastbp.History)
    for name in ("loss", "epoch_time"):
        values = getattr(hist, name)
        assert type(values) is list and len(values) == 4
        assert all(type(v) is float for v in values)
    assert all(t > 0 for t in hist.epoch_time)
    assert hist.val_loss == [] and hist.val_accuracy == []
    assert len(hist) == 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_history_with_validation_data(dtype):
    net = make_net(LAYOUTS[1], dtype)
    X, _ = make_data(net, 40)
    y = np.random.default_rng(3).integers(0, 3, 40)
    Xv, yv = X[:15] + 0.1, y[:15]
    seen = []

    def record(epoch, history):
        # history already holds this epoch; the network is as after it
        assert len(history.loss) == len(history.val_loss) == len(history.val_accuracy) \
            == len(history.epoch_time) == epoch + 1
        seen.append((history.val_loss[-1], net.cost(Xv, yv),
                     history.val_accuracy[-1], net.score(Xv, yv)))

    hist = fastbp.Trainer(net, "adam", batch_size=8, seed=0).fit(
        X, y, epochs=3, validation_data=(Xv, yv), callbacks=[record])
    for name in ("loss", "val_loss", "val_accuracy", "epoch_time"):
        values = getattr(hist, name)
        assert type(values) is list and len(values) == 3
        assert all(type(v) is float for v in values)
    assert hist.val_loss[-1] == net.cost(Xv, yv)
    assert hist.val_accuracy[-1] == net.score(Xv, yv)
    for e, (vl, c, va, s) in enumerate(seen):
        assert vl == c == hist.val_loss[e]
        assert va == s == hist.val_accuracy[e]
    # one-hot validation targets give the same numbers
    hist2 = fastbp.Trainer(make_net(LAYOUTS[1], dtype), "adam", batch_size=8, seed=0).fit(
        X, y, epochs=3, validation_data=(Xv, np.eye(3)[yv]))
    assert hist2.val_loss == hist.val_loss
    assert hist2.val_accuracy == hist.val_accuracy


def test_validation_accuracy_with_one_sigmoid_output():
    net = fastbp.Network([4, 5, 1], output="sigmoid", cost="cross_entropy", seed=0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    hist = fastbp.Trainer(net, fastbp.SGD(lr=1.0), batch_size=5, seed=0).fit(
        X, y, epochs=3, validation_data=(X[:10], y[:10]))
    assert hist.val_accuracy[-1] == net.score(X[:10], y[:10])
    assert hist.val_loss[-1] == net.cost(X[:10], y[:10])


def test_zero_epochs_changes_nothing():
    net = make_net()
    X, Y = make_data(net, 10)
    before = snapshot(net)
    tr = fastbp.Trainer(net)
    hist = tr.fit(X, Y, epochs=0, validation_data=(X, Y), early_stopping=1)
    assert snapshot(net) == before
    assert (hist.loss, hist.val_loss, hist.val_accuracy, hist.epoch_time) == ([], [], [], [])
    assert tr.steps == 0


# -- callbacks --------------------------------------------------------------------------------

def test_callbacks_all_run_and_any_false_stops():
    net = make_net()
    X, Y = make_data(net, 20)
    calls = []

    def first(epoch, history):
        calls.append(("first", epoch, len(history.loss)))
        return False if epoch == 2 else None

    def second(epoch, history):
        calls.append(("second", epoch, len(history.loss)))
        return True

    tr = fastbp.Trainer(net, batch_size=5, seed=0)
    hist = tr.fit(X, Y, epochs=10, callbacks=[first, second])
    assert calls == [(name, e, e + 1) for e in range(3) for name in ("first", "second")]
    assert len(hist.loss) == len(hist.epoch_time) == 3
    assert tr.steps == 12


def test_a_single_callable_is_accepted():
    net = make_net()
    X, Y = make_data(net, 20)
    epochs = []
    hist = fastbp.Trainer(net, batch_size=5).fit(
        X, Y, epochs=5, callbacks=lambda e, h: epochs.append(e) or e < 1)
    assert epochs == [0, 1]
    assert len(hist.loss) == 2


@pytest.mark.parametrize("result, stops", [(False, True), (np.False_, True), (np.bool_(0.5 > 0.9), True),
                                           (None, False), (True, False), (np.True_, False),
                                           (0, False), ("stop", False)])
def test_a_callback_stops_training_by_returning_false_numpy_false_too(result, stops):
    net = make_net()
    X, Y = make_data(net, 20)
    hist = fastbp.Trainer(net, batch_size=5).fit(X, Y, epochs=3, callbacks=lambda e, h: result)
    assert len(hist.loss) == (1 if stops else 3)


def test_callbacks_none_means_no_callbacks_and_other_kinds_are_refused():
    net = make_net()
    X, Y = make_data(net, 20)
    tr = fastbp.Trainer(net, batch_size=5)
    assert len(tr.fit(X, Y, epochs=2, callbacks=None).loss) == 2
    hist, before = tr.history, snapshot(net)
    for bad in (1, 2.5):
        with pytest.raises(TypeError, match=r"^callbacks must be a callable f\(epoch, history\) or an "
                                            r"iterable of them; got "):
            tr.fit(X, Y, callbacks=bad)
    with pytest.raises(TypeError, match=r"^callbacks must be callables .*got 1"):
        tr.fit(X, Y, callbacks=[print, 1])
    assert snapshot(net) == before and tr.history is hist


def test_a_batch_size_raised_by_a_callback_takes_effect_from_the_next_epoch(dtype):
    """The training buffers, sized for the batch size fit started with, grow with it."""
    net = make_net(dtype=dtype)
    X, Y = make_data(net, 21)
    by_hand = net.copy()
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.3, momentum=0.5), batch_size=4, shuffle=False)
    tr.fit(X, Y, epochs=3, callbacks=lambda e, h: setattr(tr, "batch_size", 4 + 6 * (e + 1)))
    ref_tr = fastbp.Trainer(by_hand, fastbp.SGD(lr=0.3, momentum=0.5), shuffle=False)
    for bs in (4, 10, 16):
        ref_tr.batch_size = bs
        ref_tr.fit(X, Y)
    assert snapshot(net) == snapshot(by_hand)


def test_callbacks_see_the_history_object_that_fit_returns():
    net = make_net()
    X, Y = make_data(net, 10)
    seen = []
    hist = fastbp.Trainer(net, batch_size=5).fit(X, Y, epochs=2,
                                                 callbacks=(lambda e, h: seen.append(h),))
    assert seen[0] is hist and seen[1] is hist


# -- early stopping ---------------------------------------------------------------------------
# A one-weight linear model fitted to x = 1 -> y = 1 moves s = w + b by
# s <- s + 4 lr (1 - s) per step. Validated against y = 0.5, the validation loss
# (s - 0.5)^2 falls, reaches its minimum and rises again: a U-shaped curve that
# is the same on every machine.

def linear_problem(lr=0.05):
    net = fastbp.Network([1, 1], activation="identity", seed=0)
    net.weights[0][...] = 0.0
    net.biases[0][...] = 0.0
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    val = (np.ones((1, 1)), np.full((1, 1), 0.5))
    tr = fastbp.Trainer(net, fastbp.SGD(lr=lr), batch_size=1, shuffle=False)
    return net, tr, X, Y, val


def epoch_snapshots(net, store):
    def cb(epoch, history):
        store.append(snapshot(net))
    return cb


def test_linear_problem_is_u_shaped():
    net, tr, X, Y, val = linear_problem()
    hist = tr.fit(X, Y, epochs=6, validation_data=val)
    # s = 0.2, 0.36, 0.488, 0.5904, 0.67232, 0.737856
    assert int(np.argmin(hist.val_loss)) == 2
    assert hist.val_loss == pytest.approx(
        [(1 - 0.8 ** (k + 1) - 0.5) ** 2 for k in range(6)], rel=1e-10)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stopping_stops_after_patience_and_restores_the_best_epoch(patience):
    net, tr, X, Y, val = linear_problem()
    snaps = []
    hist = tr.fit(X, Y, epochs=50, validation_data=val, early_stopping=patience,
                  callbacks=epoch_snapshots(net, snaps))
    # best epoch 2; stop after `patience` epochs without improvement
    assert len(hist.loss) == len(hist.val_loss) == len(snaps) == 3 + patience
    assert net.cost(*val) == min(hist.val_loss) == hist.val_loss[2]
    assert snapshot(net) == snaps[2]
    assert tr.steps == 3 + patience


def test_early_stopping_object_is_the_same_as_int_patience():
    net, tr, X, Y, val = linear_problem()
    h1 = tr.fit(X, Y, epochs=50, validation_data=val, early_stopping=2)
    net2, tr2, _, _, _ = linear_problem()
    h2 = tr2.fit(X, Y, epochs=50, validation_data=val,
                 early_stopping=fastbp.EarlyStopping(2))
    assert h1.val_loss == h2.val_loss
    assert snapshot(net) == snapshot(net2)


def test_early_stopping_restores_the_best_epoch_when_training_ends_normally():
    net, tr, X, Y, val = linear_problem()
    snaps = []
    hist = tr.fit(X, Y, epochs=5, validation_data=val, early_stopping=10,
                  callbacks=epoch_snapshots(net, snaps))
    assert len(hist.loss) == 5
    assert net.cost(*val) == min(hist.val_loss) == hist.val_loss[2]
    assert snapshot(net) == snaps[2]


def test_early_stopping_restores_the_best_epoch_when_a_callback_stops():
    net, tr, X, Y, val = linear_problem()
    snaps = []
    hist = tr.fit(X, Y, epochs=50, validation_data=val, early_stopping=10,
                  callbacks=[epoch_snapshots(net, snaps), lambda e, h: e < 4])
    assert len(hist.loss) == 5
    assert snapshot(net) == snaps[2]
    assert net.cost(*val) == hist.val_loss[2]


def test_early_stopping_keeps_the_last_epoch_when_it_is_the_best():
    net, tr, X, Y, val = linear_problem(lr=0.01)    # s = 1 - 0.96^(k+1) < 0.5 for 16 epochs
    hist = tr.fit(X, Y, epochs=5, validation_data=val, early_stopping=1)
    assert len(hist.loss) == 5
    assert hist.val_loss == sorted(hist.val_loss, reverse=True)
    assert net.cost(*val) == hist.val_loss[-1]


def keras_rule(val_loss, patience, min_delta):
    """(index of the epoch after which training stops, index of the best epoch)."""
    best, best_epoch, wait = np.inf, None, 0
    for e, v in enumerate(val_loss):
        if v < best - min_delta:
            best, best_epoch, wait = v, e, 0
        else:
            wait += 1
            if wait >= patience:
                return e, best_epoch
    return len(val_loss) - 1, best_epoch


def test_early_stopping_min_delta_counts_only_large_enough_improvements():
    # lr 0.0125: s = 1 - 0.95^(k+1); val loss 0.2025, 0.1620, 0.1277, 0.0990, 0.0751,
    # 0.0553, 0.0393, ...: the improvement after epoch 4 (0.0198) is the first below 0.022
    net, tr, X, Y, val = linear_problem(lr=0.0125)
    snaps = []
    hist = tr.fit(X, Y, epochs=50, validation_data=val,
                  early_stopping=fastbp.EarlyStopping(patience=1, min_delta=0.022),
                  callbacks=epoch_snapshots(net, snaps))
    assert keras_rule(hist.val_loss, 1, 0.022) == (5, 4)
    assert len(hist.loss) == 6
    # The restored epoch is the last one that counted as better (Keras's
    # restore_best_weights), not the one with the smallest val_loss.
    assert snapshot(net) == snaps[4]
    assert net.cost(*val) == hist.val_loss[4] > min(hist.val_loss) == hist.val_loss[5]
    # without min_delta the same run goes on
    net0, tr0, _, _, _ = linear_problem(lr=0.0125)
    assert len(tr0.fit(X, Y, epochs=8, validation_data=val, early_stopping=1).loss) == 8


def test_callbacks_run_before_the_early_stopping_check():
    net, tr, X, Y, val = linear_problem()
    calls = []
    hist = tr.fit(X, Y, epochs=50, validation_data=val, early_stopping=1,
                  callbacks=lambda e, h: calls.append((e, len(h.val_loss))))
    # early stopping ends training after epoch 3; the callbacks still saw epoch 3
    assert len(hist.loss) == 4
    assert calls == [(e, e + 1) for e in range(4)]


def test_early_stopping_needs_validation_data():
    net = make_net()
    X, Y = make_data(net, 10)
    before = snapshot(net)
    for es in (3, fastbp.EarlyStopping(3)):
        with pytest.raises(ValueError, match="validation"):
            fastbp.Trainer(net).fit(X, Y, epochs=2, early_stopping=es)
    assert snapshot(net) == before


@pytest.mark.parametrize("args, exc", [((0,), ValueError), ((-1,), ValueError),
                                       ((1.5,), TypeError), ((True,), TypeError),
                                       ((2, -0.1), ValueError), ((2, float("nan")), ValueError),
                                       ((2, "0"), TypeError)])
def test_bad_early_stopping(args, exc):
    with pytest.raises(exc):
        fastbp.EarlyStopping(*args)
    net = make_net()
    X, Y = make_data(net, 10)
    before = snapshot(net)
    if len(args) == 1:
        with pytest.raises(exc):
            fastbp.Trainer(net).fit(X, Y, validation_data=(X, Y), early_stopping=args[0])
    assert snapshot(net) == before


# -- divergence ---------------------------------------------------------------------------------

DIVERGENCE = re.compile(r"epoch (\d+), step (\d+)")


@pytest.mark.parametrize("optimizer", [
    fastbp.SGD(lr=1e30), fastbp.SGD(lr=1e30, momentum=0.9),
    fastbp.SGD(lr=1e30, momentum=0.5, nesterov=True), fastbp.Adam(lr=1e30)],
    ids=["sgd", "momentum", "nesterov", "adam"])
def test_divergence_raises_and_keeps_the_last_finite_parameters(optimizer):
    # identity layers: a step of 1e30 makes the output grow like 1e30^depth
    net = fastbp.Network([3, 4, 4, 4, 4, 2], activation="identity", seed=0)
    net0 = net.copy()
    X, Y = make_data(net, 20)
    tr = fastbp.Trainer(net, optimizer, batch_size=5, shuffle=False)
    with pytest.raises(FloatingPointError, match="NaN or infinite") as info:
        tr.fit(X, Y, epochs=100)
    m = DIVERGENCE.search(str(info.value))
    assert m, str(info.value)
    epoch, step = int(m.group(1)), int(m.group(2))
    k = 4 * epoch + step                     # steps completed before the failing one
    assert tr.steps == k
    for p in net.weights + net.biases:
        assert np.isfinite(p).all()
    assert len(tr.history.loss) == len(tr.history.epoch_time) == epoch
    # the same steps one at a time: equal parameters and optimizer state, and the
    # next step fails the same way without changing anything
    net2, tr2 = replay_steps(net0, X, Y, optimizer, 5, k)
    assert snapshot(net2) == snapshot(net)
    assert opt_state(tr2) == opt_state(tr)
    s = 5 * step
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        tr2.step(X[s:s + 5], Y[s:s + 5])
    assert snapshot(net2) == snapshot(net)
    assert opt_state(tr2) == opt_state(tr)
    # the diverged trainer itself: fit and step raise again and change nothing
    with pytest.raises(FloatingPointError, match="epoch 0, step 0"):
        tr.fit(X[s:], Y[s:], epochs=1)
    with pytest.raises(FloatingPointError):
        tr.step(X[s:s + 5], Y[s:s + 5])
    assert snapshot(net2) == snapshot(net)
    assert opt_state(tr2) == opt_state(tr)


def test_divergence_in_a_later_epoch_keeps_the_finished_epochs():
    # s - 1 is multiplied by 1 - 4 lr = -3.9e10 per step: the cost overflows after
    # about 15 steps (7 epochs of 2 steps)
    net = fastbp.Network([1, 1], activation="identity", seed=0)
    net0 = net.copy()
    X, Y = np.ones((4, 1)), np.ones((4, 1))
    tr = fastbp.Trainer(net, fastbp.SGD(lr=1e10), batch_size=2, shuffle=False)
    seen = []
    with pytest.raises(FloatingPointError) as info:
        tr.fit(X, Y, epochs=1000, validation_data=(X, Y), callbacks=lambda e, h: seen.append(e))
    epoch, step = map(int, DIVERGENCE.search(str(info.value)).groups())
    assert epoch >= 3
    hist = tr.history
    assert len(hist.loss) == len(hist.val_loss) == len(hist.val_accuracy) == epoch
    assert seen == list(range(epoch))
    assert all(np.isfinite(hist.loss)) and all(np.isfinite(hist.val_loss))
    assert np.isfinite(net.weights[0]).all() and np.isfinite(net.biases[0]).all()
    net2, _ = replay_steps(net0, X, Y, fastbp.SGD(lr=1e10), 2, 2 * epoch + step)
    assert snapshot(net2) == snapshot(net)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_step_whose_update_would_overflow_changes_nothing(momentum):
    # A first step with a gradient of about 1e-300 moves the output biases by 2
    # (and leaves momentum buffers of about 1e-300); the second step's gradient
    # of about 1e9 would overflow lr * g.
    net = fastbp.Network([3, 4, 2], activation="identity", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    tr = fastbp.Trainer(net, fastbp.SGD(lr=1e300, momentum=momentum), batch_size=6)
    tr.step(np.zeros((2, 3)), np.full((2, 2), 1e-300))
    assert np.allclose(net.biases[-1], 2.0, rtol=1e-12, atol=0)
    if momentum:
        assert any(np.abs(s).max() > 0 for s in tr._state1)
    assert all(np.isfinite(b).all() for b in net.biases)
    before, state = snapshot(net), opt_state(tr)
    with pytest.raises(FloatingPointError, match="update became NaN or infinite"):
        tr.step(X, Y * 1e9)
    assert snapshot(net) == before and opt_state(tr) == state
    with pytest.raises(FloatingPointError, match="epoch 0, step 0"):
        tr.fit(X, Y * 1e9, epochs=3)
    assert snapshot(net) == before and opt_state(tr) == state
    assert tr.history.loss == []


def test_adam_step_whose_moments_would_overflow_changes_nothing():
    # inputs of 1e140 give a finite cost but gradients whose squares overflow
    net = fastbp.Network([3, 4, 2], activation="identity", seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    tr = fastbp.Trainer(net, fastbp.Adam(lr=1e-3))
    tr.step(X, Y)
    before, state = snapshot(net), opt_state(tr)
    assert state[0] == 1
    with pytest.raises(FloatingPointError, match="update became NaN or infinite"):
        tr.step(X * 1e140, Y)
    assert snapshot(net) == before and opt_state(tr) == state
    # and training goes on from there exactly as if the failed step never happened
    twin = fastbp.Network([3, 4, 2], activation="identity", seed=0)
    ttwin = fastbp.Trainer(twin, fastbp.Adam(lr=1e-3))
    ttwin.step(X, Y)
    assert tr.step(X, Y) == ttwin.step(X, Y)
    assert snapshot(net) == snapshot(twin)


@pytest.mark.parametrize("gradient", ["zero", "small"])
def test_float32_learning_rate_beyond_float32_range_never_leaves_non_finite_parameters(gradient):
    net = fastbp.Network([2, 2], activation="identity", dtype=np.float32, seed=0)
    X = np.full((3, 2), 1e-3, np.float32)
    Y = net.forward(X) + np.float32(0.0 if gradient == "zero" else 1e-3)
    tr = fastbp.Trainer(net, fastbp.SGD(lr=1e39), batch_size=3)
    before = snapshot(net)
    try:
        tr.step(X, Y)
    except FloatingPointError:
        assert snapshot(net) == before
    for p in net.weights + net.biases:
        assert np.isfinite(p).all(), p


# -- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc", [
    (dict(batch_size=0), ValueError), (dict(batch_size=-3), ValueError),
    (dict(batch_size=2.0), TypeError), (dict(batch_size="8"), TypeError),
    (dict(batch_size=True), TypeError), (dict(batch_size=None), TypeError),
    (dict(optimizer="rmsprop"), ValueError), (dict(optimizer="SGD"), ValueError),
    (dict(optimizer=3), TypeError), (dict(optimizer=None), TypeError),
    (dict(l2=-0.1), ValueError), (dict(l2=float("nan")), ValueError),
    (dict(l2=float("inf")), ValueError), (dict(l2="0"), TypeError),
    (dict(shuffle="yes"), TypeError), (dict(seed=-1), ValueError), (dict(seed=1.5), TypeError),
], ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__)
def test_bad_trainer_arguments(kwargs, exc):
    net = make_net()
    before = snapshot(net)
    (name,) = kwargs
    with pytest.raises(exc, match=name):          # the message names the argument
        fastbp.Trainer(net, **kwargs)
    assert snapshot(net) == before


@pytest.mark.parametrize("make, exc, match", [
    (lambda: fastbp.SGD(lr=0), ValueError, "lr"),
    (lambda: fastbp.SGD(lr=-0.1), ValueError, "lr"),
    (lambda: fastbp.SGD(lr=float("nan")), ValueError, "lr"),
    (lambda: fastbp.SGD(lr=float("inf")), ValueError, "lr"),
    (lambda: fastbp.SGD(lr="0.1"), TypeError, "lr"),
    (lambda: fastbp.SGD(momentum=-0.5), ValueError, "momentum"),
    (lambda: fastbp.SGD(nesterov=True), ValueError, "nesterov"),
    (lambda: fastbp.SGD(momentum=0.9, nesterov=1), TypeError, "nesterov"),
    (lambda: fastbp.Adam(lr=0), ValueError, "lr"),
    (lambda: fastbp.Adam(lr=-1e-3), ValueError, "lr"),
    (lambda: fastbp.Adam(beta1=1.0), ValueError, "beta1"),
    (lambda: fastbp.Adam(beta1=-0.1), ValueError, "beta1"),
    (lambda: fastbp.Adam(beta2=1.0), ValueError, "beta2"),
    (lambda: fastbp.Adam(beta2=1.5), ValueError, "beta2"),
    (lambda: fastbp.Adam(eps=-1e-8), ValueError, "eps"),
    (lambda: fastbp.Adam(eps=float("nan")), ValueError, "eps"),
])
def test_bad_optimizer_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_optimizer_edge_values_are_accepted():
    fastbp.Adam(beta1=0.0, beta2=0.0, eps=0.0)
    fastbp.SGD(lr=1e-12, momentum=0.0)
    assert fastbp.SGD(momentum=0.9, nesterov=np.True_).nesterov is True
    assert fastbp.Trainer(make_net(), "sgd").optimizer == fastbp.SGD()
    assert fastbp.Trainer(make_net(), "adam").optimizer == fastbp.Adam()


def test_validation_data_errors_name_the_validation_set():
    net = make_net(LAYOUTS[1])
    X, Y = make_data(net, 6)
    with pytest.raises(ValueError, match="^the validation X has 4 features per example; expected 5"):
        fastbp.Trainer(net).fit(X, Y, validation_data=(np.ascontiguousarray(X[:, :4]), Y))


def test_validation_target_errors_name_the_validation_set():
    net = make_net(LAYOUTS[1])
    X, Y = make_data(net, 6)
    with pytest.raises(ValueError, match="^the validation Y has 5 targets; expected 6, one per "
                                         "example of the validation X"):
        fastbp.Trainer(net).fit(X, Y, validation_data=(X, np.zeros(5, dtype=np.int64)))
    with pytest.raises(ValueError, match=r"^the validation Y: targets for the log_loss cost must "
                                         r"lie in \[0, 1\]"):
        fastbp.Trainer(net).fit(X, Y, validation_data=(X, Y * 3))


@pytest.mark.parametrize("what, i, bad", [
    ("weights", 0, np.asfortranarray), ("biases", 1, lambda b: np.repeat(b, 2)[::2]),
    ("weights", 2, lambda W: W.astype(np.float32)), ("biases", 0, lambda b: b[:-1].copy())])
@pytest.mark.parametrize("call", ["fit", "step"])
def test_replaced_parameters_the_core_cannot_use_are_refused_before_anything_changes(
        what, i, bad, call):
    """Fortran order, a strided view, another dtype, another shape: refused before
    the history or the optimizer state is touched."""
    net = make_net()
    X, Y = make_data(net, 8)
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=4, seed=0)
    tr.fit(X, Y, epochs=2)
    getattr(net, what)[i] = bad(getattr(net, what)[i])
    before, state, hist = snapshot(net), opt_state(tr), tr.history
    with pytest.raises((ValueError, TypeError), match=rf"^{what}\[{i}\] "):
        tr.fit(X, Y) if call == "fit" else tr.step(X, Y)
    assert snapshot(net) == before and opt_state(tr) == state and tr.history is hist
    assert len(hist.loss) == 2


@pytest.mark.parametrize("what, i", [("weights", 0), ("biases", 2)])
@pytest.mark.parametrize("call", ["fit", "step"])
def test_non_finite_parameters_are_a_value_error_before_anything_changes(what, i, call):
    net = make_net(LAYOUTS[1])
    X, Y = make_data(net, 8)
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=4, seed=0)
    tr.fit(X, Y)
    getattr(net, what)[i].flat[1] = np.nan
    before, state, hist = snapshot(net), opt_state(tr), tr.history
    with pytest.raises(ValueError, match=rf"^the network's {what}\[{i}\] contains NaN or infinity"):
        tr.fit(X, Y) if call == "fit" else tr.step(X, Y)
    assert snapshot(net) == before and opt_state(tr) == state and tr.history is hist


@pytest.mark.parametrize("name, value, exc", [
    ("batch_size", 0, ValueError), ("batch_size", 2.5, TypeError), ("l2", -1.0, ValueError),
    ("l2", "0", TypeError), ("shuffle", "no", TypeError), ("optimizer", "rmsprop", ValueError),
    ("optimizer", None, TypeError)])
def test_settings_are_checked_when_set(name, value, exc):
    tr = fastbp.Trainer(make_net(), fastbp.SGD(lr=0.1, momentum=0.9), batch_size=4, l2=0.01)
    settings = (tr.optimizer, tr.batch_size, tr.l2, tr.shuffle)
    with pytest.raises(exc, match=name):
        setattr(tr, name, value)
    assert (tr.optimizer, tr.batch_size, tr.l2, tr.shuffle) == settings


def test_changed_settings_take_effect():
    """A new lr keeps the momentum buffers (as a PyTorch param group's lr does);
    an optimizer with another kind of state starts that state afresh."""
    net, twin = make_net(LAYOUTS[1]), make_net(LAYOUTS[1])
    X, Y = make_data(net, 12)
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=4, shuffle=False)
    tr.fit(X, Y)
    tr.optimizer = fastbp.SGD(lr=0.05, momentum=0.9)
    tr.batch_size, tr.l2 = 6, 0.01
    assert tr.steps == 3
    tr.fit(X, Y)
    replay = fastbp.Trainer(twin, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=4, shuffle=False)
    replay.fit(X, Y)
    buffers = [a.copy() for a in replay._state1]
    for start in (0, 6):      # the second fit by hand: lr 0.05, batches of 6, l2 0.01
        g = twin.backprop(X[start:start + 6], Y[start:start + 6])
        for k, (P, G) in enumerate(zip(twin.weights + twin.biases, g.weights + g.biases)):
            G = G + (0.01 * P if k < len(twin.weights) else 0)
            buffers[k] = 0.9 * buffers[k] + G
            P -= 0.05 * buffers[k]
    for got, want in zip(net.weights + net.biases, twin.weights + twin.biases):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    tr.optimizer = "adam"
    assert tr.steps == 0 and len(tr._state1) == len(tr._state2) == 2 * net.n_layers
    assert all(not a.any() for a in tr._state1 + tr._state2)
    tr.fit(X, Y)
    assert tr.steps == 2


def test_non_network_is_a_type_error():
    for bad in (None, "net", [3, 4], make_net().weights):
        with pytest.raises(TypeError, match="Network"):
            fastbp.Trainer(bad)


def _bad_fit_cases():
    X = np.random.default_rng(0).normal(size=(10, 5))
    Y = np.random.default_rng(1).uniform(size=(10, 3))
    y = np.arange(10) % 3
    Xnan = X.copy()
    Xnan[9, 1] = np.nan          # in the last batch: the first ones must not train
    Ynan = Y.copy()
    Ynan[0, 0] = np.inf
    ok = dict(X=X, Y=Y)
    cases = [
        ("epochs<0", dict(ok, epochs=-1), ValueError),
        ("epochs-float", dict(ok, epochs=2.0), TypeError),
        ("epochs-bool", dict(ok, epochs=True), TypeError),
        ("X-width", dict(ok, X=X[:, :4]), ValueError),
        # C-contiguous arrays of the network's dtype take the fast path: same checks
        ("X-width-contiguous", dict(ok, X=np.ascontiguousarray(X[:, :4])), ValueError),
        ("X-1d-wrong-width", dict(X=np.ascontiguousarray(X[0, :4]), Y=y[0]), ValueError),
        ("X-1d", dict(ok, X=X[0]), ValueError),
        ("X-3d", dict(ok, X=X[None]), ValueError),
        ("X-empty", dict(X=X[:0], Y=Y[:0]), ValueError),
        ("X-nan", dict(ok, X=Xnan), ValueError),
        ("X-strings", dict(ok, X=X.astype(str)), TypeError),
        ("Y-rows", dict(ok, Y=Y[:9]), ValueError),
        ("Y-width", dict(ok, Y=Y[:, :2]), ValueError),
        ("Y-inf", dict(ok, Y=Ynan), ValueError),
        ("Y-outside-0-1", dict(ok, Y=Y + 1.0), ValueError),
        ("labels-high", dict(ok, Y=y + 1), ValueError),
        ("labels-negative", dict(ok, Y=y - 1), ValueError),
        ("labels-float-1d", dict(ok, Y=y.astype(float)), ValueError),
        ("val-not-a-pair", dict(ok, validation_data=X), TypeError),
        ("val-triple", dict(ok, validation_data=(X, Y, Y)), TypeError),
        ("val-width", dict(ok, validation_data=(X[:, :4], Y)), ValueError),
        ("val-width-contiguous", dict(ok, validation_data=(np.ascontiguousarray(X[:, :4]), Y)),
         ValueError),
        ("val-rows", dict(ok, validation_data=(X, Y[:5])), ValueError),
        ("val-target-width", dict(ok, validation_data=(X, Y[:, :2])), ValueError),
        ("val-nan", dict(ok, validation_data=(Xnan, Y)), ValueError),
        ("val-labels", dict(ok, validation_data=(X, y + 3)), ValueError),
        ("callback-not-callable", dict(ok, callbacks=[print, 3]), TypeError),
        ("callback-int", dict(ok, callbacks=3), TypeError),
        ("early-stopping-no-val", dict(ok, early_stopping=2), ValueError),
        ("early-stopping-0", dict(ok, validation_data=(X, Y), early_stopping=0), ValueError),
        ("progress-str", dict(ok, progress="yes"), TypeError),
    ]
    return [pytest.param(kw, exc, id=name) for name, kw, exc in cases]


@pytest.mark.parametrize("kwargs, exc", _bad_fit_cases())
def test_bad_fit_arguments_raise_before_anything_changes(kwargs, exc):
    net = make_net(LAYOUTS[1])
    X, Y = kwargs.pop("X"), kwargs.pop("Y")
    Xg, Yg = make_data(net, 12)
    tr = fastbp.Trainer(net, fastbp.Adam(lr=0.01), batch_size=4, seed=5)
    tr.fit(Xg, Yg, epochs=1)                       # some history and state
    before, state, hist = snapshot(net), opt_state(tr), tr.history
    with pytest.raises(exc):
        tr.fit(X, Y, epochs=kwargs.pop("epochs", 2), **kwargs)
    assert snapshot(net) == before
    assert opt_state(tr) == state
    assert tr.history is hist and len(hist.loss) == 1
    # the trainer's generator did not move either: the next fit is the one an
    # untouched twin makes
    twin = make_net(LAYOUTS[1])
    ttwin = fastbp.Trainer(twin, fastbp.Adam(lr=0.01), batch_size=4, seed=5)
    ttwin.fit(Xg, Yg, epochs=1)
    tr.fit(Xg, Yg, epochs=1)
    ttwin.fit(Xg, Yg, epochs=1)
    assert snapshot(net) == snapshot(twin)


@pytest.mark.parametrize("X, Y", [
    (np.zeros((3, 4)), np.zeros((3, 3))), (np.zeros((3, 5)), np.zeros((2, 3))),
    (np.full((3, 5), np.nan), np.zeros((3, 3))), (np.zeros((3, 5)), np.array([0, 1, 3])),
    (np.zeros((0, 5)), np.zeros((0, 3))), (np.zeros((3, 5)), np.full((3, 3), 2.0)),
], ids=["X-width", "Y-rows", "X-nan", "label-range", "empty", "Y-range"])
def test_bad_step_arguments_change_nothing(X, Y):
    net = make_net(LAYOUTS[1])
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9))
    Xg, Yg = make_data(net, 4)
    tr.step(Xg, Yg)
    before, state = snapshot(net), opt_state(tr)
    with pytest.raises(ValueError):
        tr.step(X, Y)
    assert snapshot(net) == before
    assert opt_state(tr) == state


def test_large_finite_inputs_are_not_mistaken_for_infinity():
    # the sum of X overflows, each value is finite: the input check must let it through
    net = fastbp.Network([5, 3, 2], activation="tanh", seed=0)
    X = np.full((4, 5), 1e308)
    Y = np.zeros((4, 2))
    tr = fastbp.Trainer(net, batch_size=2)
    tr.fit(X, Y, epochs=1)
    tr.step(X, Y)
    assert tr.steps == 3


# -- dtype ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", ["sgd", "adam", fastbp.SGD(lr=0.1, momentum=0.9)],
                         ids=["sgd", "adam", "momentum"])
def test_float32_in_float32_out(opt):
    net = make_net(LAYOUTS[1], np.float32)
    arrays = net.weights + net.biases
    X, Y = make_data(net, 30)
    tr = fastbp.Trainer(net, opt, batch_size=7, seed=0)
    hist = tr.fit(X.astype(np.float64), Y, epochs=2, validation_data=(X, Y), early_stopping=5)
    cost = tr.step(X[:5], Y[:5])
    for a, b in zip(net.weights + net.biases, arrays):
        assert a is b                         # updated in place, no hidden copies
        assert a.dtype == np.float32
    assert type(cost) is float
    for values in (hist.loss, hist.val_loss, hist.val_accuracy, hist.epoch_time):
        assert all(type(v) is float for v in values)
    for s in tr._state1 + tr._state2:
        assert s.dtype == np.float32


# -- threads ---------------------------------------------------------------------------------------

def test_concurrent_training_of_one_network_is_refused():
    net = make_net()
    X, Y = make_data(net, 20)
    entered, release = threading.Event(), threading.Event()
    result = {}

    def block(epoch, history):
        if epoch == 0:
            entered.set()
            release.wait(timeout=60)

    def run():
        try:
            result["history"] = fastbp.Trainer(net, batch_size=5, seed=0).fit(
                X, Y, epochs=2, callbacks=block)
        except BaseException as e:       # pragma: no cover - reported below
            result["error"] = e

    other = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=5)
    other_history = other.fit(X, Y, epochs=1)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert entered.wait(timeout=60)
        before, state = snapshot(net), opt_state(other)
        with pytest.raises(RuntimeError, match="already being trained"):
            other.step(X[:5], Y[:5])
        with pytest.raises(RuntimeError, match="already being trained"):
            other.fit(X, Y)
        assert snapshot(net) == before
        assert opt_state(other) == state
        assert other.history is other_history and len(other_history.loss) == 1
        # other networks, and inference on this one, are not blocked
        net.forward(X)
        fastbp.Trainer(net.copy(), batch_size=5).step(X[:5], Y[:5])
    finally:
        release.set()
        thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    assert len(result["history"].loss) == 2
    # the lock is free again
    fastbp.Trainer(net).step(X[:5], Y[:5])


@pytest.mark.parametrize("sizes, optimizer", [((20, 32, 10), "adam"),
                                              ((100, 83, 7, 3), fastbp.SGD(lr=0.5))],
                         ids=["adam", "split-sgd"])
def test_two_trainers_in_two_threads_match_sequential_training(sizes, optimizer):
    """With plain SGD's split first layer, the first fit may start two OpenMP
    threads and the second finds it running: both give the sequential bits."""
    nets = [make_net(seed=s, sizes=sizes) for s in (1, 2)]
    copies = [n.copy() for n in nets]
    data = [make_data(n, 400, seed=s) for s, n in enumerate(nets)]
    errors = []

    def train(net, X, Y, seed):
        try:
            fastbp.Trainer(net, optimizer, batch_size=16, seed=seed).fit(X, Y, epochs=5)
        except BaseException as e:       # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=train, args=(n, *d, i))
               for i, (n, d) in enumerate(zip(nets, data))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i, (net, d) in enumerate(zip(copies, data)):
        fastbp.Trainer(net, optimizer, batch_size=16, seed=i).fit(*d, epochs=5)
        assert snapshot(net) == snapshot(nets[i])


# -- the split first layer (two OpenMP threads) -------------------------------------------

# Training splits a first layer of at least 64 inputs and 8192 weights in two
# column blocks (48 and 52 inputs here) and runs the blocks on two OpenMP threads
# when every other product of a step is small (batch x weights <= 2^18: batches
# up to 451 here); a block's products beyond 2^18 multiply-adds (batches over 60
# here) are computed in pieces of at most 2^18, for a first layer of at most
# 256 units. PIECE_SIZES has pieces of every kind at batch 50: forward, rows
# 0-24 and 25-49 of the batch and inputs 0-255 and the rest of each block;
# the weight gradient, rows 0-39 and 40-49 and 160 columns at a time.
SPLIT_SIZES = (100, 83, 7, 3)
PIECE_SIZES = (600, 40, 5)
SPLIT_LAYOUTS = LAYOUTS + [("sigmoid", "sigmoid", "quadratic")]
SPLIT_OPTIMIZERS = [fastbp.SGD(lr=0.5), fastbp.SGD(lr=0.2, momentum=0.9, nesterov=True),
                    fastbp.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7)]
SPLIT_OPT_IDS = ["sgd", "nesterov", "adam"]


def omp_threads(n):
    """At most n OpenMP threads (threadpoolctl), as a user caps them."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return threadpoolctl.threadpool_limits(n, user_api="openmp")


def split_run(net, X, Y, batch, lr=0.5, x_bound=0.0, optimizer=None, l2=0.0):
    """Every mini-batch of (X, Y) in one core call (plain SGD unless given),
    shuffled by a fixed permutation; returns the Workspace and the status."""
    order = np.random.default_rng(7).permutation(X.shape[0]).astype(np.int64)
    return _one_call(net, optimizer or fastbp.SGD(lr=lr), X, Y, batch, order, x_bound, l2)


def require_two_threads():
    """Skip unless this build and machine run the split layer on two threads."""
    net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
    ws, _ = split_run(net, *make_data(net, 20), 10)
    if ws.threads != 2:
        pytest.skip(f"the split layer ran on {ws.threads} thread(s): no OpenMP or one core")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("batch", [10, 80], ids=["batch10", "batch80"])
@pytest.mark.parametrize("layout", SPLIT_LAYOUTS, ids="-".join)
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_split_first_layer_equals_reference(opt_id, optimizer, spec, layout, batch, shuffle,
                                            dtype):
    """157 examples in batches of 10 (the last of 7; on two threads where there
    are two) or 80 (the blocks' products in pieces), with l2."""
    net = make_net(layout, dtype, sizes=SPLIT_SIZES)
    X, Y = make_data(net, 157)
    oracle = Oracle(net, spec, l2=0.01)
    tr = fastbp.Trainer(net, optimizer, batch_size=batch, l2=0.01, shuffle=shuffle, seed=99)
    hist = tr.fit(X, Y, epochs=3)
    rng = np.random.default_rng(99)
    want = [oracle.epoch(X, Y, rng.permutation(157) if shuffle else np.arange(157), batch)
            for _ in range(3)]
    # (float32 momentum over 48 steps of 100-input sums drifts past 1e-5 from the
    # oracle's own float32 rounding, with the layer split or without)
    rtol = RTOL[np.dtype(dtype)] * (5 if dtype == np.float32 else 1)
    oracle.assert_matches(net, rtol)
    assert hist.loss == pytest.approx(want, rel=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("sizes, batch", [(SPLIT_SIZES, 1), (SPLIT_SIZES, 10),
                                          (SPLIT_SIZES, 37), (SPLIT_SIZES, 80),
                                          (PIECE_SIZES, 50), (PIECE_SIZES[:2], 50)],
                         ids=["batch1", "batch10", "batch37", "batch80-pieces",
                              "600-inputs-pieces", "one-layer-pieces"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS, ids=SPLIT_OPT_IDS)
def test_split_first_layer_is_bit_identical_on_one_and_two_threads(optimizer, l2, sizes, batch,
                                                                   dtype):
    require_two_threads()
    results = []
    for limit in (None, 1):
        net = make_net(SPLIT_LAYOUTS[2], dtype, sizes=sizes)
        X, Y = make_data(net, 301)
        if limit is None:
            ws, status = split_run(net, X, Y, batch, optimizer=optimizer, l2=l2)
            assert ws.threads == 2
        else:
            with omp_threads(limit):
                ws, status = split_run(net, X, Y, batch, optimizer=optimizer, l2=l2)
            assert ws.threads == 1
        assert status == 0 and ws.steps_done == -(-301 // batch)
        results.append((snapshot(net), ws.loss_sum))
    assert results[0] == results[1]


@pytest.mark.parametrize("sizes, batch", [((100, 300, 3), 64), (SPLIT_SIZES, 460),
                                          ((784, 100, 2), 900)],
                         ids=["300-units", "large-second-layer", "large-block"])
@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS, ids=SPLIT_OPT_IDS)
def test_split_first_layer_with_large_products_runs_on_one_thread(optimizer, sizes, batch):
    """Products beyond 2^18 multiply-adds that are not cut in pieces (a first
    layer of more than 256 units, a block's product beyond 2^25 - 900 x 400 x
    100 is 36M in float32, 900 x 392 x 100 35M in float64 -, or any other
    layer) are OpenBLAS's to thread (on its own threads, whose count changes
    the bits: fastbp leaves it alone)."""
    net = make_net(SPLIT_LAYOUTS[2], sizes=sizes)
    ws, status = split_run(net, *make_data(net, 2 * batch), batch, optimizer=optimizer)
    assert status == 0 and ws.threads == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_split_first_layer_in_pieces_equals_reference(opt_id, optimizer, spec, dtype):
    """600 inputs in blocks of 288 / 296 and 312 / 304 (float32 / float64),
    batches of 50 and a last of 7, with l2: every kind of piece, shuffled."""
    net = make_net(LAYOUTS[1], dtype, sizes=PIECE_SIZES)
    X, Y = make_data(net, 157)
    oracle = Oracle(net, spec, l2=0.01)
    tr = fastbp.Trainer(net, optimizer, batch_size=50, l2=0.01, seed=5)
    hist = tr.fit(X, Y, epochs=2)
    rng = np.random.default_rng(5)
    want = [oracle.epoch(X, Y, rng.permutation(157), 50) for _ in range(2)]
    rtol = RTOL[np.dtype(dtype)] * (5 if dtype == np.float32 else 1)
    oracle.assert_matches(net, rtol)
    assert hist.loss == pytest.approx(want, rel=rtol)


def test_slow_steps_are_measured_in_shorter_windows():
    """Steps of a millisecond or so (784-100-2 at batch 800: 63M multiply-adds
    in the first layer, in pieces) are measured in windows of 2 ms rather than
    64 steps, so 20 steps have already measured both ways."""
    require_two_threads()
    net = fastbp.Network([784, 100, 2], activation="relu", output="softmax", cost="log_loss",
                         dtype="float32", seed=0)
    X, Y = make_data(net, 16000)
    ws, status = split_run(net, X, Y, 800, optimizer=fastbp.Adam())
    alone, two, _, clock = net._kernel._adapt_state()
    assert status == 0 and ws.threads == 2
    assert alone > 0 and two > 0 and clock > 0


@contextlib.contextmanager
def step_windows(net):
    """Windows of 64 steps only (not also of 2 ms), so that the steps at which
    windows end do not depend on the machine's speed; and new networks start
    measuring from nothing."""
    core = sys.modules[type(net._kernel).__module__]
    core._forget_shared_measurements()
    core._set_window_seconds(np.inf)
    try:
        yield
    finally:
        core._set_window_seconds(0.002)


@contextlib.contextmanager
def forced_switches(net, windows):
    """Make the training loop switch between two threads and one after every
    `windows` counted windows of 64 steps (the first window after a switch is
    not counted), whatever it measures (0: as measured)."""
    # (the module the kernel comes from: _core, or _core_avx2 behind it)
    core = sys.modules[type(net._kernel).__module__]
    core._forget_shared_measurements()
    core._set_adapt_force(windows)
    try:
        yield
    finally:
        core._set_adapt_force(0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS, ids=SPLIT_OPT_IDS)
def test_switching_between_one_thread_and_two_keeps_the_results(optimizer, dtype):
    """The loop ends its parallel region to go on with thread 0 alone, and
    starts one again, as it measures one way or the other to run faster.
    Forced to switch after every counted window (so every second window) or
    every two (every third), two calls in a row (the second goes on the way
    the first ended, and with its last, unfinished window) give bit-identical
    results to one thread and to two left to measure."""
    require_two_threads()
    results = []
    for windows, limit in ((0, None), (1, None), (2, None), (0, 1)):
        net = make_net(SPLIT_LAYOUTS[2], dtype, sizes=SPLIT_SIZES)
        X, Y = make_data(net, 4000)
        with forced_switches(net, windows), step_windows(net):
            if limit is None:
                runs = [split_run(net, X, Y, 10, optimizer=optimizer) for _ in range(2)]
            else:
                with omp_threads(limit):
                    runs = [split_run(net, X, Y, 10, optimizer=optimizer) for _ in range(2)]
        for ws, status in runs:
            assert status == 0 and ws.steps_done == 400
            assert ws.threads == (2 if limit is None else 1)
        solo = [ws.solo_steps for ws, _ in runs]
        if windows == 1:    # alone for steps 129-256 and 385-400, then 1-112 and 241-368
            assert solo == [144, 240]
        elif windows == 2:  # alone for steps 193-384, then 177-368
            assert solo == [192, 192]
        elif limit == 1:
            assert solo == [0, 0]
        else:   # as measured: the first call tries one thread from step 193 on
            alone, duo, _, clock = net._kernel._adapt_state()
            assert alone > 0 and duo > 0 and clock > 0 and solo[0] >= 128
        results.append((snapshot(net), [ws.loss_sum for ws, _ in runs]))
    assert results[1] == results[0] and results[2] == results[0] and results[3] == results[0]


def test_windows_span_short_calls():
    """Calls shorter than a window (progress-bar slices of small data sets)
    still measure and switch: a window goes on in the next call. Twenty calls
    of 20 steps switch as one call of 400 steps does."""
    require_two_threads()
    results = []
    for limit in (None, 1):
        net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
        X, Y = make_data(net, 200)
        with forced_switches(net, 1), omp_threads(limit or 2):
            runs = [split_run(net, X, Y, 10) for _ in range(20)]
        assert all(status == 0 and ws.steps_done == 20 for ws, status in runs)
        assert sum(ws.solo_steps for ws, _ in runs) == (144 if limit is None else 0)
        results.append((snapshot(net), [ws.loss_sum for ws, _ in runs]))
    assert results[0] == results[1]


@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS[1:], ids=SPLIT_OPT_IDS[1:])
def test_a_call_that_starts_alone_and_goes_on_alone(optimizer):
    """A call that starts on thread 0 alone (the last one ended so) and whose
    first momentum or Adam step is not proven finite (the rest of the call
    then runs on thread 0 alone whatever it measures) computes as one thread
    does."""
    require_two_threads()
    results = []
    for limit in (None, 1):
        net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
        X, Y = make_data(net, 4000)
        with forced_switches(net, 1), omp_threads(limit or 2):
            first, _ = split_run(net, X, Y, 10, optimizer=optimizer)
            ws, status = split_run(net, X[:1000], Y[:1000], 10, x_bound=np.inf,
                                   optimizer=optimizer)
        assert status == 0 and ws.steps_done == 100 and ws.checked_steps == 100
        assert ws.threads == (2 if limit is None else 1)
        assert ws.solo_steps == (100 if limit is None else 0)
        results.append((snapshot(net), first.loss_sum, ws.loss_sum))
    assert results[0] == results[1]


def test_measurements_are_kept_per_batch_size_and_optimizer():
    """What the loop measured (seconds per step each way) stays with the
    network for the next call with the same batch size and optimizer, and is
    dropped for another."""
    require_two_threads()
    net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
    assert net._kernel._adapt_state() == (0.0, 0.0, True, 0.0)
    X, Y = make_data(net, 4000)
    with step_windows(net):
        split_run(net, X, Y, 10)        # 400 steps: both ways measured by step 320
        alone, duo, _, clock = net._kernel._adapt_state()
        assert alone > 0 and duo > 0 and clock > 0
        split_run(net, X[:50], Y[:50], 10)          # 5 steps: no window ends
        assert net._kernel._adapt_state()[3] == clock
        split_run(net, X[:50], Y[:50], 9)           # another batch size
        assert net._kernel._adapt_state() == (0.0, 0.0, True, 0.0)
        split_run(net, X, Y, 10, optimizer=fastbp.Adam())
        assert net._kernel._adapt_state()[3] > 0
        split_run(net, X[:50], Y[:50], 10)          # back to SGD: measured afresh
        assert net._kernel._adapt_state() == (0.0, 0.0, True, 0.0)


def test_a_new_network_of_the_same_layout_starts_from_the_last_measurements():
    """A new network of the same layout, batch size and optimizer starts from
    what the last two-thread training call measured (as a benchmark or a
    sweep builds one network after another); another layout does not."""
    require_two_threads()
    first = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
    X, Y = make_data(first, 4000)
    with step_windows(first):
        split_run(first, X, Y, 10)      # 400 steps: both ways measured by step 320
        measured = first._kernel._adapt_state()
        assert measured[0] > 0 and measured[1] > 0
        same = make_net(SPLIT_LAYOUTS[2], seed=3, sizes=SPLIT_SIZES)
        assert same._kernel._adapt_state() == (0.0, 0.0, True, 0.0)
        split_run(same, X[:50], Y[:50], 10)         # 5 steps: no window ends
        assert same._kernel._adapt_state() == measured
        other = make_net(SPLIT_LAYOUTS[1], sizes=SPLIT_SIZES)    # another activation
        split_run(other, X[:50], Y[:50], 10)
        assert other._kernel._adapt_state() == (0.0, 0.0, True, 0.0)


def test_a_bad_row_in_a_stretch_run_alone_ends_the_call():
    """Status 3 from a batch thread 0 runs alone (between two stretches on two
    threads) ends the call, with the earlier steps as on one thread."""
    require_two_threads()
    results = []
    for limit in (None, 1):
        net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
        X, Y = make_data(net, 4000)
        order = np.random.default_rng(7).permutation(X.shape[0]).astype(np.int64)
        X[order[1994]] = np.nan         # in step 200 (1-based), the second window alone
        with forced_switches(net, 1), omp_threads(limit or 2):
            ws, status = _one_call(net, fastbp.SGD(lr=0.5), X, Y, 10, order)
        assert status == 3 and ws.steps_done == 199
        assert ws.solo_steps == (199 - 128 if limit is None else 0)
        results.append((snapshot(net), ws.loss_sum))
    assert results[0] == results[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("sizes, batch", [(SPLIT_SIZES, 10), (SPLIT_SIZES, 64),
                                          (PIECE_SIZES, 50)],
                         ids=["batch10", "batch64-pieces", "600-inputs-pieces"])
@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS, ids=SPLIT_OPT_IDS)
def test_split_first_layer_proven_and_checked_updates_are_bit_identical(optimizer, l2, sizes,
                                                                       batch, dtype):
    """An infinite bound on |X| proves nothing: every step takes the checked path,
    which thread 0 runs alone (the whole of W^1 too) between the barriers; for
    momentum and Adam, once a proof fails thread 0 goes on alone."""
    results = []
    for x_bound in (0.0, np.inf):
        net = make_net(SPLIT_LAYOUTS[1], dtype, sizes=sizes)
        X, Y = make_data(net, 95)
        ws, status = split_run(net, X, Y, batch, x_bound=x_bound, optimizer=optimizer, l2=l2)
        assert status == 0
        if x_bound > 0:
            assert ws.checked_steps == -(-95 // batch)
        elif l2 == 0:       # (Adam's proof with l2 fails now and then: checked steps too)
            assert ws.checked_steps == 0
        results.append((snapshot(net), ws.loss_sum))
    assert results[0] == results[1]


@pytest.mark.parametrize("sizes, batch", [((64, 128, 2), 5), ((600, 40, 5), 50)],
                         ids=["batch5", "pieces"])
def test_split_first_layer_divergence_keeps_the_last_finite_parameters(sizes, batch):
    # identity layers and lr 1e30: the cost overflows after a few steps
    net = fastbp.Network(list(sizes), activation="identity", seed=0)
    net0 = net.copy()
    X, Y = make_data(net, 8 * batch)
    tr = fastbp.Trainer(net, fastbp.SGD(lr=1e30), batch_size=batch, shuffle=False)
    with pytest.raises(FloatingPointError, match="NaN or infinite") as info:
        tr.fit(X, Y, epochs=100)
    epoch, step = map(int, DIVERGENCE.search(str(info.value)).groups())
    k = 8 * epoch + step
    assert tr.steps == k >= 1
    assert all(np.isfinite(p).all() for p in net.weights + net.biases)
    net2, tr2 = replay_steps(net0, X, Y, fastbp.SGD(lr=1e30), batch, k)
    assert snapshot(net2) == snapshot(net)


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.005])
def test_a_fit_that_another_fit_joins_goes_on_alone_with_the_same_bits(delay):
    """The first fit starts two threads; when a second fit starts during one of
    its core calls, it goes on with one thread (both threads finish their step
    first); both get the bits of sequential training."""
    require_two_threads()
    nets = [make_net(SPLIT_LAYOUTS[2], seed=s, sizes=SPLIT_SIZES) for s in (1, 2)]
    copies = [n.copy() for n in nets]
    data = [make_data(nets[0], 20000, seed=5), make_data(nets[1], 3000, seed=6)]
    epochs = [3, 2]
    errors = []

    def first():
        try:
            fastbp.Trainer(nets[0], fastbp.SGD(lr=0.1), batch_size=10, seed=0).fit(
                *data[0], epochs=epochs[0])
        except BaseException as e:       # pragma: no cover
            errors.append(e)

    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(delay)
    fastbp.Trainer(nets[1], fastbp.SGD(lr=0.1), batch_size=10, seed=1).fit(
        *data[1], epochs=epochs[1])
    thread.join(timeout=120)
    assert not errors, errors
    for i, net in enumerate(copies):
        fastbp.Trainer(net, fastbp.SGD(lr=0.1), batch_size=10, seed=i).fit(*data[i], epochs=epochs[i])
        assert snapshot(net) == snapshot(nets[i])


FORK_AFTER_TORCH = """
import os, sys
import numpy as np
import torch
torch.set_num_threads(2)
torch.ones(512, 512) @ torch.ones(512, 512)      # a parallel region in the parent
import fastbp
X = np.random.default_rng(0).normal(size=(300, 100))
Y = np.eye(3)[np.arange(300) % 3]
pid = os.fork()
if pid == 0:
    net = fastbp.Network([100, 83, 3], seed=0)
    fastbp.Trainer(net, fastbp.SGD(lr=0.1), batch_size=10).fit(X, Y, epochs=2)
    os._exit(0 if np.isfinite(net.weights[0]).all() else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_after_another_library_used_openmp_trains():
    """torch's libgomp.so.1, loaded first, serves fastbp too: a child forked
    after torch ran a parallel region must not start OpenMP threads either."""
    pytest.importorskip("torch")
    import subprocess
    proc = subprocess.run([sys.executable, "-c", FORK_AFTER_TORCH], timeout=120,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _forked_child_fit(sizes, want, conn):
    net = make_net(SPLIT_LAYOUTS[2], sizes=sizes)
    ws, status = split_run(net, *make_data(net, 300), 10)
    conn.send((status, ws.threads, snapshot(net) == want))
    conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_forked_after_two_thread_training_trains_on_one():
    """GNU OpenMP hangs in a child forked after a parallel region; fastbp's
    child trains on one thread instead, to the same bits."""
    import multiprocessing
    require_two_threads()
    net = make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES)
    ws, status = split_run(net, *make_data(net, 300), 10)
    assert status == 0 and ws.threads == 2
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_forked_child_fit, args=(SPLIT_SIZES, snapshot(net), child))
    proc.start()
    try:
        assert parent.poll(60), "the forked child hung"
        assert parent.recv() == (0, 1, True)
    finally:
        proc.join(10)
        if proc.is_alive():         # pragma: no cover
            proc.kill()
    assert proc.exitcode == 0
    # and the parent still trains on two
    ws, status = split_run(make_net(SPLIT_LAYOUTS[2], sizes=SPLIT_SIZES),
                           *make_data(net, 300), 10)
    assert ws.threads == 2


# -- Ctrl-C -----------------------------------------------------------------------------------------

def check_interrupted(net0, net, tr, X, Y, batch_size, optimizer):
    """After a KeyboardInterrupt: finished epochs only, consistent lengths, and the
    network at a completed step (the one `tr.steps` steps done one by one reach)."""
    hist = tr.history
    lengths = {len(hist.loss), len(hist.val_loss), len(hist.val_accuracy),
               len(hist.epoch_time)}
    assert len(lengths) == 1, lengths
    finished = len(hist.loss)
    per_epoch = -(-X.shape[0] // batch_size)
    assert finished * per_epoch <= tr.steps <= (finished + 1) * per_epoch
    for p in net.weights + net.biases:
        assert np.isfinite(p).all()
    want = net0.copy()
    tw = fastbp.Trainer(want, optimizer, batch_size=batch_size, shuffle=False)
    full, rest = divmod(tr.steps, per_epoch)
    tw.fit(X, Y, epochs=full)
    if rest:
        tw.fit(X[:rest * batch_size], Y[:rest * batch_size], epochs=1)
    assert snapshot(want) == snapshot(net)
    assert opt_state(tw) == opt_state(tr)
    # the network is free for training again
    tr.step(X[:batch_size], Y[:batch_size])


@pytest.mark.parametrize("sizes, optimizer", [
    ((20, 16, 4), fastbp.SGD(lr=0.01, momentum=0.9)),
    ((100, 83, 4), fastbp.SGD(lr=0.01))], ids=["momentum", "split-sgd"])
def test_ctrl_c_from_a_timer_during_a_long_fit(sizes, optimizer):
    """The split layer's thread 0 polls for signals; the step it polls after is
    finished by both threads before the call returns."""
    net = make_net(sizes=sizes)
    net0 = net.copy()
    X, Y = make_data(net, 4096, seed=3)          # 4096 steps of one example per epoch
    tr = fastbp.Trainer(net, optimizer, batch_size=1, shuffle=False)
    started = time.perf_counter()
    lock = threading.Lock()
    running = [True]

    def guard(epoch, history):                   # never hang: stop after 60 s
        return time.perf_counter() - started < 60

    def interrupt():
        time.sleep(0.3)
        with lock:
            if running[0]:
                _thread.interrupt_main()

    timer = threading.Thread(target=interrupt)
    with pytest.raises(KeyboardInterrupt):
        try:
            timer.start()
            tr.fit(X, Y, epochs=10 ** 6, validation_data=(X[:50], Y[:50]), callbacks=guard)
        finally:
            with lock:
                running[0] = False
            timer.join()
    check_interrupted(net0, net, tr, X, Y, 1, optimizer)


@pytest.mark.parametrize("where", ["callback", "validation"])
def test_ctrl_c_between_steps_keeps_the_history_consistent(where, monkeypatch):
    """Ctrl-C arriving in Python code between the core's calls: in a callback (after
    the epoch is recorded) or while the validation accuracy is measured (before)."""
    net = make_net()
    net0 = net.copy()
    X, Y = make_data(net, 20)
    optimizer = fastbp.Adam(lr=0.01)
    tr = fastbp.Trainer(net, optimizer, batch_size=5, shuffle=False)
    calls = []

    def callback(epoch, history):
        calls.append(epoch)
        if where == "callback" and epoch == 1:
            signal.raise_signal(signal.SIGINT)

    if where == "validation":
        predict = net.predict

        def interrupted_predict(X):
            if len(calls) == 1:
                raise KeyboardInterrupt
            return predict(X)

        monkeypatch.setattr(net, "predict", interrupted_predict)
    with pytest.raises(KeyboardInterrupt):
        tr.fit(X, Y, epochs=5, validation_data=(X, Y), callbacks=callback)
    monkeypatch.undo()
    assert len(tr.history.loss) == (2 if where == "callback" else 1)
    assert tr.steps == 8
    check_interrupted(net0, net, tr, X, Y, 5, optimizer)


# -- progress ---------------------------------------------------------------------------------------

def _progress_run(progress, capsys, shuffle=True):
    net = make_net()
    X, Y = make_data(net, 3000)
    capsys.readouterr()
    hist = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.5), batch_size=10,
                          shuffle=shuffle, seed=0).fit(X, Y, epochs=2, progress=progress)
    return snapshot(net), hist, capsys.readouterr()


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    quiet, hq, out_q = _progress_run(False, capsys)
    loud, hl, out_l = _progress_run(True, capsys)
    assert out_q.err == "" and out_q.out == ""
    assert out_l.err != ""
    assert out_l.out == ""
    assert loud == quiet
    assert hl.loss == pytest.approx(hq.loss, rel=1e-12)


def test_progress_bar_without_tqdm(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    quiet, hq, _ = _progress_run(False, capsys, shuffle=False)
    loud, hl, out = _progress_run(True, capsys, shuffle=False)
    assert "epoch 1" in out.err and "epoch 2" in out.err and "loss" in out.err
    assert out.out == ""
    assert loud == quiet
    assert hl.loss == pytest.approx(hq.loss, rel=1e-12)


def test_no_progress_bar_by_default_when_not_on_a_terminal(capsys):
    _, _, out = _progress_run(None, capsys)
    assert out.err == "" and out.out == ""


# -- memory ---------------------------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_repeated_fits_do_not_grow_memory():
    net = make_net(sizes=(64, 64, 10))
    X, Y = make_data(net, 2000)
    tr = fastbp.Trainer(net, "adam", batch_size=10, seed=0)
    for _ in range(3):                                   # warm-up
        tr.fit(X, Y, epochs=1, validation_data=(X[:200], Y[:200]))
    start = rss_bytes()
    for _ in range(25):                                  # 5000 steps
        tr.fit(X, Y, epochs=1, validation_data=(X[:200], Y[:200]))
        tr.step(X[:10], Y[:10])
    grown = rss_bytes() - start
    # One batch of buffers is about 15 kB; anything kept per step or per fit would
    # add tens of MB here.
    assert grown < 8 * 2 ** 20, grown


# -- X checked batch by batch, and an epoch undone ---------------------------------------

@pytest.fixture(params=["rollback", "up-front"])
def x_check(request, monkeypatch):
    """Both ways fit checks X: batch by batch in the core, undoing the epoch that
    finds a bad row (for networks small next to X), or in one pass before
    training (then the core never sees the bad row: the same error, the same
    nothing changed)."""
    monkeypatch.setattr(fastbp.trainer, "_ROLLBACK_SHARE", np.inf if request.param == "rollback"
                        else 0.0)
    return request.param


def _x_passes(monkeypatch):
    """Record what the trainer's whole-array finiteness pass is run on."""
    seen = []
    real = fastbp.trainer._check_finite

    def spy(X, what):
        seen.append(what)
        return real(X, what)

    monkeypatch.setattr(fastbp.trainer, "_check_finite", spy)
    return seen


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
@pytest.mark.parametrize("row", [0, 37, 94])       # the first batch, a middle one, the last (odd) one
@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffled", "in-order"])
@pytest.mark.parametrize("opt_id, optimizer, spec", OPTIMIZERS, ids=OPT_IDS)
def test_bad_x_changes_nothing(opt_id, optimizer, spec, shuffle, row, bad, x_check):
    """NaN or infinity anywhere in X is a ValueError naming the row; whichever way
    fit found it, parameters, optimizer state, step count, history and the
    generator are as before (the next fit matches an untouched twin's)."""
    def trained():
        net = make_net(LAYOUTS[1])
        tr = fastbp.Trainer(net, optimizer, batch_size=10, shuffle=shuffle, seed=3)
        tr.fit(*make_data(net, 30, seed=4), epochs=1)
        return net, tr

    net, tr = trained()
    X, Y = make_data(net, 95)
    Xbad = X.copy()
    Xbad[row, row % 5] = bad
    before, state, hist = snapshot(net), opt_state(tr), tr.history
    with pytest.raises(ValueError, match=rf"^X contains NaN or infinity \(row {row}\); "):
        tr.fit(Xbad, Y, epochs=2)
    assert snapshot(net) == before
    assert opt_state(tr) == state
    assert tr.history is hist
    twin, ttwin = trained()
    tr.fit(X, Y, epochs=2)
    ttwin.fit(X, Y, epochs=2)
    assert snapshot(net) == snapshot(twin)
    assert opt_state(tr) == opt_state(ttwin)


@pytest.mark.parametrize("seed", range(4))
def test_the_error_names_the_lowest_bad_row_whatever_the_shuffle(seed, x_check):
    net = make_net(LAYOUTS[1])
    X, Y = make_data(net, 300)
    X[[5, 200, 201], 2] = np.nan
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1), batch_size=7, seed=seed)
    with pytest.raises(ValueError, match=r"\(row 5\)"):
        tr.fit(X, Y, epochs=1)


def test_fit_spends_no_pass_over_x_on_a_network_small_next_to_it(monkeypatch):
    """The 1/32 rule: the core checks X as it gathers it; a network whose
    parameters and state are not small next to X gets the up-front pass (and
    so does epochs=0, which trains nothing)."""
    seen = _x_passes(monkeypatch)
    net = make_net(LAYOUTS[1])                          # 3 * 86 float64 with Adam's state
    tr = fastbp.Trainer(net, fastbp.Adam(lr=0.01), batch_size=10)
    X, Y = make_data(net, 3000)                         # 120 kB of X
    tr.fit(X, Y, epochs=2, validation_data=(X[:5], Y[:5]))
    assert seen == ["the validation X"]
    tr.fit(X, Y, epochs=0)
    assert seen[1:] == ["X"]
    tr.fit(X[:100], Y[:100], epochs=1)                  # 4 kB: a copy is more than 1/32 of it
    assert seen[2:] == ["X"]
    Xbad = X.copy()
    Xbad[2999, 4] = np.inf
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity \(row 2999\)"):
        tr.fit(Xbad, Y, epochs=1)
    assert seen[3:] == [] and snapshot(net) == before


def test_a_divergence_before_the_bad_row_still_reports_bad_x(x_check):
    """With rollback the core meets the bad row only if training gets there: a
    divergence on the way is undone too, and the error is the bad X."""
    net = fastbp.Network([5, 7, 3], activation="identity", seed=0)
    X = np.random.default_rng(0).normal(0.0, 100.0, (3000, 5))
    Y = np.zeros((3000, 3))
    X[2999, 0] = np.nan
    tr = fastbp.Trainer(net, fastbp.SGD(lr=10.0), batch_size=10, shuffle=False)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity \(row 2999\)"):
        tr.fit(X, Y, epochs=1)
    assert snapshot(net) == before and tr.steps == 0
    X[2999, 0] = 0.0                                    # the same fit diverges without it
    with pytest.raises(FloatingPointError):
        tr.fit(X, Y, epochs=1)


def test_ctrl_c_before_the_bad_row_still_reports_bad_x(monkeypatch):
    monkeypatch.setattr(fastbp.trainer, "_ROLLBACK_SHARE", np.inf)
    net = make_net(sizes=(20, 16, 4))
    X, Y = make_data(net, 4096, seed=3)
    X[4095, 3] = np.nan
    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.01, momentum=0.9), batch_size=1, shuffle=False)
    tr.fit(X[:10], Y[:10], epochs=1)
    before, state, hist = snapshot(net), opt_state(tr), tr.history
    calls = []
    real = tr._run

    def run_then_interrupt(*args):          # Ctrl-C arrives once the core has run some steps
        status = real(*args)
        calls.append(status)
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "_run", run_then_interrupt)
    with pytest.raises(ValueError, match=r"^X contains NaN or infinity \(row 4095\)"):
        tr.fit(X[:4096], Y[:4096], epochs=1, progress=True)
    assert calls and calls[0] == 0                      # the first chunk ran without meeting it
    assert snapshot(net) == before and opt_state(tr) == state and tr.history is hist
    monkeypatch.setattr(tr, "_run", run_then_interrupt)
    with pytest.raises(KeyboardInterrupt):              # good X: the Ctrl-C itself
        tr.fit(X[:4095], Y[:4095], epochs=1, progress=True)


@pytest.mark.parametrize("progress", [False, True])
def test_bad_x_in_a_later_chunk_of_a_progress_bar_epoch(progress, monkeypatch, capsys):
    """A progress bar splits an epoch into several core calls; the undo covers
    the chunks already trained."""
    monkeypatch.setattr(fastbp.trainer, "_ROLLBACK_SHARE", np.inf)
    net = make_net(LAYOUTS[0])
    X, Y = make_data(net, 1000)
    X[900, 1] = np.inf
    tr = fastbp.Trainer(net, fastbp.Adam(lr=0.01), batch_size=4, seed=2)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"\(row 900\)"):
        tr.fit(X, Y, epochs=3, progress=progress)
    assert snapshot(net) == before and tr.steps == 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("column", [0, 47, 48, 99])   # both sides of the split at column 48
@pytest.mark.parametrize("shuffled", [True, False], ids=["shuffled", "in-order"])
def test_the_split_first_layers_threads_check_their_own_columns(shuffled, column, dtype,
                                                                threads):
    """Kernel.train returns 3 at the first batch with a bad value in either
    column block, whichever thread gathered it, with the batches before it
    trained exactly as without it."""
    if threads == 2:
        require_two_threads()
    net = make_net(SPLIT_LAYOUTS[2], dtype, sizes=SPLIT_SIZES)
    twin = net.copy()
    X, Y = make_data(net, 95)
    rows = np.random.default_rng(7).permutation(95) if shuffled else np.arange(95)
    Xbad = X.copy()
    Xbad[rows[63], column] = np.nan                     # batch 6 of 10 rows
    with omp_threads(threads):                          # (in order: the rows of X in place)
        ws, status = _one_call(net, fastbp.SGD(lr=0.5), Xbad, Y, 10,
                               rows.astype(np.int64) if shuffled else None)
    assert ws.threads == threads
    assert status == 3 and ws.steps_done == 6
    _one_call(twin, fastbp.SGD(lr=0.5), X[rows[:60]], Y[rows[:60]], 10)
    assert snapshot(net) == snapshot(twin)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("row", [120, 140])                 # in each half of batch 3
@pytest.mark.parametrize("column", [5, 400])                # in each block
@pytest.mark.parametrize("optimizer", SPLIT_OPTIMIZERS, ids=SPLIT_OPT_IDS)
def test_a_bad_x_in_pieces_stops_before_its_batch(optimizer, column, row, threads):
    """In pieces, the threads run the batch's rows forward (half each) before
    the step's checks: a NaN in X stops the call at its batch all the same,
    with the batches before it trained exactly as without it."""
    if threads == 2:
        require_two_threads()
    net = make_net(LAYOUTS[1], sizes=PIECE_SIZES)
    twin = net.copy()
    X, Y = make_data(net, 200)
    rows = np.random.default_rng(7).permutation(200)
    Xbad = X.copy()
    Xbad[rows[row], column] = np.nan                    # batch 3 of 50 rows
    with omp_threads(threads):
        ws, status = _one_call(net, optimizer, Xbad, Y, 50, rows.astype(np.int64))
    assert ws.threads == threads
    assert status == 3 and ws.steps_done == 2
    _one_call(twin, optimizer, X[rows[:100]], Y[rows[:100]], 50)
    assert snapshot(net) == snapshot(twin)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("column", [0, 4])
def test_the_core_stops_before_a_batch_with_bad_x(column, dtype):
    """The same without a split first layer, the last batch smaller."""
    net = make_net(LAYOUTS[0], dtype)
    twin = net.copy()
    X, Y = make_data(net, 57)
    Xbad = X.copy()
    Xbad[53, column] = np.inf                           # the last batch, of 7 rows
    ws, status = _one_call(net, fastbp.Adam(lr=0.01), Xbad, Y, 10)
    assert status == 3 and ws.steps_done == 5
    _one_call(twin, fastbp.Adam(lr=0.01), X[:50], Y[:50], 10)
    assert snapshot(net) == snapshot(twin)


def test_x_poisoned_by_a_callback_undoes_only_the_next_epoch(monkeypatch):
    """With rollback, the epoch after the callback finds the bad row and is
    undone; the history and the network keep the epochs before it."""
    monkeypatch.setattr(fastbp.trainer, "_ROLLBACK_SHARE", np.inf)
    net = make_net(LAYOUTS[0])
    twin = net.copy()
    X, Y = make_data(net, 40)
    Xc = X.copy()

    def poison(epoch, history):
        if epoch == 1:
            Xc[17, 2] = np.nan

    tr = fastbp.Trainer(net, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=8, seed=1)
    with pytest.raises(ValueError, match=r"^X \(as the callbacks left it\) contains NaN "
                                         r"or infinity \(row 17\)"):
        tr.fit(Xc, Y, epochs=4, callbacks=poison)
    assert len(tr.history.loss) == 2
    ttwin = fastbp.Trainer(twin, fastbp.SGD(lr=0.1, momentum=0.9), batch_size=8, seed=1)
    ttwin.fit(X, Y, epochs=2)
    assert snapshot(net) == snapshot(twin) and opt_state(tr) == opt_state(ttwin)
    assert tr._rng.bit_generator.state == ttwin._rng.bit_generator.state


# -- learning for real ------------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["relu-softmax-adam", "sigmoid-quadratic-sgd"])
def test_learns_the_digits(config):
    X, y = fastbp.datasets.load_digits()
    Xtr, Xte, ytr, yte = fastbp.datasets.train_test_split(X, y, test_size=0.25, seed=0)
    assert len(Xte) == 450
    if config == "relu-softmax-adam":
        net = fastbp.Network([64, 32, 10], activation="relu", output="softmax",
                             cost="log_loss", seed=0)
        tr = fastbp.Trainer(net, fastbp.Adam(lr=0.01), batch_size=32, seed=0)
        epochs = 20
    else:
        net = fastbp.Network([64, 32, 10], activation="sigmoid", seed=0)
        tr = fastbp.Trainer(net, fastbp.SGD(lr=3.0), batch_size=10, seed=0)
        epochs = 30
    hist = tr.fit(Xtr, ytr, epochs=epochs, validation_data=(Xte, yte))
    assert hist.loss[-1] < hist.loss[0]
    assert net.score(Xte, yte) >= 0.95
    assert hist.val_accuracy[-1] == net.score(Xte, yte)
