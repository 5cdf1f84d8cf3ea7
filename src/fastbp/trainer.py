"""`Trainer`: mini-batch gradient descent with whole epochs inside the compiled core.

One call into the core runs every mini-batch of an epoch with the GIL
released: gather the (shuffled) rows, forward, delta recurrence, gradient
accumulation and the optimizer update, in buffers allocated once per `fit`.
Python runs between epochs only (validation, callbacks, early stopping), or
every few hundred steps when a progress bar is shown.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional, Union

import numpy as np
from numpy.typing import ArrayLike

from fastbp import _checks, _core
from fastbp.network import Network, Seed, _parameter_array
from fastbp.optimizers import SGD, Adam, optimizer_from

_OK, _BAD_COST, _BAD_UPDATE, _BAD_X = 0, 1, 2, 3

# fit checks X for NaN and infinity batch by batch, as the core gathers the
# rows (no pass over X of its own), when a copy of the parameters and optimizer
# state, kept to undo an epoch that finds a bad row, takes at most this share
# of X's bytes; otherwise it checks all of X before training.
_ROLLBACK_SHARE = 1 / 32


@dataclass
class History:
    """Per-epoch records of a `fit`: plain lists of floats, easy to plot.

    ``loss[e]``: mean over the epoch's examples of the per-batch costs computed
    during epoch e (before each update; l2 not included). ``val_loss[e]``,
    ``val_accuracy[e]``: measured after epoch e (empty without validation
    data). ``epoch_time[e]``: seconds of training in epoch e (validation excluded).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)

    def __len__(self):
        return len(self.loss)

    def _record(self, loss, seconds, val_loss=None, val_accuracy=None):
        """Append one epoch to every list, or (if interrupted) to none of them."""
        n = len(self.loss)
        try:
            self.loss.append(loss)
            self.epoch_time.append(seconds)
            if val_loss is not None:
                self.val_loss.append(val_loss)
                self.val_accuracy.append(val_accuracy)
        except BaseException:
            for values in (self.loss, self.epoch_time, self.val_loss, self.val_accuracy):
                del values[n:]
            raise


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when `val_loss` has not improved on its best by more than
    `min_delta` for `patience` epochs (as Keras does); at the end of training
    the parameters of the best epoch are restored."""

    patience: int
    min_delta: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "patience", _checks.integer(self.patience, "patience", minimum=1))
        object.__setattr__(self, "min_delta", _checks.real(self.min_delta, "min_delta", minimum=0.0))


# f(epoch, history); returning False stops training
Callback = Callable[[int, History], object]


class Trainer:
    """Trains a `Network` by mini-batch gradient descent.

    Parameters
    ----------
    network : Network
    optimizer : "sgd", "adam", SGD or Adam
        PyTorch's update rules; the strings give the defaults
        (``SGD(lr=0.1)``, ``Adam(lr=1e-3)``).
    batch_size : int
        Examples per mini-batch (>= 1); the last batch of an epoch may be smaller.
    l2 : float
        Weight decay: ``l2 * W`` is added to each weight gradient (biases are not decayed).
    shuffle : bool
        Shuffle the examples at the start of each epoch, with a permutation
        drawn from this trainer's generator.
    seed : int, numpy.random.Generator or None
        With the network's seed, makes training bit-for-bit reproducible.

    Optimizer state (momentum buffers, Adam's moments and step count) lives
    in the trainer and carries across `step` and `fit` calls. The settings
    are attributes, checked again whenever one is set; setting `optimizer` to
    one with a different kind of state starts that state afresh.
    """

    def __init__(self, network: Network, optimizer: str | SGD | Adam = "sgd", batch_size: int = 32,
                 l2: float = 0.0, shuffle: bool = True, seed: Seed = None) -> None:
        if not isinstance(network, Network):
            raise TypeError(f"network must be a fastbp.Network; got {type(network).__name__}")
        self.network = network
        self.steps = 0          # optimizer steps taken (Adam's t)
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.l2 = l2
        self.shuffle = shuffle
        self._rng = _checks.rng(seed)
        self.history = History()

    # The settings are checked whenever they are set, not only in __init__.

    @property
    def optimizer(self) -> SGD | Adam:
        """SGD or Adam. Setting one with a different kind of state (Adam, SGD
        with momentum, plain SGD) starts that state afresh (and `steps` at 0);
        otherwise the state carries over, as when a PyTorch param group's lr
        is changed."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, value: str | SGD | Adam) -> None:
        opt = optimizer_from(value)
        old = getattr(self, "_optimizer", None)
        self._optimizer = opt
        if old is None or _state_kind(old) != _state_kind(opt):
            self._state1, self._state2 = self._new_state()
            self.steps = 0

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = _checks.integer(value, "batch_size", minimum=1)

    @property
    def l2(self) -> float:
        return self._l2

    @l2.setter
    def l2(self, value: float) -> None:
        self._l2 = _checks.real(value, "l2", minimum=0.0)

    @property
    def shuffle(self) -> bool:
        return self._shuffle

    @shuffle.setter
    def shuffle(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool; got {type(value).__name__}")
        self._shuffle = bool(value)

    def _new_state(self):
        net = self.network
        def zeros():
            # (cache-line aligned like the parameters: the two training threads
            # update their own columns of W^1's state too)
            return ([_parameter_array(np.zeros(W.shape), W.dtype) for W in net.weights]
                    + [np.zeros_like(b) for b in net.biases])
        kind = _state_kind(self.optimizer)
        if kind == "adam":
            return zeros(), zeros()
        if kind == "momentum":
            return zeros(), []
        return [], []

    def __repr__(self):
        return (f"Trainer({self.network!r}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
                f"l2={self.l2}, shuffle={self.shuffle})")

    # -- one step -------------------------------------------------------------

    def step(self, X: ArrayLike, Y: ArrayLike) -> float:
        """One gradient step on the mini-batch (X, Y); returns its cost, computed
        before the update. Raises FloatingPointError, changing nothing, if the
        cost or the update is not finite."""
        X, Y, _ = self.network._data(X, Y)
        _check_finite(X, "X")
        _check_parameters(self.network)
        with self._training():
            ws = _core.Workspace(self.network._kernel, X.shape[0])
            status = self._run(X, Y, None, 0, X.shape[0], X.shape[0], ws)
            if status == _BAD_X:
                raise ValueError(_checks.nan_message("X (changed during the step)", X)
                                 + "; the network is unchanged")
            if status != _OK:
                raise FloatingPointError(self._divergence(status, "this step"))
            return ws.loss_sum / X.shape[0]

    # -- whole epochs -----------------------------------------------------------

    def fit(self, X: ArrayLike, Y: ArrayLike, epochs: int = 1,
            validation_data: Optional[tuple[ArrayLike, ArrayLike]] = None,
            callbacks: Union[Callback, Iterable[Callback]] = (), progress: Optional[bool] = None,
            early_stopping: Union[int, EarlyStopping, None] = None) -> History:
        """Train for `epochs` passes over (X, Y); returns the `History`
        (also kept as ``trainer.history``).

        validation_data : (X_val, Y_val), measured after every epoch.
        callbacks : callables ``f(epoch, history)`` run after each epoch (epoch
            counted from 0, history already holding it); training stops after
            the epoch if any returns False (or ``numpy.False_``). None means
            no callbacks.
        progress : None (a bar on an interactive terminal only), True or False.
            The bar uses tqdm when installed (``pip install fastbp[progress]``).
        early_stopping : int patience or EarlyStopping; watches val_loss and
            restores the best epoch's parameters at the end of training.

        On a non-finite cost or update, raises FloatingPointError naming the
        epoch and step; the network keeps the parameters from before that step.
        On Ctrl-C the network is left at a completed step and the history holds
        the finished epochs.

        NaN or infinity in X is a ValueError naming the first bad row, and
        changes nothing (an X a callback spoils between epochs undoes only the
        epoch that finds it). When the parameters and optimizer state are small
        next to X (a copy of them at most 1/32 of X's bytes, as for the
        784-16-16-10 network on 60,000 examples), the core checks each
        batch's rows as it gathers them, so no pass over X is spent on it; a
        bad row undoes the epoch it was found in (parameters, optimizer
        state, step count, generator, and for the first epoch the previous
        history come back) before the error is raised, as does a divergence
        or Ctrl-C in an epoch that stopped before reaching one. Otherwise all
        of X is checked before training starts.
        """
        net = self.network
        X, Y, _ = net._data(X, Y)
        epochs = _checks.integer(epochs, "epochs", minimum=0)
        # (epochs=0 trains nothing, so only an up-front check would see bad X)
        rollback = epochs > 0 and self._state_bytes() <= _ROLLBACK_SHARE * X.nbytes
        if not rollback:
            _check_finite(X, "X")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a tuple (X_val, Y_val)")
            Xv, Yv, _ = net._data(*validation_data, what="the validation X",
                                  what_y="the validation Y")
            _check_finite(Xv, "the validation X")
            labels = Yv.argmax(axis=1) if Yv.shape[1] > 1 else (Yv[:, 0] > 0.5).astype(np.int64)
            val = (Xv, Yv, labels)
        if callbacks is None:
            callbacks = ()
        elif callable(callbacks):
            callbacks = (callbacks,)
        try:
            callbacks = tuple(callbacks)
        except TypeError:
            raise TypeError(f"callbacks must be a callable f(epoch, history) or an iterable of "
                            f"them; got {type(callbacks).__name__}") from None
        for f in callbacks:
            if not callable(f):
                raise TypeError(f"callbacks must be callables f(epoch, history); got {f!r}")
        if early_stopping is not None:
            if not isinstance(early_stopping, EarlyStopping):
                early_stopping = EarlyStopping(early_stopping)
            if val is None:
                raise ValueError("early_stopping needs validation_data to watch val_loss")
        if progress is None:
            progress = sys.stderr.isatty()
        elif not isinstance(progress, (bool, np.bool_)):
            raise TypeError(f"progress must be None, True or False; got {type(progress).__name__}")
        _check_parameters(net)

        n = X.shape[0]
        best = None                     # (val_loss, weights, biases) of the best epoch
        wait = 0
        with self._training():
            ws = _core.Workspace(net._kernel, min(self.batch_size, n))
            previous, self.history = self.history, History()   # only once this fit holds the network
            history = self.history
            for epoch in range(epochs):
                if min(self.batch_size, n) > ws.batch:    # raised by a callback
                    ws = _core.Workspace(net._kernel, min(self.batch_size, n))
                point = None                # (the last epoch's copy is freed first)
                point = self._save_point() if rollback else None
                order = self._rng.permutation(n).astype(np.int64) if self.shuffle else None
                start = time.perf_counter()
                try:
                    loss_sum = self._epoch(X, Y, order, ws, epoch, progress)
                except (_BadRows, FloatingPointError, KeyboardInterrupt) as exc:
                    # With rollback, X is checked only as far as training got:
                    # a divergence or Ctrl-C before a bad row still reports it.
                    if not isinstance(exc, _BadRows) and not (rollback and not _core.finite(X)):
                        raise
                    if epoch == 0 and rollback:
                        what = "X"
                    elif callbacks and rollback:
                        what = "X (as the callbacks left it)"
                    else:               # checked already: another thread changed it
                        what = "X (changed during training)"
                    message = _checks.nan_message(what, X)
                    if rollback:
                        self._roll_back(point)
                        if epoch == 0:
                            self.history = previous
                    else:
                        message += "; the network keeps the parameters from before that batch"
                    raise ValueError(message) from None
                seconds = time.perf_counter() - start
                val_loss = val_accuracy = None
                if val is not None:
                    val_loss = float(net._kernel.cost_value(net.weights, net.biases, val[0], val[1]))
                    val_accuracy = float(np.mean(net.predict(val[0]) == val[2]))
                history._record(loss_sum / n, seconds, val_loss, val_accuracy)
                stop = False
                for f in callbacks:
                    if _says_stop(f(epoch, history)):
                        stop = True
                if callbacks and not stop and epoch + 1 < epochs and not rollback:
                    # A callback may have edited X in place (with rollback, the
                    # next epoch's own check undoes that epoch instead).
                    _check_finite(X, "X (as the callbacks left it)")
                if early_stopping is not None:
                    v = history.val_loss[-1]
                    if best is None or v < best[0] - early_stopping.min_delta:
                        best = (v, [W.copy() for W in net.weights], [b.copy() for b in net.biases])
                        wait = 0
                    else:
                        wait += 1
                        if wait >= early_stopping.patience:
                            stop = True
                if stop:
                    break
            if best is not None:
                for P, B in zip(net.weights + net.biases, best[1] + best[2]):
                    P[...] = B
        return history

    def _epoch(self, X, Y, order, ws, epoch, progress):
        """One epoch, in one call into the core (or a few, to move a progress bar)."""
        n = X.shape[0]
        bs = min(self.batch_size, n)     # the workspace holds min(batch_size, n) rows
        n_batches = -(-n // bs)
        if not progress:
            chunks = [(0, n)]
        else:
            per = max(1, n_batches // 50) * bs
            chunks = [(s, min(s + per, n)) for s in range(0, n, per)]
        bar = _ProgressBar(n, epoch) if progress else None
        loss_sum = 0.0
        steps_before = self.steps
        try:
            for first, last in chunks:
                status = self._run(X, Y, order, first, last, bs, ws)
                loss_sum += ws.loss_sum
                if status == _BAD_X:
                    raise _BadRows()
                if status != _OK:
                    step = self.steps - steps_before
                    raise FloatingPointError(self._divergence(status, f"epoch {epoch}, step {step}"))
                if bar is not None:
                    bar.update(last - first, loss_sum / last)
        finally:
            if bar is not None:
                bar.close()
        return loss_sum

    def _run(self, X, Y, order, first, last, batch, ws):
        opt = self.optimizer
        is_adam = isinstance(opt, Adam)
        net = self.network
        try:
            status = net._kernel.train(
                net.weights, net.biases, X, Y, order, first, last, batch,
                _core.Optimizer.ADAM if is_adam else _core.Optimizer.SGD, opt.lr,
                0.0 if is_adam else opt.momentum, False if is_adam else opt.nesterov,
                opt.beta1 if is_adam else 0.0, opt.beta2 if is_adam else 0.0,
                opt.eps if is_adam else 0.0, self.l2, self._state1, self._state2,
                self.steps, ws, self._x_bound)
        finally:
            self.steps += ws.steps_done
        return status

    # A bound on |X| the core's overflow proofs use if it is larger than each
    # batch's own (the tests set inf to send every step down the checked path).
    _x_bound = 0.0

    def _state_bytes(self):
        """Bytes of the parameters and optimizer state (what _save_point copies)."""
        return sum(a.nbytes for a in self._trained_arrays())

    def _trained_arrays(self):
        net = self.network
        return net.weights + net.biases + self._state1 + self._state2

    def _save_point(self):
        """Copies of everything an epoch changes, for `_roll_back`."""
        arrays = self._trained_arrays()
        return arrays, [a.copy() for a in arrays], self.steps, self._rng.bit_generator.state

    def _roll_back(self, point):
        arrays, copies, steps, rng_state = point
        for a, c in zip(arrays, copies):
            a[...] = c
        self.steps = steps
        self._rng.bit_generator.state = rng_state

    def _divergence(self, status, where):
        what = "cost" if status == _BAD_COST else "parameter update"
        return (f"the {what} became NaN or infinite at {where}; training stopped and the "
                f"network keeps its parameters from before that step (try a smaller learning rate)")

    def _training(self):
        return _TrainingLock(self.network)


def _state_kind(opt):
    """What optimizer state `opt` keeps: "adam", "momentum" or "none"."""
    if isinstance(opt, Adam):
        return "adam"
    return "momentum" if opt.momentum != 0 else "none"


def _says_stop(result):
    """A callback stops training by returning False (NumPy's False too, as from
    ``history.val_accuracy[-1] > 0.9`` on NumPy floats); None and anything else
    let it go on."""
    return isinstance(result, (bool, np.bool_)) and not result


def _check_parameters(net):
    """The core's checks on the parameter lists (type, dtype, shape, layout,
    writeable), made before anything changes; then ValueError if a weight or
    bias is NaN or infinite: training from there could only diverge, and the
    error would blame the step."""
    net._kernel.check_parameters(net.weights, net.biases)
    for what, arrays in (("weights", net.weights), ("biases", net.biases)):
        for i, P in enumerate(arrays):
            if not _core.finite(P):
                raise ValueError(f"the network's {what}[{i}] contains NaN or infinity; expected "
                                 f"finite parameters")


def _check_finite(X, what):
    """ValueError if X holds NaN or infinity, in one pass over X (without a
    temporary array). `Network._data` leaves the NaN check to the core for
    arrays that need no conversion; `Kernel.train` checks only the rows it
    trains on, batch by batch."""
    if not _core.finite(X):
        raise ValueError(_checks.nan_message(what, X))


class _BadRows(Exception):
    """The core found NaN or infinity in a batch's rows of X (status 3)."""


class _TrainingLock:
    """One fit/step per network at a time: a second one raises RuntimeError."""

    def __init__(self, network):
        self.lock = network._train_lock

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            raise RuntimeError("this network is already being trained (by another fit or step); "
                               "train a copy() to train in parallel")
        return self

    def __exit__(self, *exc):
        self.lock.release()
        return False


class _ProgressBar:
    """tqdm when installed, else one line rewritten in place on stderr."""

    def __init__(self, total, epoch):
        self.start = time.perf_counter()
        self.done = 0
        self.total = total
        self.epoch = epoch
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, desc=f"epoch {epoch + 1}", unit="ex", leave=False,
                            unit_scale=True)

    def update(self, k, loss):
        self.done += k
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            self.bar.update(k)
        else:
            sys.stderr.write(f"\repoch {self.epoch + 1}: {self.done}/{self.total} "
                             f"loss {loss:.4g} {rate:,.0f} examples/s")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")
