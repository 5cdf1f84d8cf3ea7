"""The spec's math in plain NumPy: the oracle for the compiled core, and the NumPy baseline.

Notation (3Blue1Brown, Nielsen), for layer l = 1..L::

    z^l = W^l a^(l-1) + b^l        a^l = sigma(z^l)        a^0 = x
    C0  = sum_j (a^L_j - y_j)^2    (quadratic cost of one example; no 1/2)
    C   = mean of C0 over the examples

Arrays are row-major, one example per ROW, so for a batch the weighted sum reads
``Z = A_prev @ W.T + b``. Python lists are 0-based: ``weights[l-1]`` is W^l with
shape ``(sizes[l], sizes[l-1])``, ``biases[l-1]`` is b^l with shape ``(sizes[l],)``.

Every gradient returned here is a gradient of the MEAN cost C (as PyTorch with mean
reduction), including the gradient with respect to the inputs.

This module imports nothing from fastbp, so it stays independent of the core.
Results keep the dtype of their inputs (float32 in, float32 out).
"""

import numpy as np

__all__ = [
    "ACTIVATIONS", "COSTS", "forward", "cost", "output_delta", "backprop",
    "sgd_update", "adam_update", "init_state", "train_epoch",
]


# ---------------------------------------------------------------------------
# Activations: each rule sigma(z) beside its derivative sigma'(z).
# sigma_prime(z, a=None) may be given a = sigma(z) when it is already known,
# which spares sigmoid and tanh a second exp/tanh; the result is the same.
# ---------------------------------------------------------------------------

def sigmoid(z):
    """1 / (1 + e^-z), elementwise, for any finite z without overflow.

    Two branches sharing one exp of -|z| <= 0: 1/(1+e) for z >= 0, e/(1+e) for z < 0.
    """
    e = np.exp(-np.abs(z))
    s = np.where(z >= 0, 1, e)
    s /= 1 + e
    return s


def sigmoid_prime(z, a=None):
    """sigma'(z) = sigma(z) (1 - sigma(z))."""
    if a is None:
        a = sigmoid(z)
    d = 1 - a
    d *= a
    return d


def relu(z):
    """max(z, 0)."""
    return np.maximum(z, 0)


def relu_prime(z, a=None):
    """1 for z > 0, else 0 (also at z = 0)."""
    return (z > 0).astype(z.dtype)


def tanh(z):
    return np.tanh(z)


def tanh_prime(z, a=None):
    """1 - tanh(z)^2."""
    if a is None:
        a = np.tanh(z)
    d = a * a
    np.subtract(1, d, out=d)
    return d


def identity(z):
    """z itself (a copy, so that a^l never aliases z^l)."""
    return z.copy()


def identity_prime(z, a=None):
    return np.ones_like(z)


LEAKY_SLOPE = 0.01


def leaky_relu(z):
    """z for z > 0, 0.01 z otherwise."""
    return np.where(z > 0, z, LEAKY_SLOPE * z)


def leaky_relu_prime(z, a=None):
    """1 for z > 0, 0.01 otherwise (also at z = 0)."""
    return np.where(z > 0, z.dtype.type(1), z.dtype.type(LEAKY_SLOPE))


def softmax(z):
    """Row-wise e^z_j / sum_k e^z_k of z (n, m), with the row max subtracted first.

    The largest exponent is then e^0 = 1, so nothing overflows for any finite z.
    """
    a = z - z.max(axis=-1, keepdims=True)
    np.exp(a, out=a)
    a /= a.sum(axis=-1, keepdims=True)
    return a


#: name -> (sigma(z), sigma_prime(z, a=None)).
#: "softmax" is row-wise: a_j depends on the whole row z, its Jacobian
#: da/dz is not diagonal, so there is no elementwise sigma'. Its entry has
#: sigma_prime = None; it is allowed as the output layer only, and its
#: backward step is written out in :func:`output_delta`.
ACTIVATIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "relu": (relu, relu_prime),
    "tanh": (tanh, tanh_prime),
    "identity": (identity, identity_prime),
    "leaky_relu": (leaky_relu, leaky_relu_prime),
    "softmax": (softmax, None),
}

#: quadratic: sum_j (a_j - y_j)^2, any output activation;
#: cross_entropy: -sum_j [y_j ln a_j + (1-y_j) ln(1-a_j)], sigmoid output only;
#: log_loss: -sum_j y_j ln a_j, softmax output only.
COSTS = ("quadratic", "cross_entropy", "log_loss")

_REQUIRED_OUTPUT = {"cross_entropy": "sigmoid", "log_loss": "softmax"}


def _check_pair(activation, cost):
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {COSTS}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {tuple(ACTIVATIONS)}")
    required = _REQUIRED_OUTPUT.get(cost)
    if required is not None and activation != required:
        raise ValueError(f"cost {cost!r} requires a {required!r} output, got {activation!r}")


# ---------------------------------------------------------------------------
# Forward pass and cost
# ---------------------------------------------------------------------------

def forward(weights, biases, activations, X):
    """Feed the batch X forward through the network.

    weights[i]: (sizes[i+1], sizes[i]); biases[i]: (sizes[i+1],);
    activations: L names, one per layer (only the last may be "softmax");
    X: (n, sizes[0]), one example per row.

    Returns (zs, as_): zs = [z^1, ..., z^L], zs[l-1] of shape (n, sizes[l]);
    as_ = [a^0 = X, a^1, ..., a^L].
    """
    if not (len(weights) == len(biases) == len(activations)):
        raise ValueError("weights, biases and activations must have one entry per layer")
    if "softmax" in activations[:-1]:
        raise ValueError("'softmax' is an output activation only")
    zs, as_ = [], [X]
    for W, b, name in zip(weights, biases, activations):
        z = as_[-1] @ W.T          # z = W a + b, for every row at once
        z += b
        zs.append(z)
        as_.append(ACTIVATIONS[name][0](z))
    return zs, as_


def _xlogy(x, y):
    """x ln y elementwise, taken as 0 where x == 0 (the limit 0 ln 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0, x * np.log(y))


def cost(A, Y, cost, z=None):
    """C = mean over the n rows of C0; A (n, m) output activations, Y (n, m) targets.

    quadratic:     C0 = sum_j (a_j - y_j)^2
    cross_entropy: C0 = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]    (sigmoid output)
    log_loss:      C0 = -sum_j y_j ln a_j                              (softmax output)

    Targets may be soft (in [0, 1] for cross_entropy and log_loss); terms with a zero
    coefficient (y_j = 0, resp. 1 - y_j = 0) count as 0.

    z (n, m), optional: the output layer's weighted sums, with A = sigma(z). When given,
    cross_entropy and log_loss are computed from z in a numerically stable way, equal to
    the formulas above wherever they are finite, and finite also where A has rounded
    to exactly 0 or 1 (which would give ln 0):
        cross_entropy: C0 = sum_j [softplus(z_j) - y_j z_j],
                       softplus(t) = max(t, 0) + ln(1 + e^-|t|);
        log_loss:      C0 = -sum_j y_j (z_j - logsumexp(z)).
    Without z these costs are the formulas above, evaluated on A. quadratic ignores z.
    Returns a Python float.
    """
    n = A.shape[0]
    if cost == "quadratic":
        d = A - Y
        return float(np.vdot(d, d)) / n       # sum of squares over all entries
    if cost == "cross_entropy":
        if z is not None:
            c0 = np.maximum(z, 0) - Y * z + np.log1p(np.exp(-np.abs(z)))
        else:
            c0 = -(_xlogy(Y, A) + _xlogy(1 - Y, 1 - A))
        return float(c0.sum()) / n
    if cost == "log_loss":
        if z is not None:
            log_a = z - z.max(axis=1, keepdims=True)
            log_a -= np.log(np.exp(log_a).sum(axis=1, keepdims=True))
            with np.errstate(invalid="ignore"):     # 0 ln 0 = 0, also where log_a = -inf
                c0 = -np.where(Y == 0, 0, Y * log_a)
        else:
            c0 = -_xlogy(Y, A)
        return float(c0.sum()) / n
    raise ValueError(f"unknown cost {cost!r}; expected one of {COSTS}")


# The argument named `cost` shadows the function inside backprop and train_epoch.
_cost = cost


# ---------------------------------------------------------------------------
# Backward pass
# ---------------------------------------------------------------------------

def output_delta(z, a, Y, activation, cost):
    """delta^L = dC0/dz^L for each example: (n, m), NOT divided by n.

    quadratic, elementwise sigma:  2 (a - y) * sigma'(z)
    quadratic, softmax:            a * (g - sum_j g_j a_j),  g = dC0/da = 2 (a - y)
                                   (the softmax Jacobian times g)
    cross_entropy, sigmoid:        a - y
    log_loss, softmax:             a * sum_j y_j - y   (right also for soft targets
                                   whose sum is not 1)
    """
    _check_pair(activation, cost)
    if cost == "cross_entropy":
        return a - Y
    if cost == "log_loss":
        return a * Y.sum(axis=1, keepdims=True) - Y
    g = a - Y
    g *= 2                                    # dC0/da = 2 (a - y)
    if activation == "softmax":
        g -= (g * a).sum(axis=1, keepdims=True)
        g *= a
        return g
    g *= ACTIVATIONS[activation][1](z, a)     # times sigma'(z^L)
    return g


def backprop(weights, biases, activations, cost, X, Y, *, inputs=True):
    """Gradients of the MEAN cost C over the batch X (n, sizes[0]), Y (n, sizes[-1]).

    Returns (grad_weights, grad_biases, grad_inputs, cost_value):
    grad_weights[i] has weights[i]'s shape, grad_biases[i] biases[i]'s;
    grad_inputs = dC/da^0 has X's shape and carries the 1/n (row i is dC0_i/da^0 / n);
    cost_value = C as a float (computed from z^L, see :func:`cost`).
    With inputs=False, grad_inputs is None and its matrix product is skipped
    (the training loop does not need it).

    Backward through layer l (weights[l-1] = W^l), with delta^l = dC/dz^l (n, sizes[l]):
        dC/dW^l     = delta^l.T @ a^(l-1)
        dC/db^l     = sum of delta^l over the rows
        dC/da^(l-1) = delta^l @ W^l                  (the delta recurrence)
        delta^(l-1) = dC/da^(l-1) * sigma'(z^(l-1))
    """
    n = X.shape[0]
    zs, as_ = forward(weights, biases, activations, X)
    value = _cost(as_[-1], Y, cost, z=zs[-1])
    delta = output_delta(zs[-1], as_[-1], Y, activations[-1], cost)
    delta /= n                                # delta of the mean C: all gradients carry 1/n
    L = len(weights)
    grad_w, grad_b = [None] * L, [None] * L
    for l in range(L, 0, -1):                 # layer l of the notation, L down to 1
        grad_w[l - 1] = delta.T @ as_[l - 1]
        grad_b[l - 1] = delta.sum(axis=0)
        if l == 1 and not inputs:
            return grad_w, grad_b, None, value
        delta = delta @ weights[l - 1]        # dC/da^(l-1)
        if l > 1:
            sigma_prime = ACTIVATIONS[activations[l - 2]][1]
            delta *= sigma_prime(zs[l - 2], as_[l - 1])   # now delta^(l-1)
    return grad_w, grad_b, delta, value


# ---------------------------------------------------------------------------
# Optimizers: PyTorch's update rules (torch.optim.SGD, torch.optim.Adam), in place
# on lists of arrays, in torch's operation order so that comparisons are tight.
# Weight decay (our l2) is not done here: the caller adds l2 * W to the weight
# gradients first, exactly as torch does with weight_decay on a parameter group.
# ---------------------------------------------------------------------------

def sgd_update(params, grads, velocity, lr, momentum=0.0, nesterov=False):
    """One SGD step, in place: torch.optim.SGD with dampening 0.

    params, grads, velocity: lists of arrays of equal shapes. velocity holds the
    momentum buffers, initialised to zeros (then the first step gives buf = g, as
    torch's buf = clone(g)); it is left untouched when momentum == 0.
        buf = momentum * buf + g
        g   = g + momentum * buf   (nesterov)   or   buf   (otherwise)
        p  -= lr * g
    """
    for p, g, buf in zip(params, grads, velocity):
        if momentum != 0:
            buf *= momentum
            buf += g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g


def adam_update(params, grads, m, v, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step, in place: torch.optim.Adam (amsgrad off).

    m, v: lists of first/second moment arrays (zeros at the start), updated in place;
    t: the step count after this step (1 on the first step).
        m  = m + (1 - beta1) (g - m)          (torch's lerp; = beta1 m + (1 - beta1) g)
        v  = beta2 v + (1 - beta2) g^2
        p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """
    step_size = lr / (1 - beta1 ** t)
    bias_correction2_sqrt = (1 - beta2 ** t) ** 0.5
    for p, g, m_i, v_i in zip(params, grads, m, v):
        m_i += (1 - beta1) * (g - m_i)
        v_i *= beta2
        v_i += (1 - beta2) * g * g
        denom = np.sqrt(v_i)
        denom /= bias_correction2_sqrt
        denom += eps
        p -= step_size * (m_i / denom)


def init_state(weights, biases, optimizer):
    """Fresh optimizer state for :func:`train_epoch`.

    The optimizer's parameters are ``[*weights, *biases]`` in that order, and the state
    lists follow it:
        ("sgd", ...)  -> {"velocity": [zeros like each parameter]}
        ("adam", ...) -> {"m": [zeros ...], "v": [zeros ...], "t": 0}   (t = steps taken)
    """
    name, _ = optimizer
    params = [*weights, *biases]
    if name == "sgd":
        return {"velocity": [np.zeros_like(p) for p in params]}
    if name == "adam":
        return {"m": [np.zeros_like(p) for p in params],
                "v": [np.zeros_like(p) for p in params], "t": 0}
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adam'")


def train_epoch(weights, biases, activations, cost, X, Y, order, batch_size,
                optimizer, state, l2=0.0):
    """One epoch of mini-batch gradient descent, in place: the NumPy training baseline.

    Takes the rows X[order], Y[order] in consecutive batches of batch_size (the last
    may be smaller and uses the mean over its own rows). For each batch: backprop,
    add l2 * W to each weight gradient (biases are not decayed), one optimizer step.

    optimizer: ("sgd", dict(lr=..., momentum=0.0, nesterov=False)) or
               ("adam", dict(lr=..., beta1=0.9, beta2=0.999, eps=1e-8));
    state: from :func:`init_state`, updated in place (it carries across epochs).
    Returns the mean over the epoch's examples of the batch costs computed before each
    update, sum_b cost_b * len_b / N (l2 not included).
    """
    name, hyper = optimizer
    params = [*weights, *biases]
    total = 0.0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        grad_w, grad_b, _, value = backprop(weights, biases, activations, cost,
                                            X[rows], Y[rows], inputs=False)
        if l2:
            for g, W in zip(grad_w, weights):
                g += l2 * W
        grads = [*grad_w, *grad_b]
        if name == "sgd":
            sgd_update(params, grads, state["velocity"], **hyper)
        elif name == "adam":
            state["t"] += 1
            adam_update(params, grads, state["m"], state["v"], state["t"], **hyper)
        else:
            raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adam'")
        total += value * len(rows)
    return total / len(order)
