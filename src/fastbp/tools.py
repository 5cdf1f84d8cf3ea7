"""Looking inside backpropagation: the tiny-nudge check and the chain rule of one weight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from fastbp import _checks, reference
from fastbp.network import Network


def _network(network, function):
    if not isinstance(network, Network):
        raise TypeError(f"{function} needs a fastbp.Network; got {type(network).__name__}")
    return network


def gradcheck_eps(network: Network, eps: float | None = None) -> float:
    """The nudge `gradcheck` takes: `eps`, or its default for the network's dtype.

    ValueError unless eps > 0 and ``p + eps != p - eps`` in the network's dtype
    for every parameter p (a smaller eps leaves the cost unchanged and the
    central difference would divide by zero). Changes nothing.
    """
    _network(network, "gradcheck")
    if eps is None:
        return 1e-6 if network.dtype == np.float64 else 1e-3
    eps = _checks.real(eps, "eps", minimum=0.0, min_open=True)
    # The same arithmetic as the nudges themselves: eps rounded to the parameters' dtype.
    with np.errstate(over="ignore"):
        for kind, params in (("weights", network.weights), ("biases", network.biases)):
            for l, P in enumerate(params):
                stuck = np.flatnonzero((P + eps) == (P - eps))
                if stuck.size:
                    where = np.unravel_index(stuck[0], P.shape)
                    index = ", ".join(str(int(i)) for i in where)
                    raise ValueError(f"eps={eps:g} is too small to change {kind}[{l}][{index}] "
                                     f"(= {P[where]:g}) in {network.dtype}; use a larger eps")
    return eps


def gradcheck_arrays(network: Network, X: ArrayLike, Y: ArrayLike,
                     eps: float | None = None) -> dict[str, float]:
    """Per parameter array, ``||g - g_fd|| / max(||g|| + ||g_fd||, tiny)``.

    Returns a dict ``{"weights[0]": err, "biases[0]": err, ...}``; see `gradcheck`.
    """
    eps = gradcheck_eps(network, eps)
    X, Y, _ = network._data(X, Y)
    kernel = network._kernel
    # Backprop and the nudges both work on private copies, taken first: the
    # caller's parameters are only read, once, so other threads may use the
    # network meanwhile (and gradchecks run concurrently).
    # The originals' layout first: a C-ordered copy of a Fortran array would pass.
    kernel.check_parameters(network.weights, network.biases, False)
    weights = [W.copy() for W in network.weights]
    biases = [b.copy() for b in network.biases]
    grad_weights, grad_biases, _, _ = kernel.backprop(weights, biases, X, Y)
    errors = {}
    tiny = np.finfo(np.float64).tiny
    for kind, params, analytic in (("weights", weights, grad_weights),
                                   ("biases", biases, grad_biases)):
        for l, (P, G) in enumerate(zip(params, analytic)):
            flat = P.reshape(-1)          # a view: P is C-contiguous
            fd = np.empty(P.size)
            for i in range(P.size):
                old = flat[i]
                try:
                    flat[i] = old + eps
                    up = flat[i]          # the step actually taken after rounding
                    c_plus = kernel.cost_value(weights, biases, X, Y)
                    flat[i] = old - eps
                    down = flat[i]
                    c_minus = kernel.cost_value(weights, biases, X, Y)
                finally:
                    flat[i] = old         # bit-identical restore for the next nudges
                fd[i] = (c_plus - c_minus) / (float(up) - float(down))
            g = np.asarray(G, dtype=np.float64).reshape(-1)
            errors[f"{kind}[{l}]"] = float(np.linalg.norm(g - fd)
                                           / max(np.linalg.norm(g) + np.linalg.norm(fd), tiny))
    return errors


def gradcheck(network: Network, X: ArrayLike, Y: ArrayLike, eps: float | None = None) -> float:
    """The largest relative difference between `Network.backprop` and central
    finite differences (the "tiny nudge" of each parameter).

    For each parameter array, ``||g - g_fd|| / max(||g|| + ||g_fd||, tiny)``
    with Euclidean norms; the result is the largest over the arrays. `eps`
    defaults to 1e-6 for float64 and 1e-3 for float32 networks and must be > 0
    and large enough to change every parameter (see `gradcheck_eps`).
    The network is left bit-identical: the nudges are made to a private copy
    of its parameters, so other threads may use the network meanwhile (a
    concurrent ``fit`` makes the result describe whichever parameters the
    copy caught).
    """
    return max(gradcheck_arrays(network, X, Y, eps).values())


@dataclass
class ChainRule:
    """The chain-rule factors of dC/dw^l_jk, one value per example.

    ``dz_dw`` = a^(l-1)_k, ``da_dz`` = sigma'(z^l_j), ``dc_da`` = dC0/da^l_j,
    ``dc_dz`` = dC0/dz^l_j (the delta, ``da_dz * dc_da``), all of shape (n,);
    ``dc_dw`` = mean of ``dz_dw * dc_dz`` = ``backprop(...).weights[l-1][j, k]``.
    For a softmax output layer ``da_dz`` and ``dc_da`` are None (its Jacobian
    is not diagonal) and ``dc_dz`` is still given.
    """

    layer: int
    j: int
    k: int
    dz_dw: np.ndarray
    da_dz: np.ndarray | None
    dc_da: np.ndarray | None
    dc_dz: np.ndarray
    dc_dw: float


def explain(network: Network, X: ArrayLike, Y: ArrayLike, layer: int, j: int, k: int) -> ChainRule:
    """The three chain-rule factors of dC/dw^layer_jk for each example.

    `layer` is numbered 1..L as in the notation (``weights[layer-1][j, k]``);
    j indexes neurons of that layer, k neurons of the layer before.
    """
    L = _network(network, "explain").n_layers
    sizes = network.sizes
    layer = _checks.integer(layer, "layer")
    if not 1 <= layer <= L:
        raise ValueError(f"layer must be in 1..{L}; got {layer}")
    j = _checks.integer(j, "j")
    if not 0 <= j < sizes[layer]:
        raise ValueError(f"j must be in [0, {sizes[layer]}) for layer {layer}; got {j}")
    k = _checks.integer(k, "k")
    if not 0 <= k < sizes[layer - 1]:
        raise ValueError(f"k must be in [0, {sizes[layer - 1]}) for layer {layer}; got {k}")
    X, Y, _ = network._data(X, Y)
    t = network.trace(X)
    acts = network.activations
    # Per-example deltas dC0/dz^l (no 1/n), carried back from the output to `layer`.
    delta = reference.output_delta(t.z[L - 1], t.a[L], Y, acts[L - 1], network.cost_name)
    dc_da = None
    for l in range(L - 1, layer - 1, -1):        # 0-based index of the layer above
        dc_da_all = delta @ network.weights[l]   # dC0/da^l  (n, sizes[l])
        sigma_prime = reference.ACTIVATIONS[acts[l - 1]][1]
        delta = dc_da_all * sigma_prime(t.z[l - 1], t.a[l])
    if layer < L:                                # j indexes this layer only
        dc_da = dc_da_all[:, j]
    z, a = t.z[layer - 1][:, j], t.a[layer][:, j]
    act = acts[layer - 1]
    dc_dz = delta[:, j]
    if act == "softmax":
        da_dz = None
    elif layer == L and network.cost_name == "cross_entropy":   # a sigmoid output
        da_dz, dc_da, dc_dz = _sigmoid_cross_entropy(z, Y[:, j])
    else:
        # The same sigma'(z) as the delta recurrence above (and the core) uses.
        da_dz = reference.ACTIVATIONS[act][1](z, a)
        if layer == L:                           # quadratic: d/da of (a - y)^2
            dc_da = 2 * (a - Y[:, j])
    dz_dw = t.a[layer - 1][:, k]
    return ChainRule(layer=layer, j=j, k=k, dz_dw=dz_dw, da_dz=da_dz, dc_da=dc_da,
                     dc_dz=dc_dz, dc_dw=float(np.mean(dz_dw * dc_dz)))


def _sigmoid_cross_entropy(z, y):
    """(da_dz, dc_da, dc_dz) of a sigmoid output unit under the cross_entropy cost.

    Computed from z, not from a = sigma(z): once a rounds to 1 (z > ~37 in
    float64, ~17 in float32), 1 - a and a - y lose every digit and
    dc_da = (a - y) / (a (1 - a)) becomes 0/0. sigma(z) and sigma(-z) are both
    accurate, so are sigma'(z) = sigma(z) sigma(-z) and a - y, which is
    ``(1 - y) - sigma(-z)`` where z >= 0. dc_da is non-finite only where
    sigma'(z) is so small that its reciprocal overflows or it underflows to 0
    (|z| > ~709 in float64, ~88 in float32); there it is taken from
    -y/a + (1-y)/(1-a) with a zero coefficient's term as 0, so it is still
    finite (e.g. -1 for y = 1, a = 1) unless its true value overflows (y < 1
    with a = 1), and then dc_dz = da_dz * dc_da no longer holds. dc_dz is this
    accurate a - y, so that dc_dz = da_dz * dc_da; it differs from the core's
    delta, computed from the rounded a, by at most a rounding of a.
    """
    s, s_minus = reference.sigmoid(z), reference.sigmoid(-z)
    da_dz = s * s_minus
    a_minus_y = np.where(z >= 0, (1 - y) - s_minus, s - y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        dc_da = a_minus_y / da_dz
        lost = ~np.isfinite(dc_da)
        if lost.any():
            terms = (np.where(y == 0, 0, -y / s) + np.where(y == 1, 0, (1 - y) / s_minus))
            dc_da = np.where(lost, terms, dc_da)
    return da_dz, dc_da, a_minus_y
