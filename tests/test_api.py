"""The Network API: constructor, attributes, parameters used in place, results'
shapes, and every error of the spec's Errors section on every operation."""

import numpy as np
import pytest

import fastbp

from conftest import make_data, make_net, snapshot


# -- constructor ----------------------------------------------------------------------

def test_defaults():
    net = fastbp.Network([3, 4, 2])
    assert net.sizes == [3, 4, 2]
    assert net.activation == "sigmoid" and net.output == "sigmoid"
    assert net.cost_name == "quadratic"
    assert net.dtype == np.dtype(np.float64) and isinstance(net.dtype, np.dtype)
    assert net.n_layers == 2
    assert net.activations == ("sigmoid", "sigmoid")


def test_output_defaults_to_activation_and_may_be_softmax():
    assert fastbp.Network([3, 4, 2], activation="tanh").activations == ("tanh", "tanh")
    net = fastbp.Network([3, 4, 4, 2], activation="relu", output="softmax", cost="log_loss")
    assert net.activations == ("relu", "relu", "softmax")
    assert fastbp.Network([3, 2], output="softmax").cost_name == "quadratic"


@pytest.mark.parametrize("sizes", [[3], [], [0, 2], [3, 0], [3, -2], [3, 4, 0], (5,)])
def test_bad_sizes_value(sizes):
    with pytest.raises(ValueError, match="sizes|layer"):
        fastbp.Network(sizes)


@pytest.mark.parametrize("sizes", [[3, 2.0], [3, "2"], [3, None], [3, True], 5, "32", None,
                                   [3, 2.5], [np.float64(3), 2]])
def test_bad_sizes_type(sizes):
    with pytest.raises(TypeError, match="sizes|size"):
        fastbp.Network(sizes)


def test_sizes_accept_any_integer_sequence():
    for sizes in ([3, 2], (3, 2), np.array([3, 2]), [np.int32(3), np.uint8(2)], range(3, 1, -1)):
        net = fastbp.Network(sizes)
        assert net.sizes == [3, 2] and all(type(s) is int for s in net.sizes)


@pytest.mark.parametrize("kwargs, word", [
    (dict(activation="softmax"), "activation"),
    (dict(activation="Sigmoid"), "activation"),
    (dict(activation="gelu"), "activation"),
    (dict(output="gelu"), "output"),
    (dict(cost="mse"), "cost"),
    (dict(cost="cross-entropy"), "cost"),
])
def test_unknown_names(kwargs, word):
    with pytest.raises(ValueError, match=word):
        fastbp.Network([3, 2], **kwargs)


@pytest.mark.parametrize("kwargs", [dict(activation=None), dict(activation=1), dict(output=3),
                                    dict(cost=None), dict(cost=["quadratic"])])
def test_names_of_the_wrong_kind(kwargs):
    with pytest.raises(TypeError):
        fastbp.Network([3, 2], **kwargs)


@pytest.mark.parametrize("output, cost", [
    ("tanh", "cross_entropy"), ("softmax", "cross_entropy"), ("relu", "cross_entropy"),
    ("sigmoid", "log_loss"), ("identity", "log_loss"), (None, "log_loss"),
])
def test_incompatible_pairs(output, cost):
    with pytest.raises(ValueError, match=cost):
        fastbp.Network([3, 2], output=output, cost=cost)


@pytest.mark.parametrize("output, cost", [(o, "quadratic") for o in
                                          ("sigmoid", "relu", "tanh", "identity", "leaky_relu",
                                           "softmax")]
                         + [("sigmoid", "cross_entropy"), ("softmax", "log_loss")])
def test_compatible_pairs(output, cost):
    net = fastbp.Network([3, 2], activation="relu", output=output, cost=cost)
    assert (net.output, net.cost_name) == (output, cost)


@pytest.mark.parametrize("dtype", ["float16", "int32", np.int64, "complex128", "foo", object,
                                   np.longdouble])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        fastbp.Network([3, 2], dtype=dtype)


@pytest.mark.parametrize("dtype", [123, 3.5, [1], {"a": 1}])
def test_dtype_of_the_wrong_kind(dtype):
    with pytest.raises(TypeError, match="dtype"):
        fastbp.Network([3, 2], dtype=dtype)


def test_sizes_beyond_what_the_core_indexes():
    with pytest.raises(ValueError, match=r"layer sizes must be at most 2147483646; got \[2147483647, 1\]"):
        fastbp.Network([2**31 - 1, 1])


@pytest.mark.parametrize("spelling", ["float32", "f4", np.float32, np.dtype("float32"),
                                      "float64", np.float64, float, np.dtype("<f8")])
def test_dtype_spellings(spelling):
    net = fastbp.Network([3, 2], dtype=spelling)
    assert isinstance(net.dtype, np.dtype)
    assert net.dtype == np.dtype(spelling)
    assert all(p.dtype == net.dtype for p in net.weights + net.biases)


# -- init ---------------------------------------------------------------------------

WIDE = (300, 400)   # fan_in, fan_out: 120000 weights, tight statistics


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "identity"])
def test_auto_init_is_glorot_uniform(act, dtype):
    fan_in, fan_out = WIDE
    W = fastbp.Network([fan_in, fan_out], activation=act, dtype=dtype, seed=0).weights[0]
    limit = np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(W).max() <= limit * (1 + 1e-6)
    assert np.abs(W).max() > 0.999 * limit
    assert abs(W.mean()) < 0.01 * limit
    assert W.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    # Uniform: as many weights in each quarter of [0, limit].
    counts = np.histogram(np.abs(W), bins=4, range=(0, limit))[0]
    assert counts.min() > 0.95 * counts.max()


@pytest.mark.parametrize("act", ["relu", "leaky_relu"])
def test_auto_init_is_he_normal(act, dtype):
    fan_in, fan_out = WIDE
    W = fastbp.Network([fan_in, fan_out], activation=act, dtype=dtype, seed=1).weights[0]
    std = np.sqrt(2 / fan_in)
    assert W.std() == pytest.approx(std, rel=0.02)
    assert abs(W.mean()) < 0.01 * std
    # Normal, not uniform: ~4.6% of the weights lie beyond two standard deviations.
    assert np.mean(np.abs(W) > 2 * std) == pytest.approx(0.0455, abs=0.005)


def test_auto_init_follows_each_layers_activation():
    net = fastbp.Network([300, 400, 300], activation="relu", output="softmax", seed=2)
    assert net.weights[0].std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)     # He
    limit = np.sqrt(6 / 700)
    assert np.abs(net.weights[1]).max() <= limit                                   # Glorot
    assert net.weights[1].std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    net = fastbp.Network([300, 400, 300], activation="tanh", output="leaky_relu", seed=3)
    assert np.abs(net.weights[0]).max() <= limit
    assert net.weights[1].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)


@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_normal_init(act):
    fan_in, fan_out = WIDE
    W = fastbp.Network([fan_in, fan_out], activation=act, init="normal", seed=4).weights[0]
    assert W.std() == pytest.approx(np.sqrt(1 / fan_in), rel=0.02)
    assert abs(W.mean()) < 0.01 * np.sqrt(1 / fan_in)


@pytest.mark.parametrize("init", ["auto", "normal", lambda fi, fo, rng: np.ones((fo, fi))])
def test_biases_start_at_zero(init, dtype):
    net = fastbp.Network([5, 4, 3], init=init, dtype=dtype, seed=5)
    for b, m in zip(net.biases, (4, 3)):
        assert b.shape == (m,) and b.dtype == dtype and not b.any()


def test_callable_init(dtype):
    calls = []
    gen = np.random.default_rng(6)

    def init(fan_in, fan_out, rng):
        calls.append((fan_in, fan_out, rng))
        return np.arange(fan_out * fan_in, dtype=np.int64).reshape(fan_out, fan_in)

    net = fastbp.Network([3, 5, 2], init=init, dtype=dtype, seed=gen)
    assert [(fi, fo) for fi, fo, _ in calls] == [(3, 5), (5, 2)]
    assert all(rng is gen for _, _, rng in calls)
    for W, (fi, fo) in zip(net.weights, [(3, 5), (5, 2)]):
        assert W.dtype == dtype and W.flags.c_contiguous
        np.testing.assert_array_equal(W, np.arange(fo * fi).reshape(fo, fi))
    # With an int seed (or none) the callable gets a Generator.
    fastbp.Network([3, 2], init=init, seed=7)
    assert isinstance(calls[-1][2], np.random.Generator)


@pytest.mark.parametrize("bad", [
    lambda fi, fo, rng: np.ones((fi, fo)),          # transposed
    lambda fi, fo, rng: np.ones(fo * fi),           # flat
    lambda fi, fo, rng: np.ones((fo, fi + 1)),
    lambda fi, fo, rng: np.full((fo, fi), np.nan),
    lambda fi, fo, rng: np.full((fo, fi), np.inf),
])
def test_callable_init_bad_result(bad):
    with pytest.raises(ValueError, match="init"):
        fastbp.Network([3, 5, 2], init=bad, seed=0)


@pytest.mark.parametrize("bad", [
    lambda fi, fo, rng: np.ones((fo, fi), dtype=complex),
    lambda fi, fo, rng: np.full((fo, fi), "0.1"),
    lambda fi, fo, rng: None,
], ids=["complex", "strings", "None"])
def test_callable_init_result_of_the_wrong_kind(bad):
    with pytest.raises(TypeError, match="init returned"):
        fastbp.Network([3, 5, 2], init=bad, seed=0)


def test_callable_init_beyond_float32_range():
    with pytest.raises(ValueError, match=r"init returned for layer 1 has values beyond the range of "
                                         r"float32"):
        fastbp.Network([3, 2], dtype="float32", init=lambda fi, fo, rng: np.full((fo, fi), 1e300))
    fastbp.Network([3, 2], dtype="float64", init=lambda fi, fo, rng: np.full((fo, fi), 1e300))


def test_callable_init_result_is_copied_into_parameters_the_network_owns():
    """An init that hands back one shared (or read-only) array still gives each layer
    of each network its own plain writable array: training one changes nothing else."""
    shared = np.ones((3, 3))
    frozen = np.ones((3, 3))
    frozen.setflags(write=False)
    for given in (shared, frozen):
        a = fastbp.Network([3, 3, 3], init=lambda fi, fo, rng: given)
        b = fastbp.Network([3, 3, 3], init=lambda fi, fo, rng: given)
        arrays = a.weights + b.weights
        assert all(W.flags.writeable and W.ctypes.data % 64 == 0 for W in arrays)
        assert not any(np.shares_memory(W, V) for i, W in enumerate(arrays + [given])
                       for V in (arrays + [given])[i + 1:])
        fastbp.Trainer(a, optimizer=fastbp.SGD(lr=0.5)).step(np.ones((2, 3)), np.zeros((2, 3)))
        assert not np.array_equal(a.weights[0], given)
        np.testing.assert_array_equal(given, np.ones((3, 3)))
        for W in b.weights:
            np.testing.assert_array_equal(W, given)


@pytest.mark.parametrize("init, exc", [("glorot", ValueError), ("Auto", ValueError),
                                       (5, TypeError), (None, TypeError)])
def test_bad_init(init, exc):
    with pytest.raises(exc, match="init"):
        fastbp.Network([3, 2], init=init)


def test_seed_determinism(dtype):
    def params(net):
        return [p.tobytes() for p in net.weights + net.biases]

    a = fastbp.Network([4, 6, 3], activation="relu", dtype=dtype, seed=42)
    b = fastbp.Network([4, 6, 3], activation="relu", dtype=dtype, seed=42)
    c = fastbp.Network([4, 6, 3], activation="relu", dtype=dtype, seed=43)
    assert params(a) == params(b) != params(c)
    g1 = fastbp.Network([4, 6, 3], dtype=dtype, seed=np.random.default_rng(42))
    g2 = fastbp.Network([4, 6, 3], dtype=dtype, seed=np.random.default_rng(42))
    assert params(g1) == params(g2)
    gen = np.random.default_rng(1)
    assert params(fastbp.Network([4, 3], seed=gen)) != params(fastbp.Network([4, 3], seed=gen))
    assert params(fastbp.Network([4, 3])) != params(fastbp.Network([4, 3]))
    assert params(fastbp.Network([4, 3], seed=np.int64(3))) == params(fastbp.Network([4, 3], seed=3))


@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (1.5, TypeError), ("1", TypeError),
                                       (True, TypeError), ([1], TypeError)])
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        fastbp.Network([3, 2], seed=seed)


# -- attributes and parameters ----------------------------------------------------------

def test_parameters_start_on_cache_lines_after_copy_load_and_pickle(tmp_path):
    import pickle
    net = fastbp.Network([100, 83, 7, 3], dtype="float32", seed=0)
    net.save(tmp_path / "m.npz")
    for other in (net.copy(), fastbp.Network.load(tmp_path / "m.npz"),
                  pickle.loads(pickle.dumps(net))):
        for p, q in zip(other.weights + other.biases, net.weights + net.biases):
            assert p.ctypes.data % 64 == 0 and p.flags.c_contiguous and p.flags.writeable
            assert p.tobytes() == q.tobytes() and not np.shares_memory(p, q)


def test_attributes(dtype):
    net = fastbp.Network([5, 7, 4, 3], dtype=dtype, seed=0)
    assert net.sizes == [5, 7, 4, 3]
    assert net.n_layers == 3 == len(net.sizes) - 1
    assert [W.shape for W in net.weights] == [(7, 5), (4, 7), (3, 4)]
    assert [b.shape for b in net.biases] == [(7,), (4,), (3,)]
    for p in net.weights + net.biases:
        assert type(p) is np.ndarray and p.dtype == dtype
        assert p.flags.c_contiguous and p.flags.writeable
        # on a cache line, in a buffer of its own (for the core's split first layer)
        assert p.ctypes.data % 64 == 0 and p.base.base is None and p.base.nbytes <= p.nbytes + 64
    # sizes cannot be changed by editing the list it returns.
    net.sizes.append(9)
    assert net.sizes == [5, 7, 4, 3]
    assert "Network(sizes=[5, 7, 4, 3]" in repr(net)


def test_weights_index_like_the_notation():
    """weights[L-1][j, k] is w^L_jk: from neuron k of layer L-1 to neuron j of layer L."""
    net = fastbp.Network([3, 2], activation="identity", seed=0)
    net.weights[0][...] = 0
    net.weights[0][1, 2] = 5.0
    np.testing.assert_array_equal(net.forward(np.array([0.0, 0.0, 1.0])), [0.0, 5.0])


def test_parameters_are_used_in_place(dtype):
    net = make_net([4, 5, 3], "tanh", "identity", dtype=dtype, seed=1)
    X, Y = make_data(net, 5)
    A0 = net.forward(X)
    W = net.weights[0]
    W[...] = 0                                     # edit in place
    A1 = net.forward(X)
    assert not np.array_equal(A0, A1)
    want = np.tanh(np.broadcast_to(net.biases[0], (5, 5))) @ net.weights[1].T + net.biases[1]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(A1, want, rtol=tol, atol=tol)
    net.biases[1] += 1                             # in-place arithmetic
    np.testing.assert_allclose(net.forward(X), A1 + 1, rtol=tol, atol=tol)
    W2 = np.random.default_rng(2).normal(size=(5, 4)).astype(dtype)
    net.weights[0] = W2                            # replace the array
    t = net.trace(X)
    np.testing.assert_allclose(t.z[0], X @ W2.T + net.biases[0], rtol=1e-5)
    # A hand-written gradient step on the arrays lowers the cost.
    c0 = net.cost(X, Y)
    for _ in range(3):
        g = net.backprop(X, Y)
        for p, gp in zip(net.weights + net.biases, g.weights + g.biases):
            p -= 0.05 * gp
    assert net.cost(X, Y) < c0


def test_no_call_changes_the_parameters(dtype):
    net = make_net([4, 5, 3], "relu", "softmax", "log_loss", dtype=dtype, seed=3)
    X, Y = make_data(net, 6)
    before = snapshot(net)
    net.forward(X), net.trace(X), net.cost(X, Y), net.backprop(X, Y)
    net.predict(X), net.score(X, [0, 1, 2, 0, 1, 2])
    fastbp.gradcheck(net, X, Y), fastbp.explain(net, X, Y, 2, 1, 1)
    assert snapshot(net) == before


# -- forward / predict / score shapes -------------------------------------------------

def test_forward_shapes(dtype):
    net = make_net([4, 5, 3], dtype=dtype, seed=4)
    X, _ = make_data(net, 6)
    assert net.forward(X).shape == (6, 3)
    assert net.forward(X[0]).shape == (3,)
    assert net.forward(X[:1]).shape == (1, 3)
    assert net.forward(X[0].tolist()).shape == (3,)


def test_predict(dtype):
    net = make_net([4, 5, 3], "tanh", "softmax", "log_loss", dtype=dtype, seed=5)
    X, _ = make_data(net, 20)
    p = net.predict(X)
    assert p.shape == (20,) and p.dtype == np.int64
    np.testing.assert_array_equal(p, net.forward(X).argmax(axis=1))
    one = net.predict(X[3])
    assert type(one) is int and one == p[3]


def test_predict_one_output_thresholds_at_one_half():
    net = fastbp.Network([2, 1], activation="identity", seed=0)
    net.weights[0][...] = [[1.0, 0.0]]
    net.biases[0][...] = 0
    X = np.array([[0.2, 5.0], [0.5, 0.0], [0.51, 0.0], [3.0, 0.0], [-1.0, 0.0]])
    np.testing.assert_array_equal(net.predict(X), [0, 0, 1, 1, 0])
    assert net.predict(X[2]) == 1 and type(net.predict(X[2])) is int


def test_score_on_labels_and_one_hot():
    net = make_net([4, 5, 3], "tanh", "softmax", "log_loss", seed=6)
    X, _ = make_data(net, 40)
    p = net.predict(X)
    y = p.copy()
    y[:10] = (y[:10] + 1) % 3                     # 10 of 40 wrong
    for labels in (y, y.astype(np.int32), y.astype(np.uint8), np.eye(3)[y], y.tolist()):
        s = net.score(X, labels)
        assert type(s) is float and s == 0.75
    assert net.score(X, p) == 1.0


def test_score_one_output_with_0_1_labels():
    net = make_net([4, 3, 1], "relu", "sigmoid", "cross_entropy", seed=7)
    X, _ = make_data(net, 30)
    p = net.predict(X)
    assert set(np.unique(p)) <= {0, 1}
    y = p.copy()
    y[:3] = 1 - y[:3]
    for labels in (y, y.astype(bool), y.astype(np.float64), y.reshape(-1, 1)):
        assert net.score(X, labels) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="labels"):
        net.score(X, y + 1)


# -- every error of the spec, on every operation -----------------------------------------

OPS = {
    "forward": lambda net, X, Y: net.forward(X),
    "trace": lambda net, X, Y: net.trace(X),
    "predict": lambda net, X, Y: net.predict(X),
    "cost": lambda net, X, Y: net.cost(X, Y),
    "backprop": lambda net, X, Y: net.backprop(X, Y),
    "score": lambda net, X, Y: net.score(X, Y),
    "gradcheck": lambda net, X, Y: fastbp.gradcheck(net, X, Y),
    "explain": lambda net, X, Y: fastbp.explain(net, X, Y, 1, 0, 0),
}
WITH_TARGETS = ("cost", "backprop", "gradcheck", "explain")   # Y is a target (score: labels)


def _problem(dtype=np.float64):
    net = make_net([4, 5, 3], "sigmoid", "softmax", "log_loss", dtype, seed=8)
    X, _ = make_data(net, 6)
    y = np.array([0, 1, 2, 0, 1, 2])
    return net, X, y


def _nan_at(X, value=np.nan):
    X = np.array(X, dtype=np.float64)
    X[1, 2] = value
    return X


X_ERRORS = {
    # name: (make X from a good X, exception, words the message must contain)
    "too few features": (lambda X: X[:, :3].copy(), ValueError, r"X.*3.*expected 4"),
    "too few features, strided": (lambda X: X[:, :3], ValueError, r"X.*3.*expected 4"),
    "too many features": (lambda X: np.hstack([X, X]), ValueError, r"X.*8.*expected 4"),
    "3-D": (lambda X: X[None], ValueError, r"X.*shape"),
    "0-D": (lambda X: np.float64(1.0), ValueError, r"X.*shape"),
    "NaN": (_nan_at, ValueError, r"X.*NaN"),
    "inf": (lambda X: _nan_at(X, np.inf), ValueError, r"X.*infinity"),
    "-inf, float32": (lambda X: _nan_at(X, -np.inf).astype(np.float32), ValueError, r"X.*infinity"),
    "empty": (lambda X: X[:0], ValueError, r"X.*empty"),
    "empty list": (lambda X: [], ValueError, r"X"),
    "strings": (lambda X: X.astype(str), TypeError, r"X.*numeric"),
    "objects": (lambda X: X.astype(object), TypeError, r"X.*numeric"),
    "None": (lambda X: None, TypeError, r"X.*numeric"),
    "complex": (lambda X: X.astype(complex), TypeError, r"X.*numeric"),
    "ragged": (lambda X: [[1.0, 2.0, 3.0, 4.0], [1.0]], TypeError, r"X.*numeric"),
}


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("case", list(X_ERRORS))
def test_bad_X(case, op, dtype):
    net, X, y = _problem(dtype)
    make, exc, words = X_ERRORS[case]
    before = snapshot(net)
    with pytest.raises(exc, match=words):
        OPS[op](net, make(X), y)
    assert snapshot(net) == before


def test_finite_inputs_beyond_float32_range_are_named_as_such():
    net, X, y = _problem(np.float32)
    X = X.astype(np.float64)
    X[0, 0] = 1e300
    with pytest.raises(ValueError, match=r"^X has values beyond the range of float32"):
        net.forward(X)


def test_ragged_targets_for_one_example_are_a_type_error():
    net, X, y = _problem()
    with pytest.raises(TypeError, match="Y"):
        net.cost(X[0], [[1, 2], [1]])


def test_score_needs_a_batch():
    net, X, y = _problem()
    with pytest.raises(ValueError, match="X.*shape"):
        net.score(X[0], y[0])


Y_ERRORS = {
    # name: (make Y from good labels y, exception, message words)
    "NaN": (lambda y: _nan_at(np.eye(3)[y]), ValueError, r"Y.*NaN"),
    "inf": (lambda y: _nan_at(np.eye(3)[y], np.inf), ValueError, r"Y.*infinity"),
    "label too big": (lambda y: np.where(y == 2, 3, y), ValueError, r"labels.*\[0, 3\)"),
    "negative label": (lambda y: y - 1, ValueError, r"labels.*\[0, 3\)"),
    "1-D float": (lambda y: y.astype(np.float64), ValueError, r"1-D.*float64"),
    "1-D float32": (lambda y: y.astype(np.float32), ValueError, r"1-D.*float32"),
    "above 1": (lambda y: 1.5 * np.eye(3)[y], ValueError, r"\[0, 1\]"),
    "below 0": (lambda y: np.eye(3)[y] - 0.25, ValueError, r"\[0, 1\]"),
    "too few rows": (lambda y: np.eye(3)[y][:5], ValueError, r"Y.*\(5, 3\).*\(6, 3\)"),
    "too many labels": (lambda y: np.append(y, 0), ValueError, r"Y.*7.*6"),
    "too few columns": (lambda y: np.eye(3)[y][:, :2], ValueError, r"Y.*\(6, 2\).*\(6, 3\)"),
    "3-D": (lambda y: np.eye(3)[y][..., None], ValueError, r"Y.*shape"),
    "empty": (lambda y: y[:0], ValueError, r"Y.*0.*6"),
    "strings": (lambda y: y.astype(str), TypeError, r"Y.*numeric"),
    "objects": (lambda y: np.eye(3)[y].astype(object), TypeError, r"Y.*numeric"),
    "None": (lambda y: None, TypeError, r"Y.*numeric"),
}


@pytest.mark.parametrize("op", WITH_TARGETS)
@pytest.mark.parametrize("case", list(Y_ERRORS))
def test_bad_Y(case, op, dtype):
    net, X, y = _problem(dtype)
    make, exc, words = Y_ERRORS[case]
    before = snapshot(net)
    with pytest.raises(exc, match=words):
        OPS[op](net, X, make(y))
    assert snapshot(net) == before


@pytest.mark.parametrize("op", WITH_TARGETS)
def test_cross_entropy_targets_in_0_1(op):
    net = make_net([4, 3, 2], "tanh", "sigmoid", "cross_entropy", seed=9)
    X, Y = make_data(net, 5)
    before = snapshot(net)
    for bad in (Y + 1, Y - 1, -Y):
        with pytest.raises(ValueError, match=r"cross_entropy.*\[0, 1\]"):
            OPS[op](net, X, bad)
    assert snapshot(net) == before
    OPS[op](net, X, np.round(Y))           # 0 and 1 themselves are fine


@pytest.mark.parametrize("op", WITH_TARGETS)
def test_quadratic_takes_any_finite_targets(op):
    net = make_net([4, 3, 2], "tanh", "sigmoid", "quadratic", seed=10)
    X, _ = make_data(net, 5)
    OPS[op](net, X, np.full((5, 2), -7.5))
    with pytest.raises(ValueError, match="1-D"):
        OPS[op](net, X, np.zeros(5))       # 1-D float with 2 outputs


LABEL_ERRORS = {
    "NaN": (lambda y: np.where(y == 1, np.nan, y), ValueError, r"y.*NaN"),
    "label too big": (lambda y: np.where(y == 2, 3, y), ValueError, r"labels.*\[0, 3\)"),
    "negative label": (lambda y: y - 1, ValueError, r"labels.*\[0, 3\)"),
    "not integers": (lambda y: y + 0.5, ValueError, r"integer"),
    "too few rows": (lambda y: y[:5], ValueError, r"y.*\(6,\)"),
    "wrong columns": (lambda y: np.eye(3)[y][:, :2], ValueError, r"y.*\(6,\)"),
    "empty": (lambda y: y[:0], ValueError, r"y.*\(6,\)"),
    "strings": (lambda y: y.astype(str), TypeError, r"y.*numeric"),
    "objects": (lambda y: y.astype(object), TypeError, r"y.*numeric"),
    "one-hot with NaN": (lambda y: np.where(np.eye(3)[y] == 1, np.nan, 0.0), ValueError, r"y.*NaN"),
    # checked before the cast to int64, which would wrap them to negative numbers
    "uint64 beyond int64": (lambda y: y.astype(np.uint64) + np.uint64(2**63), ValueError,
                            r"labels.*\[0, 3\); got values in \[9223372036854775808, "),
}


@pytest.mark.parametrize("case", list(LABEL_ERRORS))
def test_bad_labels_for_score(case):
    net, X, y = _problem()
    make, exc, words = LABEL_ERRORS[case]
    before = snapshot(net)
    with pytest.raises(exc, match=words):
        net.score(X, make(y))
    assert snapshot(net) == before


def test_dtype_none_is_refused_not_read_as_float64():
    with pytest.raises(TypeError, match=r"dtype must be 'float32' or 'float64'.*got None"):
        fastbp.Network([3, 2], dtype=None)


def test_a_tensor_that_needs_grad_is_a_type_error():
    torch = pytest.importorskip("torch")
    net = make_net([3, 2], seed=1)
    X = torch.ones((4, 3), requires_grad=True)
    with pytest.raises(TypeError, match=r"^X must be a numeric array; "):
        net.forward(X)
    np.testing.assert_array_equal(net.forward(X.detach()), net.forward(np.ones((4, 3))))


@pytest.mark.parametrize("kind", [np.float64, np.float32, bool])
def test_score_refuses_1d_float_labels_for_several_outputs_as_cost_does(kind):
    """The spec: with sizes[-1] > 1, a 1-D float array is refused (ints are labels)."""
    net, X, y = _problem()
    labels = (y > 0) if kind is bool else y.astype(kind)
    for op in (net.score, net.cost):
        with pytest.raises(ValueError, match=r"dtype .*ambiguous.*integer class labels"):
            op(X, labels)
    assert net.score(X, y.astype(np.int32)) == net.score(X, y)


# -- corrupted parameters: a clear error from every operation, never a crash ------------

def _corruptions(dtype):
    other = np.float32 if dtype == np.float64 else np.float64

    def set_weight(i, make):
        def corrupt(net):
            net.weights[i] = make(net.weights[i])
        return corrupt

    def set_bias(i, make):
        def corrupt(net):
            net.biases[i] = make(net.biases[i])
        return corrupt

    return {
        "transposed": (set_weight(0, lambda W: np.ascontiguousarray(W.T)), ValueError,
                       r"weights\[0\].*shape"),
        "too wide": (set_weight(1, lambda W: np.zeros((W.shape[0], W.shape[1] + 1), W.dtype)),
                     ValueError, r"weights\[1\].*shape"),
        "flattened": (set_weight(0, lambda W: W.reshape(-1)), ValueError, r"weights\[0\].*shape"),
        "3-D": (set_weight(0, lambda W: W[None]), ValueError, r"weights\[0\].*shape"),
        "bias 2-D": (set_bias(0, lambda b: b[:, None]), ValueError, r"biases\[0\].*shape"),
        "bias too short": (set_bias(1, lambda b: b[:-1].copy()), ValueError, r"biases\[1\].*shape"),
        "other float dtype": (set_weight(0, lambda W: W.astype(other)), TypeError, r"weights\[0\].*dtype"),
        "int dtype": (set_bias(1, lambda b: b.astype(np.int64)), TypeError, r"biases\[1\].*dtype"),
        "fortran": (set_weight(0, np.asfortranarray), ValueError, r"weights\[0\].*contiguous"),
        "strided": (set_weight(1, lambda W: np.repeat(W, 2, axis=1)[:, ::2]), ValueError,
                    r"weights\[1\].*contiguous"),
        "list": (set_weight(1, lambda W: W.tolist()), TypeError, r"weights\[1\].*array"),
        "None": (set_bias(0, lambda b: None), TypeError, r"biases\[0\].*array"),
        "layer missing": (lambda net: net.weights.pop(), ValueError, r"weight"),
        "extra bias": (lambda net: net.biases.append(net.biases[-1]), ValueError, r"bias"),
    }


@pytest.mark.parametrize("op", [*OPS, "save"])
@pytest.mark.parametrize("case", list(_corruptions(np.float64)))
def test_corrupted_parameters(case, op, dtype, tmp_path):
    net, X, y = _problem(dtype)
    corrupt, exc, words = _corruptions(dtype)[case]
    corrupt(net)
    path = tmp_path / "net.npz"
    ops = dict(OPS, save=lambda net, X, Y: net.save(path))
    before = [np.asarray(p).tobytes() if p is not None else None for p in net.weights + net.biases]
    if op == "save" and case in ("fortran", "strided"):
        # Nothing wrong with the numbers: save writes them (C-ordered), load reads them back.
        net.save(path)
        loaded = fastbp.Network.load(path)
        for p, q in zip(net.weights + net.biases, loaded.weights + loaded.biases):
            np.testing.assert_array_equal(p, q)
        return
    with pytest.raises(exc, match=words):
        ops[op](net, X, y)
    assert [np.asarray(p).tobytes() if p is not None else None
            for p in net.weights + net.biases] == before
    assert not path.exists()


def test_nan_parameters_are_not_saved(tmp_path):
    """NaN parameters are the computation's business (the results are NaN), but
    save refuses them: load would refuse the file."""
    net, X, y = _problem()
    net.weights[1][0, 0] = np.nan
    assert np.isnan(net.forward(X)).any()
    with pytest.raises(ValueError, match=r"weights\[1\].*NaN"):
        net.save(tmp_path / "net.npz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("op", ["forward", "cost", "backprop"])
def test_byte_swapped_parameters(op):
    net, X, y = _problem()
    want = OPS[op](net, X, y)
    net.weights[0] = net.weights[0].astype(net.weights[0].dtype.newbyteorder())
    try:
        got = OPS[op](net, X, y)
    except (TypeError, ValueError):
        return                          # refused: fine
    if op == "backprop":
        want, got = want.weights[0], got.weights[0]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_finite_check(dtype):
    """_core.finite, the one NaN/inf check the Python layer uses on data."""
    from fastbp import _core
    x = np.arange(12, dtype=dtype).reshape(3, 4)
    assert _core.finite(x) and _core.finite(x[:, ::2]) and _core.finite(x.T)
    assert _core.finite(np.empty((0, 4), dtype))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[2, 3] = bad
        assert not _core.finite(y)
        assert not _core.finite(np.asfortranarray(y))
    assert _core.finite(np.arange(5)) and not _core.finite(np.array([1.0, np.nan], ">f8"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_absmax_bound(dtype):
    """_core.absmax_of: an upper bound on max |x| (the core's overflow proofs
    bound each batch with it) and a finiteness check in one pass."""
    from fastbp import _core
    rng = np.random.default_rng(3)
    exact = np.dtype(dtype) == np.float32
    for x in (rng.normal(0, 1e3, (37, 11)), rng.normal(0, 1e-300 if not exact else 1e-30, 101),
              np.array([-7.5, 3.0, 0.0]), np.zeros(9), np.array([np.finfo(dtype).max, 1.0])):
        x = x.astype(dtype)
        bound = _core.absmax_of(x)
        true = float(np.abs(x).max())
        assert bound == true if exact else true <= bound <= true * (1 + 2.0 ** -20) + 1e-300
        assert np.isfinite(bound)
        assert _core.absmax_of(x[::-1]) == true                      # strided: NumPy's, exact
    assert 0 <= _core.absmax_of(np.empty(0, dtype)) < 1e-300
    for bad in (np.nan, np.inf, -np.inf):
        for size in (1, 5, 64, 1001):                                # every stream and the tail
            for where in (0, size // 2, size - 1):
                x = np.ones(size, dtype)
                x[where] = bad
                assert not np.isfinite(_core.absmax_of(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_unit_interval_check(dtype):
    """_core.in_unit_interval, the range check of cross_entropy and log_loss
    targets on every call: one value just outside [0, 1] anywhere, in either
    build, in C order or another layout, is found; 0 and 1 are inside."""
    rng = np.random.default_rng(5)
    for core in _core_modules():
        for size in (1, 7, 64, 1001):
            x = rng.random(size).astype(dtype)
            x[0], x[-1] = 0, 1
            assert core.in_unit_interval(x) and core.in_unit_interval(x[::-1])
            for where in (0, size // 2, size - 1):
                for bad in (-np.finfo(dtype).tiny, np.nextafter(dtype(1), dtype(2)), -5, 7):
                    y = x.copy()
                    y[where] = bad
                    assert not core.in_unit_interval(y)
                    assert not core.in_unit_interval(y.reshape(1, -1).T)
                    assert not core.in_unit_interval(y[::-1])
        assert core.in_unit_interval(np.empty((0, 3), dtype))
        assert not core.in_unit_interval(np.array([0, 2]))              # ints: NumPy's check
        with pytest.raises(TypeError):
            core.in_unit_interval(None)


def _core_modules():
    """The core builds this machine can run (the baseline, and the AVX2 one)."""
    from fastbp import _core, _cpu
    mods = [_core]
    try:
        from fastbp import _core_avx2
    except ImportError:
        return mods
    return mods + [_core_avx2] if _cpu.has_avx2() else mods


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_core_absmax_finds_the_largest_and_non_finite_values_anywhere(dtype):
    """Each position of each of the four streams and of the tail, in both
    builds (the trainer checks every batch of X with it)."""
    exact = np.dtype(dtype) == np.float32
    for mod in _core_modules():
        for size in range(1, 41):
            for where in range(size):
                x = np.full(size, -0.5, dtype)
                x[where] = -1000.25
                bound = mod.absmax_of(x)
                assert bound == 1000.25 if exact else 1000.25 <= bound <= 1000.25 * (1 + 2.0 ** -20)
                for bad in (np.nan, -np.inf):
                    x[where] = bad
                    assert not np.isfinite(mod.absmax_of(x)), (mod.__name__, size, where, bad)
