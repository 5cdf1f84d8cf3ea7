"""The compiled core against the NumPy oracle (fastbp.reference) and against
central finite differences (fastbp.gradcheck).

Tolerance rule for every comparison with the reference: the error is
``||got - ref|| / ||ref||`` over the whole array (see conftest.rel_err), with the
reference always computed in float64 (a float32 network's parameters and data
are cast to float64 first, so both sides start from the same numbers).
float64 results must agree to 1e-12 relative. float32 results must agree to
1e-5 relative: about 80 float32 ulps (eps32 = 1.19e-7), room for a few
roundings per operation accumulated through up to four layers of short dot
products, exp/tanh and the cost (most errors measured here are ~2e-6). Where a
result is ill-conditioned (a delta summed from terms that nearly cancel), even
correct float32 arithmetic loses more. Rounding in a dot product is equivalent
to perturbing its operands by a few ulps, so `test_matches_reference` measures
the conditioning: it reruns the float64 reference with every parameter and
input perturbed by up to 4 float32 ulps (random directions, 3 draws) and allows
a float32 result the largest relative change seen there when that exceeds 1e-5.
"""

import numpy as np
import pytest

import fastbp
from fastbp import reference as ref

from conftest import DTYPES, HIDDEN, PAIRS, make_data, make_net, params64, rel_err

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}
HIDDEN_WIDTHS = {0: [], 1: [6], 2: [6, 5], 3: [6, 5, 7]}
BATCHES = (1, 2, 7, 64)


def _layouts():
    for depth in (0, 1, 2, 3):
        for hidden in (HIDDEN[:1] if depth == 0 else HIDDEN):  # no hidden layer: one case
            for output, cost in PAIRS:
                yield pytest.param(depth, hidden, output, cost,
                                   id=f"d{depth}-{hidden if depth else 'none'}-{output}-{cost}")


LAYOUTS = list(_layouts())


def reference_backprop(net, X, Y, perturb=None):
    """(zs, as_, grad_w, grad_b, grad_x, cost) of the reference in float64, from
    the network's parameters cast to float64; `perturb(array)`, if given, is
    applied to every parameter and to X first."""
    W, b = params64(net)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if perturb is not None:
        W, b, X = [perturb(w) for w in W], [perturb(v) for v in b], perturb(X)
    zs, as_ = ref.forward(W, b, list(net.activations), X)
    gw, gb, gx, c = ref.backprop(W, b, list(net.activations), net.cost_name, X, Y)
    return zs, as_, gw, gb, gx, c


def float32_bounds(net, X, Y, want, draws=3, ulps=4):
    """Per result of `reference_backprop`, the float32 tolerance: the larger of
    1e-5 and the largest relative change of the reference under perturbations
    of every parameter and input by up to `ulps` float32 ulps (its conditioning)."""
    rng = np.random.default_rng(0)
    step = ulps * np.finfo(np.float32).eps
    bounds = [[TOL[np.dtype(np.float32)]] * len(w) if isinstance(w, list)
              else TOL[np.dtype(np.float32)] for w in want]
    for _ in range(draws):
        got = reference_backprop(net, X, Y, lambda a: a * (1 + step * rng.uniform(-1, 1, a.shape)))
        for i, (g, w) in enumerate(zip(got, want)):
            if isinstance(w, list):
                bounds[i] = [max(b, rel_err(gl, wl)) for b, gl, wl in zip(bounds[i], g, w)]
            else:
                bounds[i] = max(bounds[i], rel_err(g, w))
    return bounds


def assert_close(got, want, dtype, what, tol=None):
    """||got - want|| / ||want|| <= the tolerance (see the module doc)."""
    if tol is None or np.dtype(dtype) == np.float64:
        tol = TOL[np.dtype(dtype)]
    err = rel_err(got, want)
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:.3g}"


# -- every layout, dtype and batch size against the reference ----------------------

@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("depth, hidden, output, cost", LAYOUTS)
def test_matches_reference(depth, hidden, output, cost, dtype, n):
    sizes = [4, *HIDDEN_WIDTHS[depth], 3]
    net = make_net(sizes, hidden, output, cost, dtype, seed=depth * 7 + n)
    X, Y = make_data(net, n, seed=n)
    want = zs, as_, gw, gb, gx, c = reference_backprop(net, X, Y)
    tz, ta, tgw, tgb, tgx, tc = (float32_bounds(net, X, Y, want) if dtype == np.float32
                                 else [[None] * 5, [None] * 5, [None] * 4, [None] * 4, None, None])

    A = net.forward(X)
    assert A.dtype == dtype and A.shape == (n, sizes[-1])
    assert_close(A, as_[-1], dtype, "forward", ta[-1])

    t = net.trace(X)
    assert len(t.z) == net.n_layers and len(t.a) == net.n_layers + 1
    np.testing.assert_array_equal(t.a[0], X)
    assert not np.shares_memory(t.a[0], X)          # a record of the pass, not a view of X
    for l in range(net.n_layers):
        assert t.z[l].dtype == dtype and t.a[l + 1].dtype == dtype
        assert_close(t.z[l], zs[l], dtype, f"trace z^{l + 1}", tz[l])
        assert_close(t.a[l + 1], as_[l + 1], dtype, f"trace a^{l + 1}", ta[l + 1])
    # trace and forward run the same arithmetic.
    np.testing.assert_array_equal(t.a[-1], A)

    cost_value = net.cost(X, Y)
    assert type(cost_value) is float
    assert_close(cost_value, c, dtype, "cost", tc)

    g = net.backprop(X, Y)
    assert type(g.cost) is float
    assert_close(g.cost, c, dtype, "backprop cost", tc)
    assert len(g.weights) == len(g.biases) == net.n_layers
    for l in range(net.n_layers):
        assert g.weights[l].shape == net.weights[l].shape and g.weights[l].dtype == dtype
        assert g.biases[l].shape == net.biases[l].shape and g.biases[l].dtype == dtype
        assert_close(g.weights[l], gw[l], dtype, f"dC/dW^{l + 1}", tgw[l])
        assert_close(g.biases[l], gb[l], dtype, f"dC/db^{l + 1}", tgb[l])
    assert g.inputs.shape == X.shape and g.inputs.dtype == dtype
    assert_close(g.inputs, gx, dtype, "dC/da^0", tgx)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [255, 256, 257, 700])
@pytest.mark.parametrize("output, cost", [("sigmoid", "cross_entropy"), ("softmax", "log_loss"),
                                          ("tanh", "quadratic")])
def test_large_batches_across_chunks(output, cost, n, dtype):
    """forward and cost work through the batch in chunks of rows (max(256,
    2**19 // widest layer) rows, so 256 here): the chunk boundaries must not show."""
    net = make_net([5, 4096, 4, 3], "relu", output, cost, dtype, seed=3)
    X, Y = make_data(net, n, seed=4)
    zs, as_, gw, gb, gx, c = reference_backprop(net, X, Y)
    assert_close(net.forward(X), as_[-1], dtype, "forward")
    assert_close(net.cost(X, Y), c, dtype, "cost")
    g = net.backprop(X, Y)
    assert_close(g.weights[0], gw[0], dtype, "dC/dW^1")
    assert_close(g.inputs, gx, dtype, "dC/da^0")
    # Row i of the output does not depend on the rows around it.
    np.testing.assert_allclose(net.forward(X[-3:]), net.forward(X)[-3:],
                               rtol=10 * TOL[np.dtype(dtype)], atol=0)


# -- targets ---------------------------------------------------------------------

@pytest.mark.parametrize("output, cost", PAIRS[-3:] + [("relu", "quadratic")])
def test_integer_labels_are_one_hot(output, cost, dtype):
    net = make_net([4, 5, 3], "tanh", output, cost, dtype, seed=2)
    X, _ = make_data(net, 7)
    y = np.array([0, 2, 1, 1, 0, 2, 2])
    Y = np.eye(3, dtype=dtype)[y]
    for labels in (y, y.astype(np.int32), y.astype(np.uint8)):
        assert net.cost(X, labels) == net.cost(X, Y)
        g, g1 = net.backprop(X, labels), net.backprop(X, Y)
        for a, b in zip(g.weights + g.biases + [g.inputs], g1.weights + g1.biases + [g1.inputs]):
            np.testing.assert_array_equal(a, b)
    _, _, gw, _, _, c = reference_backprop(net, X, Y)
    assert_close(net.cost(X, y), c, dtype, "cost")
    assert_close(net.backprop(X, y).weights[0], gw[0], dtype, "dC/dW^1")


@pytest.mark.parametrize("output, cost", [("sigmoid", "cross_entropy"), ("sigmoid", "quadratic"),
                                          ("identity", "quadratic")])
def test_one_output_takes_a_1d_target_column(output, cost, dtype):
    net = make_net([4, 5, 1], "relu", output, cost, dtype, seed=5)
    X, _ = make_data(net, 9)
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1, 1])
    col = y.reshape(-1, 1).astype(dtype)
    for target in (y, y.astype(bool), y.astype(np.float32), y.astype(np.float64)):
        assert net.cost(X, target) == net.cost(X, col)
        np.testing.assert_array_equal(net.backprop(X, target).weights[0],
                                      net.backprop(X, col).weights[0])
    _, _, gw, gb, gx, c = reference_backprop(net, X, col)
    g = net.backprop(X, y)
    assert_close(g.cost, c, dtype, "cost")
    assert_close(g.weights[1], gw[1], dtype, "dC/dW^2")
    assert_close(g.inputs, gx, dtype, "dC/da^0")


@pytest.mark.parametrize("output, cost", [("sigmoid", "cross_entropy"), ("softmax", "log_loss")])
def test_soft_targets_at_the_ends_of_the_range(output, cost, dtype):
    """Soft targets anywhere in [0, 1], including exactly 0 and 1, and log_loss
    rows that do not sum to 1."""
    net = make_net([3, 4, 3], "sigmoid", output, cost, dtype, seed=6)
    X, _ = make_data(net, 4)
    Y = np.array([[0, 0, 0], [1, 1, 1], [0.25, 0, 1], [0.5, 0.5, 0.5]], dtype=dtype)
    _, _, gw, gb, gx, c = reference_backprop(net, X, Y)
    g = net.backprop(X, Y)
    assert_close(g.cost, c, dtype, "cost")
    for l in range(2):
        assert_close(g.weights[l], gw[l], dtype, f"dC/dW^{l + 1}")
        assert_close(g.biases[l], gb[l], dtype, f"dC/db^{l + 1}")
    assert_close(g.inputs, gx, dtype, "dC/da^0")


# -- activations at their edges ----------------------------------------------------

@pytest.mark.parametrize("act, slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_relu_derivative_at_exactly_zero(act, slope, dtype):
    """z = 0 exactly (zero weights and bias for one hidden neuron, and x1 = -x0
    with equal weights for another): sigma'(0) is 0 for relu, 0.01 for leaky_relu."""
    net = fastbp.Network([2, 3, 2], activation=act, output=act, dtype=dtype, seed=0)
    net.weights[0][...] = [[0.0, 0.0], [0.5, 0.5], [1.0, -2.0]]
    net.biases[0][...] = [0.0, 0.0, 0.25]
    net.weights[1][...] = [[1.0, -1.5, 0.5], [0.75, 2.0, -1.0]]
    net.biases[1][...] = [0.0, 0.0]
    X = np.array([[1.0, -1.0], [3.0, -3.0], [0.5, 0.125]], dtype=dtype)
    Y = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 1.0]], dtype=dtype)
    t = net.trace(X)
    assert (t.z[0][:, 0] == 0).all() and (t.z[0][:2, 1] == 0).all()
    g = net.backprop(X, Y)

    # By hand: delta^2 = 2 (a^2 - y) sigma'(z^2) / n;  delta^1 = (delta^2 W^2) sigma'(z^1).
    n = X.shape[0]
    z2, a2 = t.z[1].astype(np.float64), t.a[2].astype(np.float64)
    d2 = 2 * (a2 - Y) * np.where(z2 > 0, 1.0, slope) / n
    d1 = (d2 @ net.weights[1].astype(np.float64)) * np.where(t.z[0] > 0, 1.0, slope)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(g.biases[0], d1.sum(axis=0), rtol=tol, atol=0)
    np.testing.assert_allclose(g.weights[0], d1.T @ X, rtol=tol, atol=0)
    # Neuron 0 has z = 0 on every example: relu passes nothing back through it.
    if act == "relu":
        assert g.biases[0][0] == 0 and (g.weights[0][0] == 0).all()
    else:
        assert g.biases[0][0] != 0
    # And the reference, which states the same rule, agrees.
    _, _, gw, gb, gx, _ = reference_backprop(net, X, Y)
    assert_close(g.biases[0], gb[0], dtype, "dC/db^1")
    assert_close(g.inputs, gx, dtype, "dC/da^0")


@pytest.mark.parametrize("act, slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_relu_output_derivative_at_exactly_zero(act, slope, dtype):
    net = fastbp.Network([2, 2], activation=act, dtype=dtype, seed=0)
    net.weights[0][...] = [[1.0, 1.0], [0.0, 0.0]]
    X = np.array([[2.0, -2.0], [1.0, 1.0]], dtype=dtype)
    Y = np.array([[1.0, 1.0], [1.0, 1.0]], dtype=dtype)
    g = net.backprop(X, Y)
    # z^1 = [[0, 0], [2, 0]]; dC/dz = 2 (a - y) sigma'(z) / n.
    z = np.array([[0.0, 0.0], [2.0, 0.0]])
    a = np.where(z > 0, z, slope * z)
    delta = 2 * (a - Y) * np.where(z > 0, 1.0, slope) / 2
    np.testing.assert_allclose(g.biases[0], delta.sum(axis=0), rtol=1e-6, atol=0)


@pytest.mark.parametrize("output, cost", [("sigmoid", "quadratic"), ("sigmoid", "cross_entropy"),
                                          ("softmax", "quadratic"), ("softmax", "log_loss")])
@pytest.mark.parametrize("big", [1e4, -1e4, 1e30])
def test_no_overflow_for_huge_z(output, cost, big, dtype):
    net = make_net([3, 4, 3], "tanh", output, cost, dtype, seed=7)
    net.biases[1][...] = [big, -big, 0.5 * big]
    X, Y = make_data(net, 5)
    Y = np.clip(Y, 0, 1)
    with np.errstate(all="raise"):       # nothing here may even warn
        A = net.forward(X)
        c = net.cost(X, Y)
        g = net.backprop(X, Y)
        t = net.trace(X)
    assert np.isfinite(A).all() and np.isfinite(t.a[-1]).all()
    assert ((A >= 0) & (A <= 1)).all()
    assert np.isfinite(c) and np.isfinite(g.cost)
    for arr in g.weights + g.biases + [g.inputs]:
        assert np.isfinite(arr).all()
    if abs(big) == 1e4:
        _, _, gw, gb, gx, c_ref = reference_backprop(net, X, Y)
        assert_close(c, c_ref, dtype, "cost")
        assert_close(g.biases[1], gb[1], dtype, "dC/db^2")


def test_log_loss_is_finite_when_z_spans_the_whole_float_range(dtype):
    """z = +-x with x near the dtype's largest value: z_j - logsumexp(z) is -inf
    for the unit with y_j = 0, whose term 0 ln 0 is still 0 (not 0 * -inf = NaN)."""
    net = fastbp.Network([1, 2], output="softmax", cost="log_loss", dtype=dtype)
    net.weights[0][...] = [[1.0], [-1.0]]
    big = 1e308 if np.dtype(dtype) == np.float64 else 2e38
    X = np.array([[big], [big], [1.0]], dtype=dtype)
    y = np.array([0, 0, 1])
    with np.errstate(all="raise"):
        c = net.cost(X, y)
        g = net.backprop(X, y)
    p = 1 / (1 + np.exp(2.0))          # the third example: softmax([1, -1]) at its target
    want = -np.log(p) / 3
    assert_close(c, want, dtype, "cost")
    assert_close(g.cost, want, dtype, "backprop cost")
    assert np.isfinite(g.weights[0]).all() and np.isfinite(g.inputs).all()
    Z = X.astype(np.float64) @ net.weights[0].T.astype(np.float64)
    Y = np.eye(2)[y]
    with np.errstate(over="ignore", under="ignore"):    # z - max(z) = -inf, exp(-inf) = 0
        assert ref.cost(ref.ACTIVATIONS["softmax"][0](Z), Y, "log_loss", z=Z) \
            == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("act", ["sigmoid", "softmax"])
def test_exp_based_activations_are_accurate_everywhere(act, dtype):
    """The core's own vectorized exp (in sigmoid and softmax), against the
    formulas in long double, over the whole range: saturation, the subnormal
    results near exp(-745) (float64) / exp(-103) (float32), and z = +-0."""
    dtype = np.dtype(dtype)
    lim = 800.0 if dtype == np.float64 else 110.0
    rng = np.random.default_rng(20)
    z = np.concatenate([np.linspace(-lim, lim, 40001), rng.normal(0, 6, 20000),
                        [0.0, -0.0, 1e-30, -1e-30, -87.3, -103.9, -708.5, -745.0, -746.0]])
    z = z.astype(dtype)
    net = fastbp.Network([1, 1] if act == "sigmoid" else [1, 2], output=act,
                         cost="quadratic" if act == "sigmoid" else "log_loss", dtype=dtype)
    if act == "sigmoid":
        net.weights[0][...] = 1
        net.biases[0][...] = 0
        zl = z.astype(np.longdouble)
        with np.errstate(over="ignore"):
            want = np.where(zl >= 0, 1 / (1 + np.exp(-zl)), np.exp(zl) / (1 + np.exp(zl)))
        got = net.forward(z.reshape(-1, 1)).ravel()
    else:
        # z_1 - z_2 = z: softmax's first output is sigmoid(z) through exp(-|z|) of a row.
        net.weights[0][...] = [[1.0], [0.0]]
        net.biases[0][...] = 0
        zl = z.astype(np.longdouble)
        m = np.maximum(zl, 0)
        want = np.exp(zl - m) / (np.exp(zl - m) + np.exp(-m))
        got = net.forward(z.reshape(-1, 1))[:, 0]
    ulp = np.maximum(np.spacing(want.astype(dtype)), np.finfo(dtype).smallest_subnormal)
    err = np.abs(got.astype(np.longdouble) - want) / ulp
    assert float(err.max()) <= 4, (z[err.argmax()], got[err.argmax()], want[err.argmax()])
    assert ((got >= 0) & (got <= 1)).all()


# -- the same answer whatever the layout of the input arrays ---------------------------

def _results(net, X, Y):
    g = net.backprop(X, Y)
    t = net.trace(X)
    return [net.forward(X), net.cost(X, Y), net.predict(X), *t.z, *t.a,
            *g.weights, *g.biases, g.inputs, g.cost]


def _assert_same(r1, r2):
    assert len(r1) == len(r2)
    for a, b in zip(r1, r2):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


def test_input_layouts_give_the_same_answer(dtype):
    net = make_net([5, 6, 3], "sigmoid", "softmax", "log_loss", dtype, seed=8)
    rng = np.random.default_rng(0)
    Xi = rng.integers(-3, 4, size=(8, 5))
    X = Xi.astype(dtype)
    Y = rng.integers(0, 9, (8, 3)) / 8      # exact in float32 too
    Y = Y.astype(dtype)
    want = _results(net, X, Y)
    big = np.zeros((16, 10), dtype=dtype)
    big[::2, ::2] = X
    buf = np.zeros(X.nbytes + 1, np.uint8)
    unaligned = np.frombuffer(buf[1:].data, dtype=dtype).reshape(X.shape)
    unaligned[...] = X
    variants = {
        "fortran": (np.asfortranarray(X), np.asfortranarray(Y)),
        "strided": (big[::2, ::2], np.repeat(Y, 2, axis=0)[::2]),
        "reversed": (X[::-1][::-1], Y[::-1][::-1]),
        "int": (Xi, Y),
        "int32": (Xi.astype(np.int32), Y),
        "float32": (X.astype(np.float32), Y.astype(np.float32)),
        "float64": (X.astype(np.float64), Y.astype(np.float64)),
        "big-endian": (X.astype(X.dtype.newbyteorder(">")), Y),
        "list": (X.tolist(), Y.tolist()),
        "unaligned": (unaligned, Y),
        "readonly": (np.frombuffer(X.tobytes(), dtype=dtype).reshape(X.shape), Y),
    }
    for name, (Xv, Yv) in variants.items():
        _assert_same(_results(net, Xv, Yv), want)


def test_float32_data_into_a_float64_network():
    net = make_net([4, 3, 2], dtype=np.float64, seed=9)
    X32 = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    Y = np.zeros((6, 2))
    _assert_same(_results(net, X32, Y), _results(net, X32.astype(np.float64), Y))


def test_single_example_is_one_row(dtype):
    net = make_net([4, 5, 3], "tanh", "softmax", "log_loss", dtype, seed=10)
    X, Y = make_data(net, 1)
    x, y = X[0], Y[0]
    A = net.forward(x)
    assert A.shape == (3,) and A.dtype == dtype
    np.testing.assert_array_equal(A, net.forward(X)[0])
    t = net.trace(x)
    assert [z.shape for z in t.z] == [(5,), (3,)]
    assert [a.shape for a in t.a] == [(4,), (5,), (3,)]
    np.testing.assert_array_equal(t.a[-1], A)
    g, g2 = net.backprop(x, y), net.backprop(X, Y)
    assert g.inputs.shape == (4,)
    np.testing.assert_array_equal(g.inputs, g2.inputs[0])
    np.testing.assert_array_equal(g.weights[0], g2.weights[0])
    assert net.cost(x, y) == net.cost(X, Y) == g.cost
    # A single label for a single example.
    assert net.cost(x, 2) == net.cost(X, [2])


# -- what the gradients mean ---------------------------------------------------------

@pytest.mark.parametrize("output, cost", PAIRS)
def test_inputs_gradient_carries_one_over_n(output, cost, dtype):
    """n * grads.inputs[i] is dC0/da^0 of example i alone; weights are the mean
    of the per-example gradients."""
    net = make_net([4, 5, 3], "tanh", output, cost, dtype, seed=11)
    n = 7
    X, Y = make_data(net, n)
    g = net.backprop(X, Y)
    singles = [net.backprop(X[i:i + 1], Y[i:i + 1]) for i in range(n)]
    tol = TOL[np.dtype(dtype)]
    for i, s in enumerate(singles):
        assert rel_err(n * g.inputs[i], s.inputs[0]) <= tol
    assert rel_err(g.weights[0], np.mean([s.weights[0] for s in singles], axis=0)) <= 10 * tol
    assert rel_err(g.biases[1], np.mean([s.biases[1] for s in singles], axis=0)) <= 10 * tol
    assert rel_err(g.cost, np.mean([s.cost for s in singles])) <= tol


def test_every_public_function_keeps_the_network_dtype(dtype):
    """float32 in, float32 out (and float64 data into a float32 network too)."""
    net = make_net([4, 5, 3], "relu", "softmax", "log_loss", dtype, seed=12)
    X, Y = make_data(net, 6)
    for Xin in (X, X.astype(np.float64), X.astype(np.float32)):
        assert net.forward(Xin).dtype == dtype
        assert net.forward(Xin[0]).dtype == dtype
        t = net.trace(Xin)
        assert all(a.dtype == dtype for a in t.z + t.a)
        g = net.backprop(Xin, Y)
        assert all(a.dtype == dtype for a in g.weights + g.biases + [g.inputs])
        assert type(g.cost) is float and type(net.cost(Xin, Y)) is float
    assert net.predict(X).dtype == np.int64
    assert type(net.predict(X[0])) is int
    assert type(net.score(X, [0, 1, 2, 0, 1, 2])) is float
    assert type(fastbp.gradcheck(net, X[:2], Y[:2])) is float
    e = fastbp.explain(net, X, Y, 1, 0, 0)
    assert all(a.dtype == dtype for a in (e.dz_dw, e.da_dz, e.dc_da, e.dc_dz))
    assert type(e.dc_dw) is float
    assert all(W.dtype == dtype for W in net.weights + net.biases)


# -- against finite differences -----------------------------------------------------

def _fd_cases():
    for hidden in HIDDEN:
        for output, cost in PAIRS:
            yield pytest.param(hidden, output, cost, np.float64, id=f"{hidden}-{output}-{cost}-f64")
    # float32: smooth activations only (a nudge of 1e-3 may cross a relu kink).
    for hidden in ("sigmoid", "tanh", "identity"):
        for output, cost in PAIRS:
            if output in ("sigmoid", "tanh", "identity", "softmax"):
                yield pytest.param(hidden, output, cost, np.float32,
                                   id=f"{hidden}-{output}-{cost}-f32")


# float64 with eps = 1e-6: truncation O(eps^2) and rounding O(1e-16 / 1e-6) are far
# below 1e-6. float32 with eps = 1e-3: rounding of the cost (~1e-7 relative) divided
# by the 2e-3 step leaves ~1e-4 of the gradient's scale, more where the gradient is
# small; 2e-2 is a sensible bound (measured: < 1e-2).
FD_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 2e-2}


@pytest.mark.parametrize("hidden, output, cost, dtype", list(_fd_cases()))
@pytest.mark.parametrize("n", [1, 7])
def test_gradcheck_against_finite_differences(hidden, output, cost, dtype, n):
    net = make_net([4, 6, 5, 3], hidden, output, cost, dtype, seed=13)
    X, Y = make_data(net, n, seed=14)
    assert fastbp.gradcheck(net, X, Y) < FD_TOL[np.dtype(dtype)]


def test_gradcheck_with_labels_and_one_output():
    net = make_net([4, 5, 3], "tanh", "softmax", "log_loss", seed=15)
    X, _ = make_data(net, 6)
    assert fastbp.gradcheck(net, X, [0, 1, 2, 2, 1, 0]) < 1e-6
    net1 = make_net([4, 5, 1], "relu", "sigmoid", "cross_entropy", seed=16)
    assert fastbp.gradcheck(net1, X, [0, 1, 1, 0, 1, 0]) < 1e-6


def test_input_gradient_against_finite_differences():
    """grads.inputs is checked by nudging the inputs (gradcheck covers only parameters)."""
    net = make_net([4, 5, 3], "sigmoid", "softmax", "log_loss", np.float64, seed=17)
    X, Y = make_data(net, 3)
    g = net.backprop(X, Y)
    fd = np.zeros_like(X)
    eps = 1e-6
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += eps
        Xm[idx] -= eps
        fd[idx] = (net.cost(Xp, Y) - net.cost(Xm, Y)) / (2 * eps)
    assert rel_err(g.inputs, fd) < 1e-7
