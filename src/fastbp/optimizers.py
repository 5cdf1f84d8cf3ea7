"""Optimizers with PyTorch's update rules (torch.optim.SGD and torch.optim.Adam).

They hold only hyper-parameters; the state (momentum buffers, Adam's moments
and step count) lives in the `Trainer` that uses them, in preallocated arrays
updated in place by the compiled core.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastbp import _checks


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0).

    With momentum mu: ``buf = mu * buf + g`` (``buf = g`` on the first step);
    the step direction is ``g + mu * buf`` with Nesterov, else ``buf``;
    then ``p -= lr * direction``.
    """

    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.real(self.lr, "lr", minimum=0.0, min_open=True))
        object.__setattr__(self, "momentum", _checks.real(self.momentum, "momentum", minimum=0.0))
        if not isinstance(self.nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool; got {type(self.nesterov).__name__}")
        object.__setattr__(self, "nesterov", bool(self.nesterov))
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0")


@dataclass(frozen=True)
class Adam:
    """Adam, as torch.optim.Adam: ``m = lerp(m, g, 1 - beta1)``,
    ``v = beta2 v + (1 - beta2) g^2``,
    ``p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        object.__setattr__(self, "lr", _checks.real(self.lr, "lr", minimum=0.0, min_open=True))
        for name in ("beta1", "beta2"):
            object.__setattr__(self, name, _checks.real(getattr(self, name), name, minimum=0.0,
                                                        maximum=1.0, max_open=True))
        object.__setattr__(self, "eps", _checks.real(self.eps, "eps", minimum=0.0))


def optimizer_from(spec: str | SGD | Adam) -> SGD | Adam:
    """An SGD or Adam instance from an instance or the names "sgd" / "adam"."""
    if isinstance(spec, (SGD, Adam)):
        return spec
    if isinstance(spec, str):
        name = _checks.name(spec, "optimizer", ("sgd", "adam"))
        return SGD() if name == "sgd" else Adam()
    raise TypeError(f"optimizer must be 'sgd', 'adam', fastbp.SGD(...) or fastbp.Adam(...); "
                    f"got {type(spec).__name__}")
