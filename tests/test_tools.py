"""fastbp.gradcheck (the tiny nudge) and fastbp.explain (the chain rule of one weight)."""

import numpy as np
import pytest

import fastbp
from fastbp import reference as ref

from conftest import DTYPES, PAIRS, make_data, make_net, snapshot

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


# -- gradcheck -----------------------------------------------------------------------

def test_gradcheck_is_small_for_a_correct_network(dtype):
    net = make_net([3, 5, 4, 2], "tanh", "sigmoid", "cross_entropy", dtype, seed=1)
    X, Y = make_data(net, 6)
    err = fastbp.gradcheck(net, X, Y)
    assert type(err) is float
    assert 0 <= err < (1e-6 if dtype == np.float64 else 2e-2)


def test_gradcheck_leaves_parameters_bit_identical(dtype):
    net = make_net([3, 5, 2], "sigmoid", "softmax", "log_loss", dtype, seed=2)
    X, Y = make_data(net, 4)
    before = snapshot(net)
    ids = [id(a) for a in net.weights + net.biases]
    for eps in (None, 1e-2, 0.1, 1e-7, 0.3):
        fastbp.gradcheck(net, X, Y, eps=eps)
        assert snapshot(net) == before
    assert [id(a) for a in net.weights + net.biases] == ids


class KernelSpy:
    """Stands in for a network's compiled kernel (whose attributes are read-only),
    passing everything through except `cost_value`, which calls `hook` first."""

    def __init__(self, kernel, hook):
        self._kernel, self._hook = kernel, hook

    def __getattr__(self, name):
        return getattr(self._kernel, name)

    def cost_value(self, weights, biases, X, Y):
        self._hook(weights, biases)
        return self._kernel.cost_value(weights, biases, X, Y)


def test_gradcheck_leaves_parameters_alone_when_interrupted(monkeypatch):
    net = make_net([3, 4, 2], seed=3)
    X, Y = make_data(net, 4)
    before = snapshot(net)
    calls = []

    class Boom(Exception):
        pass

    def hook(weights, biases):
        calls.append(1)
        if len(calls) == 5:              # in the middle of a nudge
            raise Boom

    monkeypatch.setattr(net, "_kernel", KernelSpy(net._kernel, hook))
    with pytest.raises(Boom):
        fastbp.gradcheck(net, X, Y)
    assert snapshot(net) == before


def test_gradcheck_default_eps_per_dtype(dtype, monkeypatch):
    """The default eps is 1e-6 for float64 and 1e-3 for float32: gradcheck with
    eps=None gives exactly what the explicit default gives."""
    net = make_net([3, 4, 2], "sigmoid", "sigmoid", "quadratic", dtype, seed=4)
    X, Y = make_data(net, 3)
    default = 1e-6 if dtype == np.float64 else 1e-3
    assert fastbp.gradcheck(net, X, Y) == fastbp.gradcheck(net, X, Y, eps=default)
    other = 1e-3 if dtype == np.float64 else 1e-2
    assert fastbp.gradcheck(net, X, Y) != fastbp.gradcheck(net, X, Y, eps=other)
    # And the nudge really is of that size: record the parameter values the cost sees.
    seen = []
    monkeypatch.setattr(net, "_kernel", KernelSpy(
        net._kernel, lambda weights, biases: seen.append(float(biases[0][0]))))
    b = float(net.biases[0][0])
    fastbp.gradcheck(net, X, Y)
    steps = sorted({abs(v - b) for v in seen} - {0.0})
    assert steps and abs(steps[0] - default) <= 1e-3 * default + 4 * np.spacing(b).item()


@pytest.mark.parametrize("eps", [0, 0.0, -1e-6, -1])
def test_gradcheck_eps_must_be_positive(eps):
    net = make_net([3, 2], seed=5)
    X, Y = make_data(net, 2)
    before = snapshot(net)
    with pytest.raises(ValueError, match="eps"):
        fastbp.gradcheck(net, X, Y, eps=eps)
    assert snapshot(net) == before


@pytest.mark.parametrize("eps, exc", [(float("nan"), ValueError), (float("inf"), ValueError),
                                      ("1e-6", TypeError), ([1e-6], TypeError)])
def test_gradcheck_eps_must_be_a_finite_number(eps, exc):
    net = make_net([3, 2], seed=5)
    X, Y = make_data(net, 2)
    with pytest.raises(exc, match="eps"):
        fastbp.gradcheck(net, X, Y, eps=eps)


@pytest.mark.parametrize("dtype, eps", [(np.float64, 1e-20), (np.float32, 1e-12)])
def test_gradcheck_eps_too_small_to_move_a_parameter(dtype, eps, monkeypatch):
    """p + eps == p - eps after rounding: refused (not a division by zero) before
    any parameter is nudged."""
    net = make_net([3, 4, 2], dtype=dtype, seed=5)
    X, Y = make_data(net, 2)
    before = snapshot(net)
    calls = []
    monkeypatch.setattr(net, "_kernel", KernelSpy(net._kernel, lambda w, b: calls.append(1)))
    with pytest.raises(ValueError, match=rf"^eps={eps:g} is too small to change weights\[0\]\[0, 0\] "
                                         rf"\(= \S+\) in {np.dtype(dtype)}; use a larger eps$"):
        fastbp.gradcheck(net, X, Y, eps=eps)
    assert calls == [] and snapshot(net) == before


def test_gradcheck_eps_too_small_names_the_parameter():
    net = make_net([3, 4, 2], seed=5)
    for p in net.weights + net.biases:
        p[...] = 0
    X, Y = make_data(net, 2)
    assert fastbp.gradcheck(net, X, Y, eps=1e-300) >= 0.0    # any eps > 0 moves a zero
    net.biases[1][1] = 1e6               # spacing 1.2e-10: a nudge of 1e-12 rounds away
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"change biases\[1\]\[1\] \(= 1e\+06\) in float64"):
        fastbp.gradcheck(net, X, Y, eps=1e-12)
    assert snapshot(net) == before


@pytest.mark.parametrize("network", [None, "net.npz", object()], ids=["None", "str", "object"])
def test_tools_need_a_network(network):
    net = make_net([3, 4, 2], seed=5)
    X, Y = make_data(net, 2)
    for call in (lambda: fastbp.gradcheck(network, X, Y),
                 lambda: fastbp.gradcheck(network, X, Y, eps=1e-6),
                 lambda: fastbp.explain(network, X, Y, 1, 0, 0)):
        with pytest.raises(TypeError, match=rf"needs a fastbp\.Network; got {type(network).__name__}$"):
            call()


class BackpropSpy:
    """Stands in for a network's compiled kernel, passing everything through
    except `backprop`, whose gradients `change(gW, gb)` rewrites."""

    def __init__(self, kernel, change):
        self._kernel, self._change = kernel, change

    def __getattr__(self, name):
        return getattr(self._kernel, name)

    def backprop(self, weights, biases, X, Y):
        gW, gb, gX, c = self._kernel.backprop(weights, biases, X, Y)
        return (*self._change(gW, gb), gX, c)


def test_gradcheck_detects_a_wrong_gradient(monkeypatch):
    net = make_net([3, 5, 2], "tanh", "sigmoid", "quadratic", seed=6)
    X, Y = make_data(net, 5)
    assert fastbp.gradcheck(net, X, Y) < 1e-6
    real = net._kernel

    def off_by_a_bit(gW, gb):
        weights = [w.copy() for w in gW]
        weights[0][1, 2] += 0.1 * np.abs(gW[0]).max()
        return weights, gb

    monkeypatch.setattr(net, "_kernel", BackpropSpy(real, off_by_a_bit))
    assert fastbp.gradcheck(net, X, Y) > 1e-3

    def wrong_scale(gW, gb):          # the classic bug: forgetting the 1/n (or the 2)
        return [2 * w for w in gW], [2 * b for b in gb]

    monkeypatch.setattr(net, "_kernel", BackpropSpy(real, wrong_scale))
    assert fastbp.gradcheck(net, X, Y) == pytest.approx(1 / 3, rel=1e-4)


def test_gradcheck_measure_per_array():
    """The value is the largest over parameter arrays of the spec's relative measure."""
    from fastbp.tools import gradcheck_arrays
    net = make_net([3, 4, 2], "sigmoid", "tanh", "quadratic", seed=7)
    X, Y = make_data(net, 3)
    per = gradcheck_arrays(net, X, Y)
    assert set(per) == {"weights[0]", "weights[1]", "biases[0]", "biases[1]"}
    assert fastbp.gradcheck(net, X, Y) == max(per.values())


def test_gradcheck_of_a_zero_gradient_is_zero():
    """||g|| + ||g_fd|| = 0 does not divide by zero (the `tiny` in the measure)."""
    net = fastbp.Network([2, 3, 2], activation="relu", output="identity", seed=8)
    for p in net.weights + net.biases:
        p[...] = 0
    X = np.ones((2, 2))
    with np.errstate(all="raise"):
        assert fastbp.gradcheck(net, X, np.zeros((2, 2))) == 0.0


# -- explain --------------------------------------------------------------------------

def _explain_cases():
    for output, cost in PAIRS:
        for dtype in DTYPES:
            yield pytest.param(output, cost, dtype, id=f"{output}-{cost}-{np.dtype(dtype).name}")


@pytest.mark.parametrize("hidden", ["sigmoid", "relu", "leaky_relu"])
@pytest.mark.parametrize("output, cost, dtype", list(_explain_cases()))
def test_explain_factors(hidden, output, cost, dtype):
    sizes = [4, 5, 3, 3]
    net = make_net(sizes, hidden, output, cost, dtype, seed=9)
    n = 6
    X, Y = make_data(net, n)
    g = net.backprop(X, Y)
    t = net.trace(X)
    L = net.n_layers
    tol = TOL[np.dtype(dtype)]
    for layer in range(1, L + 1):
        for j, k in {(0, 0), (sizes[layer] - 1, sizes[layer - 1] - 1), (1, 2)}:
            e = fastbp.explain(net, X, Y, layer, j, k)
            assert (e.layer, e.j, e.k) == (layer, j, k)
            assert e.dz_dw.shape == e.dc_dz.shape == (n,)
            assert type(e.dc_dw) is float
            # The product equals the backprop gradient of that weight.
            want = float(g.weights[layer - 1][j, k])
            assert abs(e.dc_dw - want) <= 10 * tol * max(abs(want), np.abs(g.weights[layer - 1]).max())
            np.testing.assert_array_equal(e.dz_dw, t.a[layer - 1][:, k])
            act = net.activations[layer - 1]
            if act == "softmax":
                assert e.da_dz is None and e.dc_da is None
            elif layer == L and cost == "cross_entropy":
                # From z, not from the rounded a (see test_explain_saturated_sigmoid_cross_entropy).
                z = t.z[layer - 1][:, j]
                assert e.da_dz.shape == e.dc_da.shape == (n,)
                assert e.da_dz.dtype == e.dc_da.dtype == e.dc_dz.dtype == np.dtype(dtype)
                np.testing.assert_allclose(e.da_dz, ref.sigmoid(z) * ref.sigmoid(-z),
                                           rtol=4 * np.finfo(dtype).eps)
                np.testing.assert_allclose(e.dc_dz, e.da_dz * e.dc_da, rtol=10 * tol)
            else:
                assert e.da_dz.shape == e.dc_da.shape == (n,)
                # Bit-equal to the sigma' that the delta recurrence (and the core) uses.
                np.testing.assert_array_equal(
                    e.da_dz, ref.ACTIVATIONS[act][1](t.z[layer - 1], t.a[layer])[:, j])
                np.testing.assert_allclose(e.dc_dz, e.da_dz * e.dc_da, rtol=10 * tol,
                                           atol=10 * tol * np.abs(e.dc_dz).max())
            np.testing.assert_allclose(e.dc_dw, np.mean(e.dz_dw * e.dc_dz), rtol=tol)
            # dc_dz is the per-example delta: n times the backprop bias gradient on average.
            np.testing.assert_allclose(e.dc_dz.mean(), g.biases[layer - 1][j], rtol=10 * tol,
                                       atol=10 * tol * np.abs(g.biases[layer - 1]).max())


def _torch_dc_da(net, X, Y):
    """dC0/da^l for every layer l = 1..L and example (sum reduction), by PyTorch autograd."""
    torch = pytest.importorskip("torch")
    a = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    acts = []
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "identity": lambda z: z, "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
           "softmax": lambda z: torch.softmax(z, dim=1)}
    for W, b, name in zip(net.weights, net.biases, net.activations):
        z = a @ torch.tensor(W, dtype=torch.float64).T + torch.tensor(b, dtype=torch.float64)
        a = fns[name](z)
        a.retain_grad()
        acts.append(a)
    y = torch.tensor(Y, dtype=torch.float64)
    if net.cost_name == "quadratic":
        c = ((a - y) ** 2).sum()
    elif net.cost_name == "cross_entropy":
        c = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum()
    else:
        c = -(y * torch.log(a)).sum()
    c.backward()
    return [x.grad.numpy() for x in acts]


@pytest.mark.parametrize("hidden", ["sigmoid", "tanh", "leaky_relu"])
@pytest.mark.parametrize("output, cost", PAIRS)
def test_explain_dc_da_against_torch(hidden, output, cost):
    net = make_net([4, 5, 4, 3], hidden, output, cost, seed=10)
    X, Y = make_data(net, 5)
    grads = _torch_dc_da(net, X, Y)
    for layer in (1, 2, 3):
        for j in range(net.sizes[layer]):
            e = fastbp.explain(net, X, Y, layer, j, 0)
            if e.dc_da is None:
                assert layer == 3 and output == "softmax"
                continue
            np.testing.assert_allclose(e.dc_da, grads[layer - 1][:, j], rtol=1e-10,
                                       atol=1e-12 * np.abs(grads[layer - 1]).max())


def test_explain_dc_da_by_nudging_the_activation():
    """dC0/da^1_j by finite differences: add h to a^1_j (through the bias of an
    identity hidden layer, where a = z) and watch C0 of each example change."""
    net = make_net([3, 4, 2], "identity", "sigmoid", "cross_entropy", seed=11)
    X, Y = make_data(net, 4)
    h = 1e-6
    j = 2
    e = fastbp.explain(net, X, Y, 1, j, 1)
    per_example = []
    for i in range(X.shape[0]):
        old = net.biases[0][j]
        net.biases[0][j] = old + h
        up = net.cost(X[i:i + 1], Y[i:i + 1])
        net.biases[0][j] = old - h
        down = net.cost(X[i:i + 1], Y[i:i + 1])
        net.biases[0][j] = old
        per_example.append((up - down) / (2 * h))
    np.testing.assert_allclose(e.dc_da, per_example, rtol=1e-7)
    np.testing.assert_array_equal(e.da_dz, np.ones(4))


@pytest.mark.parametrize("dtype, zs", [(np.float64, (40.0, 40.0, 30.0)),
                                       (np.float32, (20.0, 20.0, 17.0))], ids=["float64", "float32"])
def test_explain_saturated_sigmoid_cross_entropy(dtype, zs):
    """Where a = sigma(z) has rounded to 1, a (1 - a) is 0 (and so is a - y where
    y = 1); the factors are computed from z instead and stay finite and accurate."""
    net = fastbp.Network([1, 1], activation="sigmoid", cost="cross_entropy", dtype=dtype, seed=0)
    net.weights[0][...] = 1.0
    X = np.array(zs, dtype=dtype)[:, None]
    y = np.array([1.0, 0.0, 1.0])
    assert (net.forward(X)[:2] == 1).all()                 # saturated in this dtype
    e = fastbp.explain(net, X, y, 1, 0, 0)
    z = np.array(zs)
    s_minus = np.exp(-z) / (1 + np.exp(-z))                # sigma(-z), in float64
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    for got, want in ((e.da_dz, s_minus * (1 - s_minus)),  # sigma(z) sigma(-z)
                      # (a - y) / (a (1 - a)): -1 / a for y = 1, 1 / (1 - a) for y = 0
                      (e.dc_da, [-(1 + np.exp(-z[0])), 1 + np.exp(z[1]), -(1 + np.exp(-z[2]))]),
                      (e.dc_dz, [-s_minus[0], 1 - s_minus[1], -s_minus[2]])):
        assert got.dtype == np.dtype(dtype) and np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=rtol)
    # (a - y) / sigma' * sigma' is a - y up to the two roundings (libm's exp differs by platform)
    np.testing.assert_allclose(e.da_dz * e.dc_da, e.dc_dz, rtol=2 * np.finfo(dtype).eps)
    want = float(net.backprop(X, y).weights[0][0, 0])
    assert e.dc_dw == pytest.approx(want, rel=10 * TOL[np.dtype(dtype)])


@pytest.mark.parametrize("dtype, z", [(np.float64, 760.0), (np.float32, 100.0)],
                         ids=["float64", "float32"])
def test_explain_beyond_the_range_of_sigmoid_prime(dtype, z):
    """sigma'(z) below the smallest subnormal (or its reciprocal beyond the largest
    float): dC0/da is still -1/a = -1 for y = 1, and infinite (its true value,
    e^z, overflows) for y < 1; dc_dz = a - y and dc_dw stay exact."""
    net = fastbp.Network([1, 1], activation="sigmoid", cost="cross_entropy", dtype=dtype, seed=0)
    net.weights[0][...] = 1.0
    X = np.full((3, 1), z, dtype=dtype)
    y = np.array([[1.0], [0.0], [0.5]])
    with np.errstate(all="raise", under="ignore"):    # sigma(-z) underflows: it is that small
        e = fastbp.explain(net, X, y, 1, 0, 0)
    assert e.dc_da[0] == -1.0 and np.isposinf(e.dc_da[1:]).all()
    np.testing.assert_allclose(e.dc_dz, [0.0, 1.0, 0.5], atol=1e-40)
    assert e.dc_dw == pytest.approx(z * 1.5 / 3, rel=1e-6)      # mean of x (a - y)
    assert e.dc_dw == pytest.approx(float(net.backprop(X, y).weights[0][0, 0]), rel=1e-6)


def test_explain_softmax_output_layer():
    net = make_net([3, 4, 3], "tanh", "softmax", "log_loss", seed=12)
    X, Y = make_data(net, 5)
    e = fastbp.explain(net, X, Y, 2, 1, 3)
    assert e.da_dz is None and e.dc_da is None
    t = net.trace(X)
    np.testing.assert_allclose(e.dc_dz, (t.a[2] * Y.sum(axis=1, keepdims=True) - Y)[:, 1],
                               rtol=1e-12)
    # Below a softmax output, the factors are all there.
    e1 = fastbp.explain(net, X, Y, 1, 3, 2)
    assert e1.da_dz is not None and e1.dc_da is not None


def test_explain_accepts_labels_and_one_example():
    net = make_net([3, 4, 3], "sigmoid", "softmax", "log_loss", seed=13)
    X, _ = make_data(net, 3)
    y = np.array([2, 0, 1])
    a = fastbp.explain(net, X, y, 2, 0, 1)
    b = fastbp.explain(net, X, np.eye(3)[y], 2, 0, 1)
    np.testing.assert_array_equal(a.dc_dz, b.dc_dz)
    one = fastbp.explain(net, X[0], y[0], 1, 1, 1)
    assert one.dz_dw.shape == (1,)
    assert one.dc_dw == pytest.approx(net.backprop(X[:1], y[:1]).weights[0][1, 1], rel=1e-12)


@pytest.mark.parametrize("layer, j, k, word", [
    (0, 0, 0, "layer"), (3, 0, 0, "layer"), (-1, 0, 0, "layer"),
    (1, 4, 0, "j"), (1, -1, 0, "j"), (2, 2, 0, "j"),
    (1, 0, 3, "k"), (1, 0, -1, "k"), (2, 0, 4, "k")])
def test_explain_out_of_range(layer, j, k, word):
    net = make_net([3, 4, 2], seed=14)          # layer 1: j < 4, k < 3; layer 2: j < 2, k < 4
    X, Y = make_data(net, 2)
    before = snapshot(net)
    with pytest.raises(ValueError, match=rf"^{word} must be in"):
        fastbp.explain(net, X, Y, layer, j, k)
    assert snapshot(net) == before


@pytest.mark.parametrize("layer, j, k", [(1.0, 0, 0), ("1", 0, 0), (True, 0, 0), (1, 0.0, 0),
                                         (1, None, 0), (1, 0, 1.5), (1, 0, np.float64(0))])
def test_explain_non_integer_indices(layer, j, k):
    net = make_net([3, 4, 2], seed=15)
    X, Y = make_data(net, 2)
    with pytest.raises(TypeError):
        fastbp.explain(net, X, Y, layer, j, k)


def test_explain_numpy_integer_indices():
    net = make_net([3, 4, 2], seed=16)
    X, Y = make_data(net, 2)
    a = fastbp.explain(net, X, Y, np.int64(2), np.int32(1), np.uint8(3))
    b = fastbp.explain(net, X, Y, 2, 1, 3)
    assert (a.layer, a.j, a.k) == (2, 1, 3) and a.dc_dw == b.dc_dw
