"""fastbp: backpropagation as clear as the math and as fast as the machine.

    z^L = W^L a^(L-1) + b^L,   a^L = sigma(z^L),   C0 = sum_j (a^L_j - y_j)^2

`Network` holds the weights and biases and runs the passes in a compiled core;
`gradcheck` and `explain` look inside backpropagation.
"""
from fastbp._version import __version__
from fastbp.network import Gradients, Network, Trace
from fastbp.optimizers import SGD, Adam
from fastbp.tools import ChainRule, explain, gradcheck
from fastbp.trainer import EarlyStopping, History, Trainer
from fastbp import datasets, reference

__all__ = ["__version__", "Network", "Trace", "Gradients", "ChainRule",
           "Trainer", "SGD", "Adam", "History", "EarlyStopping",
           "gradcheck", "explain", "datasets", "reference"]
