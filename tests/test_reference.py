"""Checks of the NumPy oracle itself (fastbp.reference): the core's tests trust it.

Gradients against central finite differences and against PyTorch autograd (float64),
numerical stability, the optimizers against torch.optim, and train_epoch against
batches done by hand.
"""

import numpy as np
import pytest

from fastbp import reference as ref

HIDDEN = ("sigmoid", "relu", "tanh", "identity", "leaky_relu")
OUTPUTS = HIDDEN + ("softmax",)
# The spec's "Pairs" rule: quadratic with every output; cross_entropy needs sigmoid;
# log_loss needs softmax.
PAIRS = [(out, "quadratic") for out in OUTPUTS] + [
    ("sigmoid", "cross_entropy"),
    ("softmax", "log_loss"),
]
HIDDEN_WIDTHS = {0: [], 1: [5], 2: [5, 4]}


def _cases():
    for depth in (0, 1, 2):
        for hidden in (HIDDEN[:1] if depth == 0 else HIDDEN):
            for output, cost in PAIRS:
                for n in (1, 7):
                    yield pytest.param(
                        depth, hidden, output, cost, n,
                        id=f"d{depth}-{hidden if depth else '-'}-{output}-{cost}-n{n}",
                    )


CASES = list(_cases())


def make_problem(depth, hidden, output, cost, n, seed=0, dtype=np.float64):
    """A small random network [3, hidden..., 3] with a batch of n examples."""
    rng = np.random.default_rng(seed)
    sizes = [3, *HIDDEN_WIDTHS[depth], 3]
    weights = [rng.normal(0, 1, (m, k)).astype(dtype) for k, m in zip(sizes, sizes[1:])]
    biases = [rng.normal(0, 0.5, m).astype(dtype) for m in sizes[1:]]
    activations = [hidden] * depth + [output]
    X = rng.normal(0, 1, (n, sizes[0])).astype(dtype)
    if cost == "quadratic":
        Y = rng.normal(0, 1, (n, sizes[-1]))
    else:  # soft targets in [0, 1]; for log_loss their rows do not sum to 1
        Y = rng.uniform(0, 1, (n, sizes[-1]))
    return weights, biases, activations, X, Y.astype(dtype)


def mean_cost(weights, biases, activations, cost, X, Y):
    zs, as_ = ref.forward(weights, biases, activations, X)
    return ref.cost(as_[-1], Y, cost, z=zs[-1])


def rel_error(g, g_fd):
    """The spec's gradcheck measure: ||g - g_fd|| / max(||g|| + ||g_fd||, tiny)."""
    num = np.linalg.norm(g - g_fd)
    return num / max(np.linalg.norm(g) + np.linalg.norm(g_fd), np.finfo(float).tiny)


def central_differences(f, arrays, eps=1e-6):
    """dF/d(every entry of every array), nudging each entry in place and restoring it."""
    grads = []
    for arr in arrays:
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = f()
            arr[idx] = old - eps
            down = f()
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("depth, hidden, output, cost, n", CASES)
def test_backprop_matches_finite_differences(depth, hidden, output, cost, n):
    weights, biases, activations, X, Y = make_problem(depth, hidden, output, cost, n)
    gw, gb, gx, value = ref.backprop(weights, biases, activations, cost, X, Y)
    assert value == pytest.approx(mean_cost(weights, biases, activations, cost, X, Y), rel=1e-14)

    fd = central_differences(
        lambda: mean_cost(weights, biases, activations, cost, X, Y),
        [*weights, *biases, X],
    )
    for g, g_fd in zip([*gw, *gb, gx], fd):
        assert g.shape == g_fd.shape
        assert rel_error(g, g_fd) < 1e-6


def torch_backprop(weights, biases, activations, cost, X, Y):
    """The same mean cost in PyTorch from the textbook formulas; autograd does the rest."""
    torch = pytest.importorskip("torch")
    Ws = [torch.tensor(W, requires_grad=True) for W in weights]
    bs = [torch.tensor(b, requires_grad=True) for b in biases]
    x = torch.tensor(X, requires_grad=True)
    y = torch.tensor(Y)
    sigma = {
        "sigmoid": torch.sigmoid,
        "relu": torch.relu,
        "tanh": torch.tanh,
        "identity": lambda z: z,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
        "softmax": lambda z: torch.softmax(z, dim=1),
    }
    a = x
    for W, b, name in zip(Ws, bs, activations):
        a = sigma[name](a @ W.T + b)
    if cost == "quadratic":
        c0 = ((a - y) ** 2).sum(dim=1)
    elif cost == "cross_entropy":
        c0 = -(y * torch.log(a) + (1 - y) * torch.log(1 - a)).sum(dim=1)
    else:
        c0 = -(y * torch.log(a)).sum(dim=1)
    C = c0.mean()
    C.backward()
    return ([W.grad.numpy() for W in Ws], [b.grad.numpy() for b in bs],
            x.grad.numpy(), C.item())


@pytest.mark.parametrize("depth, hidden, output, cost, n", CASES)
def test_backprop_matches_torch_autograd(depth, hidden, output, cost, n):
    weights, biases, activations, X, Y = make_problem(depth, hidden, output, cost, n, seed=1)
    gw, gb, gx, value = ref.backprop(weights, biases, activations, cost, X, Y)
    tw, tb, tx, tvalue = torch_backprop(weights, biases, activations, cost, X, Y)
    assert value == pytest.approx(tvalue, rel=1e-12)
    for g, t in zip([*gw, *gb, gx], [*tw, *tb, tx]):
        np.testing.assert_allclose(g, t, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(t).max()))


def test_backprop_inputs_false_skips_only_the_input_gradient():
    weights, biases, activations, X, Y = make_problem(2, "tanh", "softmax", "log_loss", 7)
    full = ref.backprop(weights, biases, activations, "log_loss", X, Y)
    lean = ref.backprop(weights, biases, activations, "log_loss", X, Y, inputs=False)
    assert lean[2] is None and lean[3] == full[3]
    for a, b in zip([*full[0], *full[1]], [*lean[0], *lean[1]]):
        np.testing.assert_array_equal(a, b)


def test_inputs_gradient_carries_one_over_n():
    # Duplicating every example leaves C unchanged and halves each row of dC/da^0.
    weights, biases, activations, X, Y = make_problem(1, "sigmoid", "sigmoid", "quadratic", 7)
    _, _, gx, c = ref.backprop(weights, biases, activations, "quadratic", X, Y)
    _, _, gx2, c2 = ref.backprop(weights, biases, activations, "quadratic",
                                 np.vstack([X, X]), np.vstack([Y, Y]))
    assert c2 == pytest.approx(c, rel=1e-14)
    np.testing.assert_allclose(gx2[:7], gx / 2, rtol=1e-14)


def test_derivatives_at_zero_and_leaky_slope():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(ref.ACTIVATIONS["relu"][1](z), [0, 0, 1])
    np.testing.assert_array_equal(ref.ACTIVATIONS["leaky_relu"][1](z), [0.01, 0.01, 1])
    np.testing.assert_array_equal(ref.ACTIVATIONS["leaky_relu"][0](z), [-0.02, 0, 3])
    assert ref.ACTIVATIONS["softmax"][1] is None


@pytest.mark.parametrize("name", HIDDEN)
def test_sigma_prime_with_and_without_a(name):
    sigma, prime = ref.ACTIVATIONS[name]
    z = np.linspace(-5, 5, 11)
    np.testing.assert_allclose(prime(z), prime(z, sigma(z)), rtol=0, atol=0)
    # against a central difference away from the kinks
    z = z + 0.05
    fd = (sigma(z + 1e-6) - sigma(z - 1e-6)) / 2e-6
    np.testing.assert_allclose(prime(z), fd, rtol=1e-8, atol=1e-10)


def test_unsupported_pairs_are_refused():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="sigmoid"):
        ref.output_delta(z, z, z, "relu", "cross_entropy")
    with pytest.raises(ValueError, match="softmax"):
        ref.output_delta(z, z, z, "sigmoid", "log_loss")
    with pytest.raises(ValueError, match="output activation only"):
        ref.forward([np.eye(3)] * 2, [np.zeros(3)] * 2, ["softmax", "sigmoid"], z)


@pytest.mark.parametrize("output, cost", PAIRS)
def test_float32_stays_float32(output, cost):
    weights, biases, activations, X, Y = make_problem(2, "relu", output, cost, 7,
                                                      dtype=np.float32)
    zs, as_ = ref.forward(weights, biases, activations, X)
    assert all(a.dtype == np.float32 for a in [*zs, *as_])
    assert ref.output_delta(zs[-1], as_[-1], Y, output, cost).dtype == np.float32
    gw, gb, gx, value = ref.backprop(weights, biases, activations, cost, X, Y)
    assert all(g.dtype == np.float32 for g in [*gw, *gb, gx])
    assert isinstance(value, float)
    assert isinstance(ref.cost(as_[-1], Y, cost), float)
    for name, (sigma, prime) in ref.ACTIVATIONS.items():
        assert sigma(zs[0]).dtype == np.float32
        if prime is not None:
            assert prime(zs[0]).dtype == np.float32


# ---------------------------------------------------------------------------
# Numerical stability
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_and_softmax_do_not_overflow(dtype):
    big = np.array([[1000.0, -1000.0, 0.0]], dtype=dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        s = ref.ACTIVATIONS["sigmoid"][0](big)
        p = ref.ACTIVATIONS["softmax"][0](big)
        q = ref.ACTIVATIONS["softmax"][0](np.full((2, 4), -1000.0, dtype=dtype))
        d = ref.ACTIVATIONS["sigmoid"][1](big)
    np.testing.assert_array_equal(s, [[1.0, 0.0, 0.5]])
    np.testing.assert_array_equal(p, [[1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(q, np.full((2, 4), 0.25))
    np.testing.assert_array_equal(d, [[0.0, 0.0, 0.25]])


def test_sigmoid_is_accurate_in_both_tails():
    z = np.array([-745.0, -700.0, -40.0, -1.0, 0.0, 1.0, 40.0, 700.0])
    exact = np.array([1 / (1 + np.exp(-t)) if t >= 0 else np.exp(t) / (1 + np.exp(t))
                      for t in z])
    np.testing.assert_allclose(ref.ACTIVATIONS["sigmoid"][0](z), exact, rtol=1e-15)
    assert ref.ACTIVATIONS["sigmoid"][0](np.array([-40.0]))[0] == pytest.approx(
        np.exp(-40.0), rel=1e-15)


def test_cross_entropy_stable_for_large_z():
    z = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    y = np.array([[0.3, 0.3, 1.0, 0.0]])
    a = ref.ACTIVATIONS["sigmoid"][0](z)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        c = ref.cost(a, y, "cross_entropy", z=z)
    # softplus(z) - y z: 1000 - 300, 0 + 300, ~e^-1000, ~e^-1000
    assert c == pytest.approx(700.0 + 300.0, rel=1e-15)
    # where the textbook formula on a is finite, both agree
    assert ref.cost(a[:, 2:], y[:, 2:], "cross_entropy") == 0.0
    assert ref.cost(a[:, 2:], y[:, 2:], "cross_entropy", z=z[:, 2:]) == pytest.approx(0, abs=1e-300)
    _, _, _, value = ref.backprop([np.eye(4) * 1e3], [np.zeros(4)], ["sigmoid"],
                                  "cross_entropy", np.array([[1.0, -1, 1, -1]]), y)
    assert value == pytest.approx(1000.0)


def test_log_loss_stable_for_large_z():
    z = np.array([[1000.0, -1000.0, 0.0]])
    y = np.array([[0.5, 0.5, 0.0]])
    a = ref.ACTIVATIONS["softmax"][0](z)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        c = ref.cost(a, y, "log_loss", z=z)
    assert c == pytest.approx(0.5 * 0 + 0.5 * 2000.0, rel=1e-15)
    # y = 0 where a underflowed to 0: the textbook value is finite and both agree
    y = np.array([[1.0, 0.0, 0.0]])
    assert ref.cost(a, y, "log_loss") == 0.0
    assert ref.cost(a, y, "log_loss", z=z) == pytest.approx(0.0, abs=1e-300)


@pytest.mark.parametrize("cost, output", [("cross_entropy", "sigmoid"), ("log_loss", "softmax")])
def test_stable_cost_equals_textbook_formula(cost, output):
    rng = np.random.default_rng(3)
    z = rng.uniform(-8, 8, (20, 4))
    y = rng.uniform(0, 1, (20, 4))
    y[::3] = np.round(y[::3])  # some hard 0/1 targets too
    a = ref.ACTIVATIONS[output][0](z)
    assert ref.cost(a, y, cost, z=z) == pytest.approx(ref.cost(a, y, cost), rel=1e-12)


def test_quadratic_cost_has_no_half():
    A = np.array([[1.0, 2.0], [0.0, 0.0]])
    Y = np.array([[0.0, 0.0], [0.0, 3.0]])
    assert ref.cost(A, Y, "quadratic") == (1 + 4 + 9) / 2


# ---------------------------------------------------------------------------
# Optimizers against torch.optim
# ---------------------------------------------------------------------------

def _torch_params(weights, biases):
    torch = pytest.importorskip("torch")
    tw = [torch.tensor(W.copy(), requires_grad=True) for W in weights]
    tb = [torch.tensor(b.copy(), requires_grad=True) for b in biases]
    return torch, tw, tb


def _random_params(rng):
    weights = [rng.normal(size=(4, 3)), rng.normal(size=(2, 4))]
    biases = [rng.normal(size=4), rng.normal(size=2)]
    return weights, biases


def _close(ours, theirs):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_sgd_update_matches_torch(momentum, nesterov, l2):
    rng = np.random.default_rng(4)
    weights, biases = _random_params(rng)
    torch, tw, tb = _torch_params(weights, biases)
    opt = torch.optim.SGD([{"params": tw, "weight_decay": l2}, {"params": tb, "weight_decay": 0.0}],
                          lr=0.05, momentum=momentum, nesterov=nesterov)
    state = ref.init_state(weights, biases, ("sgd", {}))
    for _ in range(5):
        grads = [rng.normal(size=p.shape) for p in [*weights, *biases]]
        for p, g in zip([*tw, *tb], grads):
            p.grad = torch.tensor(g)
        opt.step()
        ours = [g + l2 * W for g, W in zip(grads[:2], weights)] + grads[2:]
        ref.sgd_update([*weights, *biases], ours, state["velocity"], lr=0.05,
                       momentum=momentum, nesterov=nesterov)
    _close([*weights, *biases], [*tw, *tb])


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_adam_update_matches_torch(l2):
    rng = np.random.default_rng(5)
    weights, biases = _random_params(rng)
    torch, tw, tb = _torch_params(weights, biases)
    hyper = dict(lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    opt = torch.optim.Adam([{"params": tw, "weight_decay": l2}, {"params": tb, "weight_decay": 0.0}],
                           lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]), eps=hyper["eps"])
    state = ref.init_state(weights, biases, ("adam", hyper))
    for t in range(1, 6):
        grads = [rng.normal(size=p.shape) for p in [*weights, *biases]]
        for p, g in zip([*tw, *tb], grads):
            p.grad = torch.tensor(g)
        opt.step()
        ours = [g + l2 * W for g, W in zip(grads[:2], weights)] + grads[2:]
        ref.adam_update([*weights, *biases], ours, state["m"], state["v"], t, **hyper)
    _close([*weights, *biases], [*tw, *tb])
    _close(state["m"], [opt.state[p]["exp_avg"] for p in [*tw, *tb]])
    _close(state["v"], [opt.state[p]["exp_avg_sq"] for p in [*tw, *tb]])


@pytest.mark.parametrize("optimizer", [
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adam", dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)),
])
def test_train_epoch_matches_torch_training(optimizer):
    """Two epochs of train_epoch against the same mini-batches trained with torch."""
    weights, biases, activations, X, Y = make_problem(1, "tanh", "softmax", "log_loss", 23, seed=6)
    torch, tw, tb = _torch_params(weights, biases)
    name, hyper = optimizer
    l2 = 0.02
    groups = [{"params": tw, "weight_decay": l2}, {"params": tb, "weight_decay": 0.0}]
    if name == "sgd":
        opt = torch.optim.SGD(groups, **hyper)
    else:
        opt = torch.optim.Adam(groups, lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                               eps=hyper["eps"])
    state = ref.init_state(weights, biases, optimizer)
    rng = np.random.default_rng(7)
    for _ in range(2):
        order = rng.permutation(len(X))
        loss = ref.train_epoch(weights, biases, activations, "log_loss", X, Y, order, 5,
                               optimizer, state, l2=l2)
        total = 0.0
        for start in range(0, len(X), 5):
            rows = order[start:start + 5]
            x, y = torch.tensor(X[rows]), torch.tensor(Y[rows])
            a = torch.softmax(torch.tanh(x @ tw[0].T + tb[0]) @ tw[1].T + tb[1], dim=1)
            C = -(y * torch.log(a)).sum(dim=1).mean()
            opt.zero_grad()
            C.backward()
            opt.step()
            total += C.item() * len(rows)
        assert loss == pytest.approx(total / len(X), rel=1e-12)
    _close([*weights, *biases], [*tw, *tb])


# ---------------------------------------------------------------------------
# train_epoch against the batches done by hand
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer", [
    ("sgd", dict(lr=0.2)),
    ("sgd", dict(lr=0.1, momentum=0.5, nesterov=False)),
    ("adam", dict(lr=0.01, beta1=0.9, beta2=0.99, eps=1e-8)),
])
def test_train_epoch_equals_batches_by_hand(optimizer):
    weights, biases, activations, X, Y = make_problem(2, "relu", "sigmoid", "cross_entropy", 17,
                                                      seed=8)
    hand_w = [W.copy() for W in weights]
    hand_b = [b.copy() for b in biases]
    state = ref.init_state(weights, biases, optimizer)
    hand_state = ref.init_state(hand_w, hand_b, optimizer)
    name, hyper = optimizer
    l2 = 0.05
    order = np.random.default_rng(9).permutation(17)
    batch_size = 6                                   # batches of 6, 6 and 5
    for _ in range(2):                               # state carries across epochs
        loss = ref.train_epoch(weights, biases, activations, "cross_entropy", X, Y, order,
                               batch_size, optimizer, state, l2=l2)
        costs = []
        for rows in (order[:6], order[6:12], order[12:]):
            gw, gb, _, c = ref.backprop(hand_w, hand_b, activations, "cross_entropy",
                                        X[rows], Y[rows])
            costs.append(c * len(rows))
            grads = [g + l2 * W for g, W in zip(gw, hand_w)] + gb
            if name == "sgd":
                ref.sgd_update([*hand_w, *hand_b], grads, hand_state["velocity"], **hyper)
            else:
                hand_state["t"] += 1
                ref.adam_update([*hand_w, *hand_b], grads, hand_state["m"], hand_state["v"],
                                hand_state["t"], **hyper)
        assert loss == pytest.approx(sum(costs) / 17, rel=1e-15)
        for p, q in zip([*weights, *biases], [*hand_w, *hand_b]):
            np.testing.assert_array_equal(p, q)
    if name == "adam":
        assert state["t"] == 6


def test_train_epoch_sgd_step_is_gradient_descent():
    """One full batch, plain SGD: p_new = p - lr * (dC/dp + l2 W)."""
    weights, biases, activations, X, Y = make_problem(1, "sigmoid", "sigmoid", "quadratic", 4)
    gw, gb, _, c = ref.backprop(weights, biases, activations, "quadratic", X, Y)
    expected = [W - 0.5 * (g + 0.1 * W) for W, g in zip(weights, gw)] + \
               [b - 0.5 * g for b, g in zip(biases, gb)]
    opt = ("sgd", dict(lr=0.5))
    loss = ref.train_epoch(weights, biases, activations, "quadratic", X, Y, np.arange(4), 32,
                           opt, ref.init_state(weights, biases, opt), l2=0.1)
    assert loss == c
    for p, e in zip([*weights, *biases], expected):
        np.testing.assert_allclose(p, e, rtol=1e-15)
