"""The implementations compared: fastbp and its peers, behind one small interface.

Every peer is a `Model` class built from a workload, a dtype and a seed, starting
from the same initial parameters (those of ``fastbp.Network(..., seed=seed)``)
where the peer lets us set them. Methods (each peer implements what it can):

    epoch(data, seed)          one training epoch over data.X, shuffled by its own RNG
    begin_epoch(data, perm) /  train_chunk(a, b)
                               the mini-batches over positions [a, b) of a shuffled
                               order: used by the time-to-accuracy run
    forward1(x)                output activations of one example (1-D)
    predict(X)                 class indices
    backprop(X, Y, y)          gradients of the mean cost over a batch
    accuracy(X, y)             test accuracy

Peers:
    fastbp      the package itself (`Trainer.fit` runs whole epochs in the core)
    numpy       the NumPy baseline: ``fastbp.reference`` (train_epoch, forward, backprop)
    numpy-loop  single-example inference written as a plain loop of ``W @ a + b``
                and ``reference``'s activation functions (faster than
                ``reference.forward`` for a 1-D input); inference only
    nielsen     a per-example loop in the style of Nielsen's ``network.py``
                (column vectors, one backprop per example); sigmoid + quadratic + SGD
    torch       PyTorch CPU, same architecture, losses and optimizer rules
    sklearn     scikit-learn's MLPClassifier (its own initialization; for sigmoid
                workloads its output is softmax + log-loss, not sigmoid + quadratic)
"""
from __future__ import annotations

import warnings

import numpy as np

import fastbp
from fastbp import reference as R

PEER_ORDER = ("fastbp", "numpy", "numpy-loop", "nielsen", "torch", "sklearn")
NUMPY_FAMILY = ("numpy", "numpy-loop")


def _optional(name):
    try:
        return __import__(name)
    except Exception:
        return None


def availability():
    """{peer: None if usable, else the reason it is skipped}."""
    out = {"fastbp": None, "numpy": None, "numpy-loop": None, "nielsen": None}
    torch = _optional("torch")
    out["torch"] = None if torch is not None else "PyTorch is not installed (pip install torch)"
    try:
        from sklearn.neural_network import MLPClassifier  # noqa: F401
        out["sklearn"] = None
    except Exception:
        out["sklearn"] = "scikit-learn is not installed (pip install scikit-learn)"
    return out


def supports(peer, wl):
    """(True, note) when `peer` has an implementation of workload `wl`, else (False, why)."""
    if peer == "fastbp" or peer == "numpy":
        return True, ""
    if peer == "numpy-loop":
        return (wl.kind == "infer"), "inference only"
    if peer == "nielsen":
        ok = (wl.kind == "epoch" and wl.activation == wl.output == "sigmoid"
              and wl.cost == "quadratic" and wl.optimizer[0] == "sgd" and wl.data == "train")
        return ok, "per-example loop: sigmoid/quadratic/SGD epochs only"
    if peer == "torch":
        return True, ""
    if peer == "sklearn":
        if wl.kind != "epoch" or wl.name == "W4":
            return False, "training epochs of W1-W3 and digits only"
        if wl.output == "sigmoid":
            return True, ("MLPClassifier: logistic hidden layers but softmax output + log-loss "
                          "(it has no sigmoid/quadratic output); its own init")
        return True, "MLPClassifier, alpha=0 (no l2), its own init"
    return False, "unknown peer"


# --------------------------------------------------------------------------- #
# fastbp
# --------------------------------------------------------------------------- #

class FastbpModel:
    peer = "fastbp"

    def __init__(self, wl, dtype, seed, mode="fit"):
        self.wl = wl
        self.net = wl.network(dtype, seed=seed)
        self.mode = mode
        if wl.optimizer is not None:
            # shuffle=True for whole epochs (fit draws its own permutation);
            # for train_chunk the caller supplies the shuffled order.
            self.trainer = fastbp.Trainer(self.net, wl.fastbp_optimizer(), batch_size=wl.batch,
                                          shuffle=True, seed=seed + 1)
            self.chunk_trainer = fastbp.Trainer(self.net, wl.fastbp_optimizer(),
                                                batch_size=wl.batch, shuffle=False, seed=seed + 1)

    def epoch(self, d, seed=None):
        self.trainer.fit(d.X, d.Y, epochs=1, progress=False)

    def begin_epoch(self, d, perm):
        if self.mode == "fit":
            # One gather per epoch, then `fit` on consecutive slices (views) of
            # the shuffled copy, shuffle=False: the core runs each slice's
            # mini-batches in one call.
            self.Xs = d.X[perm]
            self.Ys = d.Y[perm]
        else:
            self.d, self.perm = d, perm

    def train_chunk(self, a, b):
        if self.mode == "fit":
            self.chunk_trainer.fit(self.Xs[a:b], self.Ys[a:b], epochs=1, progress=False)
        else:   # Trainer.step per mini-batch, rows gathered per batch
            bs, step, X, Y, perm = self.wl.batch, self.chunk_trainer.step, self.d.X, self.d.Y, self.perm
            for s in range(a, b, bs):
                rows = perm[s:min(s + bs, b)]
                step(X[rows], Y[rows])

    def forward1(self, x):
        return self.net.forward(x)

    def predict(self, X):
        return self.net.predict(X)

    def backprop(self, X, Y, y):
        return self.net.backprop(X, Y)

    def accuracy(self, X, y):
        return self.net.score(X, y)


# --------------------------------------------------------------------------- #
# NumPy baseline over fastbp.reference
# --------------------------------------------------------------------------- #

class NumpyModel:
    """The NumPy baseline: `fastbp.reference.train_epoch`, `forward`, `backprop`.

    train_epoch gathers each mini-batch's rows with fancy indexing (X[rows]);
    gathering the whole shuffled epoch once and slicing views was tried and is
    slower (a 60,000 x 784 copy per epoch costs more than the per-batch gathers).
    """

    peer = "numpy"

    def __init__(self, wl, dtype, seed):
        self.wl = wl
        net = wl.network(dtype, seed=seed)
        self.W = [w.copy() for w in net.weights]
        self.b = [b.copy() for b in net.biases]
        self.acts = wl.activations
        if wl.optimizer is not None:
            self.state = R.init_state(self.W, self.b, wl.optimizer)
        self.rng = np.random.default_rng(seed + 1)

    def epoch(self, d, seed=None):
        order = self.rng.permutation(d.X.shape[0])
        R.train_epoch(self.W, self.b, self.acts, self.wl.cost, d.X, d.Y, order, self.wl.batch,
                      self.wl.optimizer, self.state)

    def begin_epoch(self, d, perm):
        self.d, self.perm = d, perm

    def train_chunk(self, a, b):
        R.train_epoch(self.W, self.b, self.acts, self.wl.cost, self.d.X, self.d.Y, self.perm[a:b],
                      self.wl.batch, self.wl.optimizer, self.state)

    def forward1(self, x):
        return R.forward(self.W, self.b, self.acts, x)[1][-1]

    def predict(self, X):
        return R.forward(self.W, self.b, self.acts, X)[1][-1].argmax(axis=1)

    def backprop(self, X, Y, y):
        return R.backprop(self.W, self.b, self.acts, self.wl.cost, X, Y)

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X) == y))


class NumpyLoopModel(NumpyModel):
    """Single-example inference as a bare loop over reference's activation
    functions: a = sigma(W @ a + b), without reference.forward's lists of z and a."""

    peer = "numpy-loop"

    def __init__(self, wl, dtype, seed):
        super().__init__(wl, dtype, seed)
        self.layers = [(W, b, R.ACTIVATIONS[name][0]) for W, b, name in zip(self.W, self.b, self.acts)]

    def forward1(self, x):
        a = x
        for W, b, sigma in self.layers:
            z = W @ a
            z += b
            a = sigma(z)
        return a


# --------------------------------------------------------------------------- #
# Nielsen-style per-example loop
# --------------------------------------------------------------------------- #

class NielsenModel:
    """Mini-batch SGD the way Nielsen's ``network.py`` writes it: column vectors,
    one backprop per example, gradients summed over the mini-batch in Python
    lists. Sigmoid layers and the quadratic cost (C0 = sum (a - y)^2, so the
    output error is 2 (a - y) sigma'(z), where Nielsen's 1/2-cost has a - y)."""

    peer = "nielsen"

    def __init__(self, wl, dtype, seed):
        net = wl.network(dtype, seed=seed)
        self.weights = [w.copy() for w in net.weights]
        self.biases = [b.reshape(-1, 1).copy() for b in net.biases]
        self.eta = wl.optimizer[1]["lr"]
        self.batch = wl.batch
        self.rng = np.random.default_rng(seed + 1)

    @staticmethod
    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def sigmoid_prime(self, z):
        s = self.sigmoid(z)
        return s * (1 - s)

    def epoch(self, d, seed=None):
        X, Y = d.X, d.Y
        order = self.rng.permutation(X.shape[0])
        with np.errstate(over="ignore"):
            for k in range(0, len(order), self.batch):
                self.update_mini_batch([(X[i].reshape(-1, 1), Y[i].reshape(-1, 1))
                                        for i in order[k:k + self.batch]])

    def update_mini_batch(self, mini_batch):
        nabla_b = [np.zeros(b.shape, b.dtype) for b in self.biases]
        nabla_w = [np.zeros(w.shape, w.dtype) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        self.weights = [w - (self.eta / len(mini_batch)) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (self.eta / len(mini_batch)) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, x, y):
        nabla_b = [None] * len(self.biases)
        nabla_w = [None] * len(self.weights)
        activation = x
        activations = [x]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = self.sigmoid(z)
            activations.append(activation)
        delta = 2 * (activations[-1] - y) * self.sigmoid_prime(zs[-1])
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for l in range(2, len(self.weights) + 1):
            z = zs[-l]
            sp = self.sigmoid_prime(z)
            delta = np.dot(self.weights[-l + 1].transpose(), delta) * sp
            nabla_b[-l] = delta
            nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
        return nabla_b, nabla_w


# --------------------------------------------------------------------------- #
# PyTorch
# --------------------------------------------------------------------------- #

class TorchModel:
    """The same network in PyTorch: nn.Linear layers initialised with fastbp's
    parameters; quadratic cost as ((a - y)^2).sum(1).mean(); softmax + log_loss
    as F.cross_entropy on the logits with class labels (the idiomatic, fused
    form); torch.optim.SGD / Adam with default settings. An epoch draws
    torch.randperm and gathers each mini-batch with X[idx]."""

    peer = "torch"

    def __init__(self, wl, dtype, seed):
        import torch
        from torch import nn
        self.torch = torch
        self.wl = wl
        net = wl.network(dtype, seed=seed)
        self.tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
        layers = []
        act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh,
               "identity": nn.Identity, "leaky_relu": lambda: nn.LeakyReLU(0.01)}
        for l, (W, b) in enumerate(zip(net.weights, net.biases)):
            lin = nn.Linear(W.shape[1], W.shape[0])
            with torch.no_grad():
                lin.weight = nn.Parameter(torch.from_numpy(W.copy()))
                lin.bias = nn.Parameter(torch.from_numpy(b.copy()))
            layers.append(lin)
            name = wl.activations[l]
            if name == "softmax":
                if wl.cost != "log_loss":
                    raise NotImplementedError("softmax output is benchmarked with log_loss only")
            else:
                layers.append(act[name]())
        self.model = nn.Sequential(*layers).to(self.tdtype)
        self.params = list(self.model.parameters())
        if wl.cost == "quadratic":
            self.loss = lambda out, Y, y: ((out - Y) ** 2).sum(dim=1).mean()
        elif wl.cost == "log_loss":
            F = torch.nn.functional
            self.loss = lambda out, Y, y: F.cross_entropy(out, y)
        else:
            raise NotImplementedError(wl.cost)
        if wl.optimizer is not None:
            name, hyper = wl.optimizer
            if name == "sgd":
                self.opt = torch.optim.SGD(self.params, lr=hyper["lr"])
            else:
                self.opt = torch.optim.Adam(self.params, lr=hyper["lr"])
        self.gen = torch.Generator().manual_seed(seed + 1)
        self._tensors = {}

    def _t(self, a):
        """A torch view of a NumPy array (cached, so conversion is not timed twice)."""
        key = (id(a), a.shape)
        t = self._tensors.get(key)
        if t is None:
            t = self._tensors[key] = self.torch.from_numpy(a)
        return t

    def _step(self, xb, Yb, yb):
        out = self.model(xb)
        loss = self.loss(out, Yb, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def epoch(self, d, seed=None):
        X, Y, y = self._t(d.X), self._t(d.Y), self._t(d.y)
        n, bs = X.shape[0], self.wl.batch
        perm = self.torch.randperm(n, generator=self.gen)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            self._step(X[idx], Y[idx], y[idx])

    def begin_epoch(self, d, perm):
        self.X, self.Y, self.y = self._t(d.X), self._t(d.Y), self._t(d.y)
        self.perm = self.torch.from_numpy(perm)

    def train_chunk(self, a, b):
        bs = self.wl.batch
        for s in range(a, b, bs):
            idx = self.perm[s:min(s + bs, b)]
            self._step(self.X[idx], self.Y[idx], self.y[idx])

    def forward1(self, x):
        with self.torch.inference_mode():
            out = self.model(self._t(x))
            if self.wl.output == "softmax":
                out = self.torch.softmax(out, dim=-1)
            return out

    def predict(self, X):
        with self.torch.inference_mode():
            return self.model(self._t(X)).argmax(dim=1)

    def backprop(self, X, Y, y):
        xt = self._t(X).detach().requires_grad_(True)     # input gradients too, as fastbp's .inputs
        loss = self.loss(self.model(xt), self._t(Y), self._t(y))
        return self.torch.autograd.grad(loss, self.params + [xt])

    def accuracy(self, X, y):
        return float(np.mean(self.predict(X).numpy() == y))


# --------------------------------------------------------------------------- #
# scikit-learn
# --------------------------------------------------------------------------- #

class SklearnModel:
    """MLPClassifier with the workload's hidden layers, activation, optimizer,
    learning rate and batch size; alpha=0 (no l2), SGD without momentum.
    One epoch is one partial_fit call (which shuffles)."""

    peer = "sklearn"

    def __init__(self, wl, dtype, seed):
        from sklearn.neural_network import MLPClassifier
        self.wl = wl
        act = {"sigmoid": "logistic", "relu": "relu", "tanh": "tanh", "identity": "identity"}
        name, hyper = wl.optimizer
        kw = dict(hidden_layer_sizes=tuple(wl.sizes[1:-1]), activation=act[wl.activation],
                  solver=name, alpha=0.0, batch_size=wl.batch, learning_rate_init=hyper["lr"],
                  shuffle=True, random_state=seed + 1, max_iter=1)
        if name == "sgd":
            kw.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
        self.clf = MLPClassifier(**kw)
        self.classes = np.arange(wl.sizes[-1])

    def epoch(self, d, seed=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.partial_fit(d.X, d.y, classes=self.classes)

    def accuracy(self, X, y):
        return float(np.mean(self.clf.predict(X) == y))


MODELS = {"fastbp": FastbpModel, "numpy": NumpyModel, "numpy-loop": NumpyLoopModel,
          "nielsen": NielsenModel, "torch": TorchModel, "sklearn": SklearnModel}


def model(peer, wl, dtype, seed):
    return MODELS[peer](wl, dtype, seed)
