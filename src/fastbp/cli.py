"""The ``fastbp`` command line (also ``python -m fastbp``).

    fastbp train        train a network on digits, Fashion-MNIST or an .npz file
    fastbp evaluate     accuracy and confusion matrix of a saved network
    fastbp gradcheck    backprop against finite differences, per parameter array
    fastbp explain      the three chain-rule factors of one weight's gradient
    fastbp show         each neuron's incoming weights drawn as an image
    fastbp bench        the benchmark suite: fastbp against NumPy and its peers

A mistake on the command line (a missing file, a bad layer list, data whose
width does not match the network, a malformed model file, an unknown name)
prints one line ``fastbp: error: ...`` on stderr and exits with status 2,
never a traceback. ``FASTBP_TRACEBACK=1`` in the environment shows the
traceback instead, for debugging.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile
from dataclasses import dataclass

import numpy as np

PROG = "fastbp"
SPLIT_SEED = 0          # the fixed seed of the test quarter split off digits and .npz data
TEST_FRACTION = 0.25
DEFAULT_HIDDEN = 32     # hidden width of the default network for an .npz data set

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake on the command line: one line on stderr, exit status 2."""


# --------------------------------------------------------------------------- #
# argparse plumbing
# --------------------------------------------------------------------------- #

class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: ``fastbp: error: ... (see --help)``."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the descriptions' line breaks and show defaults in the option help
    (those that are not None: those options say what they default to)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _layers(text):
    """``"64,32,10"`` -> [64, 32, 10]."""
    parts = [p.strip() for p in text.split(",")]
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = None
    if sizes is None or len(sizes) < 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected at least two comma-separated positive layer widths such as 64,32,10; got {text!r}")
    return sizes


def _float_where(accept, expected):
    """An argparse type: a float for which accept(value) holds (NaN never does)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (np.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value
    return parse


_positive_float = _float_where(lambda v: v > 0, "a positive number")
_nonnegative_float = _float_where(lambda v: v >= 0, "a number >= 0")
_fraction = _float_where(lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {text!r}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)

_DATA_HELP = ("digits (shipped with fastbp), fashion-mnist (the IDX files in $FASHION_MNIST_DIR "
              "or /usr/share/datasets/fashion-mnist) or FILE.npz (arrays X (n, features) and "
              "y (n,) integer labels or (n, outputs) targets; optional X_test, y_test)")
_EVAL_DATA_HELP = (_DATA_HELP + "; the test part is used: digits' and a file's fixed test "
                   "quarter (or the file's X_test, y_test), Fashion-MNIST's test set. "
                   "Default: digits for 64 inputs, fashion-mnist for 784")


def build_parser():
    from fastbp import __version__

    parser = _Parser(
        prog=PROG, formatter_class=_Formatter,
        description=("Train fully-connected networks by backpropagation, and look inside them.\n\n"
                     "  z^L = W^L a^(L-1) + b^L,  a^L = sigma(z^L),  C0 = cost of one example\n"
                     "  dC0/dw^L_jk = a^(L-1)_k * sigma'(z^L_j) * dC0/da^L_j"),
        epilog=("Start with 'fastbp train' (digits, a few seconds); 'fastbp COMMAND --help' "
                "describes each command."))
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # -- train ---------------------------------------------------------------
    p = sub.add_parser(
        "train", formatter_class=_Formatter, help="train a network and report its test accuracy",
        description=(
            "Train a network by mini-batch gradient descent and report the loss and validation\n"
            "accuracy per epoch, the test accuracy and the training throughput.\n\n"
            "With no options: the shipped 8x8 digits (a fixed quarter held out for testing, a\n"
            "tenth of the rest for validation, 1,212 examples left to train on), a 64-32-10\n"
            "relu/softmax network with the log_loss cost, Adam (lr 0.01), batch 32, 20 epochs:\n"
            "about a second, and 0.95 to 0.97 test accuracy depending on --seed.\n"
            "Fashion-MNIST is tested on its own 10,000-image test set."),
        epilog=("example: fastbp train --data fashion-mnist --layers 784,128,10 --lr 1e-3 "
                "--batch-size 128 --epochs 5 --plot curves.png --save model.npz"))
    p.add_argument("--data", default="digits", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--layers", type=_layers, metavar="N0,N1,...",
                   help=("layer widths, input first, e.g. 64,32,10 (default: 64,32,10 for digits, "
                         f"784,128,10 for fashion-mnist, FEATURES,{DEFAULT_HIDDEN},OUTPUTS for a file)"))
    _add_layout_options(p)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="update rule (PyTorch's)")
    p.add_argument("--lr", type=_positive_float, metavar="RATE",
                   help="learning rate (default: 0.01 for adam, 0.1 for sgd)")
    p.add_argument("--momentum", type=_nonnegative_float, metavar="MU",
                   help="momentum of sgd (default 0; not for adam)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N", help="examples per mini-batch")
    p.add_argument("--epochs", type=_positive_int, default=20, metavar="N", help="passes over the training data")
    p.add_argument("--l2", type=_nonnegative_float, default=0.0, metavar="LAMBDA",
                   help="weight decay: l2 * W is added to each weight gradient")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seeds the network, the validation split and the shuffling")
    p.add_argument("--validation-split", type=_fraction, default=0.1, metavar="FRACTION",
                   help=("fraction of the training data held out to measure the validation loss "
                         "and accuracy after each epoch (0: none)"))
    p.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE",
                   help=("stop after PATIENCE epochs without a better validation loss and restore "
                         "the best epoch's parameters"))
    p.add_argument("--save", metavar="MODEL.npz", help="write the trained network to this file")
    p.add_argument("--plot", metavar="CURVES.png",
                   help="draw the learning curves to this image (needs matplotlib)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar during each epoch (default: only on a terminal)")
    p.set_defaults(run=cmd_train)

    # -- evaluate ------------------------------------------------------------
    p = sub.add_parser(
        "evaluate", formatter_class=_Formatter, help="accuracy and confusion matrix of a saved network",
        description="Accuracy, cost and confusion matrix of a saved network on a data set's test part.")
    p.add_argument("model", metavar="MODEL.npz", help="a network written by 'fastbp train --save'")
    p.add_argument("--data", metavar="DATA", help=_EVAL_DATA_HELP)
    p.set_defaults(run=cmd_evaluate)

    # -- gradcheck -----------------------------------------------------------
    p = sub.add_parser(
        "gradcheck", formatter_class=_Formatter,
        help="compare backprop with finite differences",
        description=(
            "Compare backprop's gradient with central finite differences (the 'tiny nudge' of\n"
            "each parameter), for every weight matrix W^l and bias vector b^l: the relative\n"
            "difference ||g - g_fd|| / (||g|| + ||g_fd||). Exit status 0 if the largest is below\n"
            "the threshold, 1 otherwise.\n\n"
            "Checks MODEL.npz if given, else a new network built from --layers and the layout\n"
            "options. Data: --data; by default digits for 64 inputs, otherwise random inputs\n"
            "in [0, 1) with random labels."))
    p.add_argument("model", nargs="?", metavar="MODEL.npz", help="a saved network (optional)")
    p.add_argument("--layers", type=_layers, metavar="N0,N1,...",
                   help="layer widths of a new network (default: as 'fastbp train' would build "
                        "for --data, 64,32,10 without it)")
    _add_layout_options(p)
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="seeds a new network and random data")
    p.add_argument("--data", metavar="DATA", help=_DATA_HELP + "; its first N test examples are used")
    p.add_argument("--examples", type=_positive_int, default=10, metavar="N", help="examples in the cost")
    p.add_argument("--eps", type=_positive_float, metavar="EPS",
                   help="the nudge (default 1e-6 for float64, 1e-3 for float32)")
    p.add_argument("--threshold", type=_positive_float, metavar="T",
                   help="largest relative difference that passes (default 1e-6 for float64, 1e-2 for float32)")
    p.set_defaults(run=cmd_gradcheck)

    # -- explain -------------------------------------------------------------
    p = sub.add_parser(
        "explain", formatter_class=_Formatter,
        help="the chain-rule factors of dC/dw^L_jk",
        description=(
            "The three chain-rule factors of the gradient of one weight w^L_jk (from neuron k of\n"
            "layer L-1 to neuron j of layer L; layers numbered 1..L as in the notation):\n\n"
            "  dC0/dw^L_jk = dz/dw * da/dz * dC0/da = a^(L-1)_k * sigma'(z^L_j) * dC0/da^L_j\n\n"
            "for the first few examples, their means over all N examples, and dC/dw (the mean of\n"
            "the products) next to backprop's value."))
    p.add_argument("model", metavar="MODEL.npz", help="a saved network")
    p.add_argument("--layer", type=_positive_int, metavar="L", help="layer 1..L (default: the output layer)")
    p.add_argument("--j", type=_nonnegative_int, default=0, metavar="J", help="neuron of layer L")
    p.add_argument("--k", type=_nonnegative_int, default=0, metavar="K", help="neuron of layer L-1")
    p.add_argument("--data", metavar="DATA", help=_EVAL_DATA_HELP)
    p.add_argument("--examples", type=_positive_int, default=100, metavar="N",
                   help="the first N test examples make the cost C")
    p.add_argument("--show", type=_nonnegative_int, default=5, metavar="M",
                   help="print the factors of the first M examples")
    p.set_defaults(run=cmd_explain)

    # -- show ----------------------------------------------------------------
    p = sub.add_parser(
        "show", formatter_class=_Formatter, help="draw each neuron's incoming weights as an image",
        description=(
            "Draw each neuron's incoming weights w^L_j. as an image (28x28 for 784 inputs, 8x8\n"
            "for 64), red positive, blue negative, white 0: what each neuron of the first layer\n"
            "looks for. Needs matplotlib."))
    p.add_argument("model", metavar="MODEL.npz", help="a saved network")
    p.add_argument("--out", required=True, metavar="WEIGHTS.png", help="image file to write")
    p.add_argument("--layer", type=_positive_int, default=1, metavar="L", help="layer 1..L")
    p.add_argument("--neurons", type=_positive_int, metavar="N", help="draw only the first N neurons")
    p.set_defaults(run=cmd_show)

    # -- bench ---------------------------------------------------------------
    p = sub.add_parser(
        "bench", add_help=False, help="run the benchmark suite (fastbp against NumPy and its peers)",
        description="Run the benchmark suite; its arguments are passed on (fastbp bench --help).")
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=cmd_bench)
    return parser


_LAYOUT_OPTIONS = ("activation", "output", "cost", "dtype")


def _layout_defaults(args):
    args.activation = args.activation or "relu"
    args.dtype = args.dtype or "float64"


def _add_layout_options(p):
    # Defaults None (filled in by _layout_defaults): gradcheck tells a layout option
    # given with a model file, which has its own layout, from one left out.
    p.add_argument("--activation",
                   choices=("sigmoid", "relu", "tanh", "identity", "leaky_relu"),
                   help="activation of the hidden layers (default: relu)")
    p.add_argument("--output",
                   choices=("sigmoid", "relu", "tanh", "identity", "leaky_relu", "softmax"),
                   help="activation of the output layer (default: softmax, or sigmoid for a "
                        "single output unit)")
    p.add_argument("--cost", choices=("quadratic", "cross_entropy", "log_loss"),
                   help="cost (default: log_loss for a softmax output, cross_entropy for sigmoid, "
                        "quadratic otherwise)")
    p.add_argument("--dtype", choices=("float32", "float64"),
                   help="parameters and computation (default: float64)")


def _output(args, n_outputs):
    """--output for a network with `n_outputs` output units."""
    # A softmax over one unit is 1 whatever its input: nothing would be learned.
    if args.output is None:
        return "sigmoid" if n_outputs == 1 else "softmax"
    if args.output == "softmax" and n_outputs == 1:
        raise UsageError("--output softmax needs at least 2 output units: a softmax over one unit "
                         "is always 1, so nothing would be learned; use --output sigmoid (the "
                         "default for one output) for a 0/1 target")
    return args.output


def _cost(args, output):
    if args.cost is not None:
        return args.cost
    return {"softmax": "log_loss", "sigmoid": "cross_entropy"}.get(output, "quadratic")


# --------------------------------------------------------------------------- #
# Data
# --------------------------------------------------------------------------- #

@dataclass
class Data:
    """A data set split into its training part and its test part."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_part: str             # how the test part was made, for the reader
    class_names: tuple = ()

    @property
    def n_features(self):
        return self.X_train.shape[1]

    def n_outputs(self):
        """Outputs a default network needs: classes (labels) or target columns."""
        if self.y_train.ndim == 2:
            return self.y_train.shape[1]
        return max(int(max(self.y_train.max(), self.y_test.max())) + 1, 2)


def load_data(spec, dtype="float64", test_only=False):
    """`Data` for ``--data`` digits, fashion-mnist or FILE.npz, X as `dtype`
    (with `test_only`, only the test part is sure to be converted)."""
    from fastbp import datasets
    if spec == "digits":
        X, y = datasets.load_digits()
        return _split("digits", X.astype(dtype), y, "a fixed test quarter")
    if spec in ("fashion-mnist", "fashion_mnist", "fashion"):
        try:
            (X, y), (Xt, yt) = datasets.load_fashion_mnist(dtype="float32")   # the smaller copy
        except FileNotFoundError:
            files, looked = datasets._locate_fashion_mnist(None)
            if files is not None:
                raise
            # The library's advice (pass `path`) is for Python; say how this command finds them.
            raise FileNotFoundError(
                f"--data {spec}: Fashion-MNIST not found; {looked}. Install the Debian package "
                f"dataset-fashion-mnist (apt-get install dataset-fashion-mnist; it puts them in "
                f"{datasets.FASHION_MNIST_DEFAULT_DIR}), or set FASHION_MNIST_DIR to the "
                f"directory that holds them") from None
        if not test_only:
            X = X.astype(dtype, copy=False)
        return Data("fashion-mnist", X, y, Xt.astype(dtype, copy=False), yt, "its test set",
                    FASHION_CLASSES)
    return _load_npz(spec, dtype)


def _split(name, X, y, test_part):
    Xtr, Xte, ytr, yte = _train_test_split(X, y, TEST_FRACTION, SPLIT_SEED)
    return Data(name, Xtr, ytr, Xte, yte, test_part)


def _train_test_split(X, y, fraction, seed):
    """Stratified by class when the labels allow it, else a plain random split."""
    from fastbp import datasets
    if y.ndim == 1:
        try:
            return datasets.train_test_split(X, y, test_size=fraction, seed=seed, stratify=True)
        except ValueError:
            pass
    return datasets.train_test_split(X, y, test_size=fraction, seed=seed)


def _load_npz(path, dtype):
    what = f"--data {path!r}"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file; expected digits, fashion-mnist or a "
                                f".npz file with arrays X and y")
    if os.path.isdir(path):
        raise ValueError(f"{what} is a directory; expected digits, fashion-mnist or a .npz file "
                         f"with arrays X and y")
    # np.load decides by the first bytes too; asking first names the wrong kind of file.
    with open(path, "rb") as f:
        lead = f.read(6)
    if not lead:
        raise ValueError(f"{what} is empty; expected an .npz with arrays X and y")
    if lead == b"\x93NUMPY":
        raise ValueError(f"{what} holds a single array (.npy); expected an .npz with arrays X and y "
                         f"(numpy.savez(file, X=X, y=y) writes one)")
    if lead[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{what} is not an .npz archive; expected an .npz with arrays X and y "
                         f"(numpy.savez(file, X=X, y=y) writes one)")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in ("X", "y") if k not in keys]
            if missing:
                raise ValueError(f"missing array(s) {', '.join(missing)}; it has {sorted(keys) or 'none'}")
            arrays = {k: f[k] for k in ("X", "y", "X_test", "y_test") if k in keys}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise ValueError(f"{what} is not a readable .npz file with arrays X and y: {e}") from None
    except Exception as e:  # zlib.error and the like from a corrupt member
        raise ValueError(f"{what} is not a readable .npz file with arrays X and y: "
                         f"{type(e).__name__}: {e}") from None
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{what} has only one of X_test and y_test; expected both or neither")
    X, y = _check_xy(arrays["X"], arrays["y"], what, "X", "y", dtype)
    if "X_test" in arrays:
        Xt, yt = _check_xy(arrays["X_test"], arrays["y_test"], what, "X_test", "y_test", dtype)
        if Xt.shape[1] != X.shape[1] or yt.ndim != y.ndim or yt.shape[1:] != y.shape[1:]:
            raise ValueError(f"{what}: X_test, y_test have shapes {Xt.shape}, {yt.shape}, which do "
                             f"not match X, y of shapes {X.shape}, {y.shape}")
        return Data(path, X, y, Xt, yt, "its X_test, y_test")
    if X.shape[0] < 2:
        raise ValueError(f"{what}: need at least 2 examples to hold out a test quarter; got {X.shape[0]}")
    return _split(path, X, y, "a fixed test quarter")


def _check_xy(X, y, what, xname, yname, dtype):
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ValueError(f"{what}: {xname} and {yname} must be numeric; got {X.dtype} and {y.dtype}")
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"{what}: {xname} must have one example per row, shape (n, features) "
                         f"with n >= 1; got {X.shape}")
    X = np.ascontiguousarray(X.reshape(X.shape[0], -1), dtype=dtype)   # images are flattened
    if not np.isfinite(X).all():
        raise ValueError(f"{what}: {xname} contains NaN or infinity")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(f"{what}: {yname} must have shape ({X.shape[0]},) (labels) or "
                         f"({X.shape[0]}, outputs) (targets), one per row of {xname}; got {y.shape}")
    if y.ndim == 1:
        if y.dtype.kind == "f":
            if not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
                raise ValueError(f"{what}: 1-D {yname} must be integer class labels")
        y = y.astype(np.int64)
        if y.min() < 0:
            raise ValueError(f"{what}: class labels in {yname} must be >= 0; got {y.min()}")
    else:
        y = np.ascontiguousarray(y, dtype=dtype)
        if not np.isfinite(y).all():
            raise ValueError(f"{what}: {yname} contains NaN or infinity")
    return X, y


def _check_fits(sizes, data, what):
    """The network `what` (e.g. "--layers 64,32,10") can take `data`."""
    if data.n_features != sizes[0]:
        raise ValueError(f"{data.name} has {data.n_features} features per example but {what} "
                         f"starts with {sizes[0]} inputs")
    out = sizes[-1]
    if data.y_train.ndim == 2:
        if data.y_train.shape[1] != out:
            raise ValueError(f"{data.name} has {data.y_train.shape[1]} target columns but {what} "
                             f"ends with {out} outputs")
        return
    top = int(max(data.y_train.max(), data.y_test.max()))
    if top >= max(out, 2):
        raise ValueError(f"{data.name} has class labels 0..{top} ({top + 1} classes) but {what} "
                         f"ends with {out} output{'s' if out > 1 else ''}")


def _default_sizes(data):
    """The network `train` builds for `data` when --layers is not given."""
    if data.name == "digits":
        return [64, 32, 10]
    if data.name == "fashion-mnist":
        return [784, 128, 10]
    return [data.n_features, DEFAULT_HIDDEN, data.n_outputs()]


def _labels(net, y):
    """Class labels from labels, one-hot rows or a 0/1 column (as Network.score reads them)."""
    from fastbp import _checks
    return _checks.labels(y, y.shape[0], net.sizes[-1])


def _data_for_model(spec, sizes, dtype):
    """``--data`` for a saved network, defaulting from its input width."""
    if spec is None:
        spec = {64: "digits", 784: "fashion-mnist"}.get(sizes[0])
        if spec is None:
            raise UsageError(f"the network takes {sizes[0]} inputs: say which data set with --data")
    return load_data(spec, dtype, test_only=True)


def _load_model(path):
    from fastbp import Network
    return Network.load(path)


def _check_writable(path, option):
    """Fail before training, not after, when a file cannot be written there."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{option} {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{option} {path!r} is a directory; expected a file name")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"{option} {path!r}: directory {directory!r} is not writable")


def _need_matplotlib(option):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"{option} needs matplotlib: pip install fastbp[plot]") from None


def _check_image_path(path, option, needs=None):
    """Fail before training, not after, when matplotlib cannot write this image."""
    _check_writable(path, option)
    _need_matplotlib(needs or option)
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    # Without a suffix matplotlib would write PATH.png, not the file named.
    suffix = os.path.splitext(path)[1][1:].lower()
    if suffix not in formats:
        found = f"suffix .{suffix}" if suffix else "no suffix"
        raise UsageError(f"{option} {path!r} has {found}; expected an image file name ending in "
                         f"one of .{', .'.join(sorted(formats))}")


def _layers_text(sizes):
    return "-".join(str(s) for s in sizes)


def _layout_text(net):
    """"relu hidden, softmax output, log_loss cost, float64"."""
    hidden = f"{net.activation} hidden, " if net.n_layers > 1 else ""
    return f"{hidden}{net.output} output, {net.cost_name} cost, {net.dtype}"


def _plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def _num(value):
    """A cost for people: 4 decimals, or 4 significant digits when huge."""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def _out(line=""):
    print(line, flush=True)


# --------------------------------------------------------------------------- #
# fastbp train
# --------------------------------------------------------------------------- #

def cmd_train(args):
    import fastbp
    from fastbp import Network, Trainer
    from fastbp.network import _layout

    _layout_defaults(args)
    # Everything that can be refused is checked before the data are loaded.
    if args.optimizer == "adam":
        if args.momentum is not None:
            raise UsageError("--momentum is for --optimizer sgd; Adam keeps its own moments")
        optimizer = fastbp.Adam(lr=args.lr if args.lr is not None else 1e-2)
    else:
        optimizer = fastbp.SGD(lr=args.lr if args.lr is not None else 0.1,
                               momentum=args.momentum or 0.0)
    if args.early_stopping is not None and args.validation_split == 0:
        raise UsageError("--early-stopping needs validation data: give --validation-split > 0")
    # The output layer's width, and so its default activation, may come with the data.
    output = _output(args, args.layers[-1]) if args.layers is not None else args.output
    if output is not None:                  # refuses bad pairs now
        _layout([1, 1], args.activation, output, _cost(args, output), args.dtype)
    for option, value in (("--save", args.save), ("--plot", args.plot)):
        if value is not None and not value.strip():
            raise UsageError(f"{option} needs a file name; got an empty one")
    if args.save:
        _check_writable(args.save, "--save")
    if args.plot:
        _check_image_path(args.plot, "--plot")

    data = load_data(args.data, args.dtype)
    if args.layers is not None:
        sizes, what = args.layers, f"--layers {','.join(map(str, args.layers))}"
    else:
        sizes = _default_sizes(data)
        what = f"the default network {_layers_text(sizes)}"
    _check_fits(sizes, data, what)
    output = _output(args, sizes[-1])

    seeds = np.random.SeedSequence(args.seed).spawn(3)
    net = Network(sizes, activation=args.activation, output=output, cost=_cost(args, output),
                  dtype=args.dtype, seed=np.random.default_rng(seeds[0]))
    X, y = data.X_train, data.y_train
    validation = None
    if args.validation_split > 0:
        X, Xv, y, yv = _train_test_split(X, y, args.validation_split, np.random.default_rng(seeds[1]))
        validation = (Xv, yv)
        data.X_train = data.y_train = None       # the split made copies: let the original go
    trainer = Trainer(net, optimizer, batch_size=args.batch_size, l2=args.l2,
                      seed=np.random.default_rng(seeds[2]))

    n_params = sum(W.size for W in net.weights) + sum(b.size for b in net.biases)
    val_text = f", {validation[0].shape[0]} validation" if validation else ""
    _out(f"data:     {data.name}: {X.shape[0]} training{val_text}, {data.X_test.shape[0]} test "
         f"examples ({data.test_part}) of {X.shape[1]} features")
    _out(f"network:  {_layers_text(sizes)}, {_layout_text(net)}, {n_params:,} parameters")
    opt_text = repr(optimizer)
    _out(f"training: {opt_text}, batch size {args.batch_size}, {_plural(args.epochs, 'epoch')}"
         + (f", l2 {args.l2:g}" if args.l2 else "")
         + (f", early stopping after {args.early_stopping} epochs without progress"
            if args.early_stopping else "")
         + f", seed {args.seed}")

    width = len(str(args.epochs))

    def report(epoch, h):
        line = f"epoch {epoch + 1:>{width}}/{args.epochs}  loss {_num(h.loss[-1])}"
        if h.val_loss:
            line += f"  val_loss {_num(h.val_loss[-1])}  val_accuracy {h.val_accuracy[-1]:.4f}"
        _out(line + f"  ({h.epoch_time[-1]:.3f} s)")

    history = trainer.fit(X, y, epochs=args.epochs, validation_data=validation,
                          callbacks=[report], progress=args.progress,
                          early_stopping=args.early_stopping)

    if args.early_stopping is not None and history.val_loss:
        best = int(np.argmin(history.val_loss))
        stopped = len(history) < args.epochs
        _out(f"early stopping: {'stopped after epoch ' + str(len(history)) + '; ' if stopped else ''}"
             f"restored epoch {best + 1} (val_loss {_num(history.val_loss[best])})")
    n_test = data.X_test.shape[0]
    correct = int(np.sum(net.predict(data.X_test) == _labels(net, data.y_test)))
    _out(f"test accuracy: {correct / n_test:.4f} ({correct} of {n_test} test examples)")
    seconds = float(sum(history.epoch_time))
    seen = X.shape[0] * len(history)
    rate = seen / seconds if seconds > 0 else float("inf")
    _out(f"throughput: {rate:,.0f} examples/s ({_plural(len(history), 'epoch')} of {X.shape[0]} examples "
         f"in {seconds:.2f} s of training)")
    if args.save:
        net.save(args.save)
        _out(f"saved the network to {args.save}")
    if args.plot:
        from fastbp import plot
        plot.history(history, args.plot)
        _out(f"saved the learning curves to {args.plot}")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# fastbp evaluate
# --------------------------------------------------------------------------- #

def cmd_evaluate(args):
    net = _load_model(args.model)
    data = _data_for_model(args.data, net.sizes, net.dtype)
    _check_fits(net.sizes, data, f"the network in {args.model} ({_layers_text(net.sizes)})")
    X, y = data.X_test, data.y_test
    truth = _labels(net, y)
    pred = net.predict(X)
    n = X.shape[0]
    correct = int(np.sum(pred == truth))
    _out(f"network:  {args.model}: {_layers_text(net.sizes)}, {_layout_text(net)}")
    _out(f"data:     {data.name}: {n} test examples ({data.test_part})")
    _out(f"cost C:   {_num(net.cost(X, y))}")
    _out(f"accuracy: {correct / n:.4f} ({correct} of {n})")
    _out()
    n_classes = max(net.sizes[-1], 2)
    _out(confusion_table(truth, pred, n_classes, data.class_names))
    return EXIT_OK


def confusion_matrix(truth, pred, n_classes):
    """counts[i, j]: examples of class i predicted as class j."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (truth, pred), 1)
    return counts


def confusion_table(truth, pred, n_classes, class_names=()):
    """The confusion matrix as plain text, with each class's recall."""
    counts = confusion_matrix(truth, pred, n_classes)
    names = [f"{i} {class_names[i]}" if i < len(class_names) else str(i) for i in range(n_classes)]
    corner = "true \\ predicted"
    label_w = max(len(corner), max(len(s) for s in names))
    cell_w = max(4, len(str(counts.max())) + 1, len(str(n_classes - 1)) + 1)
    lines = ["confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(f"{corner:<{label_w}} "
                 + "".join(f"{j:>{cell_w}}" for j in range(n_classes)) + "   recall")
    for i in range(n_classes):
        total = counts[i].sum()
        recall = f"{counts[i, i] / total:.3f}" if total else "  -  "
        lines.append(f"{names[i]:<{label_w}} "
                     + "".join(f"{c:>{cell_w}}" for c in counts[i]) + f"   {recall:>6}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# fastbp gradcheck
# --------------------------------------------------------------------------- #

def cmd_gradcheck(args):
    from fastbp import Network
    from fastbp.tools import gradcheck_arrays, gradcheck_eps
    data = None
    if args.model is not None:
        if args.layers is not None:
            raise UsageError("give either MODEL.npz or --layers, not both")
        given = [f"--{name}" for name in _LAYOUT_OPTIONS if getattr(args, name) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} describe a new network; {args.model} has its own "
                             "layout (give the model or the options, not both)")
    _layout_defaults(args)
    if args.model is not None:
        net = _load_model(args.model)
        source = args.model
    else:
        sizes = args.layers
        if sizes is None:
            if args.data is not None:
                data = load_data(args.data, args.dtype, test_only=True)
            sizes = _default_sizes(data) if data is not None else [64, 32, 10]
        output = _output(args, sizes[-1])
        net = Network(sizes, activation=args.activation, output=output, cost=_cost(args, output),
                      dtype=args.dtype, seed=args.seed)
        source = "a new network"
    sizes = net.sizes
    what = f"{source} ({_layers_text(sizes)})"
    if args.data is None and sizes[0] != 64:
        rng = np.random.default_rng(args.seed)
        X = rng.random((args.examples, sizes[0])).astype(net.dtype)
        y = rng.integers(0, max(sizes[-1], 2), size=args.examples)
        data_text = f"{args.examples} random examples"
    else:
        if data is None:
            data = _data_for_model(args.data, sizes, net.dtype)
        _check_fits(sizes, data, what)
        X, y = data.X_test[:args.examples], data.y_test[:args.examples]
        data_text = f"the first {X.shape[0]} test examples of {data.name}"
    is32 = net.dtype == np.float32
    eps = gradcheck_eps(net, args.eps)      # an eps too small for the parameters fails here, before any output
    threshold = args.threshold if args.threshold is not None else (1e-2 if is32 else 1e-6)

    _out(f"network:  {what}: {_layout_text(net)}")
    _out(f"data:     {data_text}")
    n_params = sum(W.size for W in net.weights) + sum(b.size for b in net.biases)
    _out(f"nudge:    eps = {eps:g} (central differences: 2 cost evaluations for each of "
         f"{n_params:,} parameters)")
    _out()
    errors = gradcheck_arrays(net, X, y, eps=eps)
    _out(f"{'layer':>5}  {'array':<6} {'shape':>10}  relative difference")
    for l in range(1, net.n_layers + 1):
        for kind, symbol in (("weights", "W"), ("biases", "b")):
            shape = (net.weights if kind == "weights" else net.biases)[l - 1].shape
            shape_text = "x".join(map(str, shape))
            _out(f"{l:>5}  {symbol}^{l:<4} {shape_text:>10}  {errors[f'{kind}[{l - 1}]']:.3e}")
    worst = max(errors.values())
    ok = worst < threshold
    _out()
    _out(f"largest relative difference: {worst:.3e} (threshold {threshold:g}): "
         f"{'OK' if ok else 'FAILED'}")
    return EXIT_OK if ok else EXIT_FAIL


# --------------------------------------------------------------------------- #
# fastbp explain
# --------------------------------------------------------------------------- #

def cmd_explain(args):
    from fastbp.tools import explain
    net = _load_model(args.model)
    sizes = net.sizes
    L = net.n_layers
    layer = args.layer if args.layer is not None else L
    if not 1 <= layer <= L:
        raise UsageError(f"--layer must be in 1..{L} for the network in {args.model} "
                         f"({_layers_text(sizes)}); got {layer}")
    j, k = args.j, args.k
    if j >= sizes[layer]:
        raise UsageError(f"--j must be in 0..{sizes[layer] - 1} (the {sizes[layer]} neurons of "
                         f"layer {layer}); got {j}")
    if k >= sizes[layer - 1]:
        raise UsageError(f"--k must be in 0..{sizes[layer - 1] - 1} (the {sizes[layer - 1]} neurons "
                         f"of layer {layer - 1}); got {k}")
    data = _data_for_model(args.data, sizes, net.dtype)
    _check_fits(sizes, data, f"the network in {args.model} ({_layers_text(sizes)})")
    X, y = data.X_test[:args.examples], data.y_test[:args.examples]
    n = X.shape[0]
    why = explain(net, X, y, layer, j, k)
    backprop = float(net.backprop(X, y).weights[layer - 1][j, k])

    w = f"w^{layer}_{j},{k}"
    prev = f"a^({layer - 1})_{k}" + (f" = x_{k}, an input" if layer == 1 else "")
    act = net.activations[layer - 1]
    _out(f"dC/d{w}: the weight from neuron {k} of layer {layer - 1} to neuron {j} of layer "
         f"{layer}, weights[{layer - 1}][{j}, {k}] of {args.model} ({_layers_text(sizes)}, "
         f"{net.cost_name} cost)")
    _out(f"data: the first {n} test examples of {data.name}")
    _out()
    _out(f"  dC0/d{w} = dz/dw * da/dz * dC0/da, where")
    _out(f"    dz/dw  = {prev}")
    if why.da_dz is not None:
        _out(f"    da/dz  = sigma'(z^{layer}_{j})   ({act}')")
        _out(f"    dC0/da = dC0/da^{layer}_{j}   "
             + ("(from the cost)" if layer == L else f"(by the delta recurrence from layer {layer + 1})"))
        cols = [("dz/dw", why.dz_dw), ("da/dz", why.da_dz), ("dC0/da", why.dc_da),
                ("product", why.dz_dw * why.dc_dz)]
    else:
        formula = f" = a^{layer}_{j} - y_{j}" if net.cost_name == "log_loss" else ""
        _out(f"    da/dz * dC0/da = dC0/dz^{layer}_{j}{formula}")
        _out("      (one factor: a softmax output's Jacobian is not diagonal, so sigma'(z) alone is undefined)")
        cols = [("dz/dw", why.dz_dw), ("dC0/dz", why.dc_dz), ("product", why.dz_dw * why.dc_dz)]
    _out()
    cols = [(name, np.asarray(v, dtype=np.float64) + 0.0) for name, v in cols]   # -0 -> 0
    _out(f"{'example':>10}" + "".join(f"{name:>14}" for name, _ in cols))
    for i in range(min(args.show, n)):
        _out(f"{i:>10}" + "".join(f"{v[i]:>+14.6g}" for _, v in cols))
    if args.show < n:
        _out(f"{'...':>10}")
    _out(f"{'mean':>10}" + "".join(f"{np.mean(v):>+14.6g}" for _, v in cols))
    _out()
    scale = max(abs(backprop), abs(why.dc_dw), np.finfo(np.float64).tiny)
    rows = [(f"dC/d{w} = mean of the products", f"{why.dc_dw:+.10g}"),
            (f"backprop's weights[{layer - 1}][{j}, {k}]", f"{backprop:+.10g}"),
            ("relative difference", f"{abs(why.dc_dw - backprop) / scale:.2e}")]
    label_w = max(len(label) for label, _ in rows)
    for label, value in rows:
        _out(f"{label:<{label_w}} = {value}")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# fastbp show
# --------------------------------------------------------------------------- #

def cmd_show(args):
    net = _load_model(args.model)
    if not 1 <= args.layer <= net.n_layers:
        raise UsageError(f"--layer must be in 1..{net.n_layers} for the network in {args.model} "
                         f"({_layers_text(net.sizes)}); got {args.layer}")
    _check_image_path(args.out, "--out", needs="fastbp show")
    from fastbp import plot
    plot.weights(net, args.out, layer=args.layer, neurons=args.neurons)
    rows, cols = plot.tile_shape(net.sizes[args.layer - 1])
    n = net.sizes[args.layer] if args.neurons is None else min(args.neurons, net.sizes[args.layer])
    _out(f"drew the incoming weights of {n} neurons of layer {args.layer} as {rows}x{cols} "
         f"images to {args.out}")
    return EXIT_OK


# --------------------------------------------------------------------------- #
# fastbp bench
# --------------------------------------------------------------------------- #

def cmd_bench(args):
    try:
        from fastbp.benchmarks import suite
    except ImportError as e:
        raise UsageError(f"the benchmark suite needs {e.name or e}: pip install fastbp[bench]") from None
    argv = list(args.args)
    parsed = suite.parse_args(argv, prog=f"{PROG} bench", parser_class=_BenchParser)
    return int(suite.main(argv, args=parsed) or 0)


class _BenchParser(argparse.ArgumentParser):
    """The suite's parser speaking as ``fastbp bench``: an error is one usage
    error line, not the suite's usage and exit."""

    def error(self, message):
        raise UsageError(f"{message} (see '{PROG} bench --help')")


# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #

def _error(message, status=EXIT_USAGE):
    message = " ".join(str(message).split("\n")).strip() or "unknown error"
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return status


def main(argv=None):
    """Run the command line with `argv` (default ``sys.argv[1:]``); returns the exit status."""
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    debug = bool(os.environ.get("FASTBP_TRACEBACK"))
    try:
        parser = build_parser()
        if argv[:1] == ["bench"]:       # everything after 'bench' belongs to the suite
            args = argparse.Namespace(command="bench", run=cmd_bench, args=argv[1:])
        else:
            args, extra = parser.parse_known_args(argv)
            if extra:
                # argparse would report them from the top-level parser, whose help does not
                # list the command's options (those before the command are its own).
                after = args.command and argv.index(args.command) < argv.index(extra[0])
                prog = f"{PROG} {args.command}" if after else PROG
                raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')")
        if args.command is None:
            raise UsageError("missing command: train, evaluate, gradcheck, explain, show or bench "
                             f"(see '{PROG} --help')")
        return args.run(args)
    except UsageError as e:
        if debug:
            raise
        return _error(e)
    except BrokenPipeError:
        # The reader of stdout went away (fastbp train | head): nobody is left to tell.
        # Python's docs recipe: stdout to devnull so that the interpreter's final flush
        # does not fail again, and status 1 as Python itself exits on EPIPE.
        if debug:
            raise
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):    # stdout without a file descriptor
            pass
        return EXIT_FAIL
    except FloatingPointError as e:         # training diverged: a result, not a usage error
        if debug:
            raise
        return _error(e, EXIT_FAIL)
    except (ValueError, TypeError, OSError) as e:   # OSError includes FileNotFoundError
        if debug:
            raise
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            return _error(f"{e.filename}: {e.strerror}")
        return _error(e)
    except MemoryError as e:        # e.g. a layer of 2e9 units: a result, not a traceback
        if debug:
            raise
        return _error(f"out of memory: {e}" if str(e) else "out of memory", EXIT_FAIL)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
