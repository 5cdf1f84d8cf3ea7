"""Looking inside backpropagation: the tiny-nudge check and the chain rule of one weight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastbp import _checks, reference


def _eps(network, eps):
    if eps is None:
        return 1e-6 if network.dtype == np.float64 else 1e-3
    return _checks.real(eps, "eps", minimum=0.0, min_open=True)


def gradcheck_arrays(network, X, Y, eps=None):
    """Per parameter array, ``||g - g_fd|| / max(||g|| + ||g_fd||, tiny)``.

    Returns a dict ``{"weights[0]": err, "biases[0]": err, ...}``; see `gradcheck`.
    """
    eps = _eps(network, eps)
    X, Y, _ = network._data(X, Y)
    grads = network.backprop(X, Y)
    kernel = network._kernel
    errors = {}
    tiny = np.finfo(np.float64).tiny
    for kind, params, analytic in (("weights", network.weights, grads.weights),
                                   ("biases", network.biases, grads.biases)):
        for l, (P, G) in enumerate(zip(params, analytic)):
            flat = P.reshape(-1)          # a view: P is C-contiguous
            fd = np.empty(P.size)
            for i in range(P.size):
                old = flat[i]
                try:
                    flat[i] = old + eps
                    up = flat[i]          # the step actually taken after rounding
                    c_plus = kernel.cost_value(network.weights, network.biases, X, Y)
                    flat[i] = old - eps
                    down = flat[i]
                    c_minus = kernel.cost_value(network.weights, network.biases, X, Y)
                finally:
                    flat[i] = old         # bit-identical restore
                fd[i] = (c_plus - c_minus) / (float(up) - float(down))
            g = np.asarray(G, dtype=np.float64).reshape(-1)
            errors[f"{kind}[{l}]"] = float(np.linalg.norm(g - fd)
                                           / max(np.linalg.norm(g) + np.linalg.norm(fd), tiny))
    return errors


def gradcheck(network, X, Y, eps=None):
    """The largest relative difference between `Network.backprop` and central
    finite differences (the "tiny nudge" of each parameter).

    For each parameter array, ``||g - g_fd|| / max(||g|| + ||g_fd||, tiny)``
    with Euclidean norms; the result is the largest over the arrays. `eps`
    defaults to 1e-6 for float64 and 1e-3 for float32 networks and must be > 0.
    The parameters are left bit-identical. Not to be run while another thread
    uses the same network: it nudges the parameters in place.
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


def explain(network, X, Y, layer, j, k):
    """The three chain-rule factors of dC/dw^layer_jk for each example.

    `layer` is numbered 1..L as in the notation (``weights[layer-1][j, k]``);
    j indexes neurons of that layer, k neurons of the layer before.
    """
    L = network.n_layers
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
    if act == "softmax":
        da_dz = None
    else:
        da_dz = reference.ACTIVATIONS[act][1](z, a)
        if layer == L:
            dc_da = _output_dc_da(a, Y[:, j], network.cost_name)
    dz_dw = t.a[layer - 1][:, k]
    dc_dz = delta[:, j]
    return ChainRule(layer=layer, j=j, k=k, dz_dw=dz_dw, da_dz=da_dz, dc_da=dc_da,
                     dc_dz=dc_dz, dc_dw=float(np.mean(dz_dw * dc_dz)))


def _output_dc_da(a, y, cost):
    """dC0/da^L_j for an elementwise output layer."""
    if cost == "quadratic":
        return 2 * (a - y)
    # cross_entropy: d/da of -[y ln a + (1-y) ln(1-a)]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - y) / (a * (1 - a))
