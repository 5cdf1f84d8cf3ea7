"""Pictures of learning: learning curves and the weights of a layer as images.

Needs matplotlib, the optional ``plot`` extra (``pip install fastbp[plot]``).
It is imported only when a function here is called, and only its
object-oriented API is used (``matplotlib.figure.Figure``, never pyplot): no
window is opened and no display is needed, the figures are drawn with Agg
whatever backend is configured, and they are not kept in pyplot's global list.
Each function returns the ``Figure`` (shown inline by Jupyter) and writes it to
`path` when one is given: exactly that file (format from the suffix, e.g.
``.png``, ``.svg``, ``.pdf``; PNG when there is none). A directory or an
empty path is a ValueError, checked before anything is drawn.
"""
from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["history", "weights", "tile_shape"]

_MISSING = "fastbp.plot needs matplotlib: pip install fastbp[plot]"


def _figure(**kwargs):
    """A new matplotlib Figure drawn with Agg (no pyplot, no display)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _check_path(path):
    """`path` as a str (None stays None); ValueError for "" or a directory."""
    if path is None:
        return None
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("path is empty; expected a file name such as curves.png")
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; expected a file name such as curves.png")
    return path


def _save(fig, path, dpi=None):
    if path is not None:
        # An explicit format keeps matplotlib from adding ".png" to a name without a suffix.
        fmt = None if os.path.splitext(path)[1] else "png"
        fig.savefig(path, dpi=dpi, format=fmt)


def _series(h, name):
    """A list of floats from ``h.name`` (a History) or ``h[name]`` (a mapping)."""
    value = h.get(name, []) if isinstance(h, dict) else getattr(h, name, [])
    if value is None:
        return []
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise TypeError(f"h's {name!r} must be a list of numbers, one per epoch; got "
                        f"{value!r:.60}") from None


def history(h, path=None):
    """Learning curves of a training run: loss and validation accuracy per epoch.

    Parameters
    ----------
    h : fastbp.History or dict
        Anything with ``loss`` and optionally ``val_loss`` and ``val_accuracy``
        (lists of floats, one per epoch), as ``Trainer.fit`` returns.
    path : str or os.PathLike, optional
        Where to write the figure.

    Returns
    -------
    matplotlib.figure.Figure
        Left: training and validation loss (log scale when both are
        positive); right: validation accuracy (only when there is
        validation data). Epochs are numbered from 1.

    Raises
    ------
    TypeError
        If `h` is neither a dict nor has a ``loss`` or ``val_loss`` attribute.
    ValueError
        If `h` holds no epochs, or lists of different lengths; or `path` is
        empty or a directory.
    """
    # Checked here, or a wrong argument would read as an empty history.
    if not (isinstance(h, dict) or hasattr(h, "loss") or hasattr(h, "val_loss")):
        raise TypeError("h must be a fastbp.History or a dict with 'loss' (and optionally "
                        f"'val_loss', 'val_accuracy') lists; got {type(h).__name__}")
    path = _check_path(path)
    loss = _series(h, "loss")
    val_loss = _series(h, "val_loss")
    val_acc = _series(h, "val_accuracy")
    if not loss and not val_loss:
        raise ValueError("history has no epochs to plot (empty loss and val_loss)")
    lengths = {len(s) for s in (loss, val_loss, val_acc) if s}
    if len(lengths) > 1:
        raise ValueError(f"history's lists must have one value per epoch each; got {len(loss)} "
                         f"loss, {len(val_loss)} val_loss and {len(val_acc)} val_accuracy values")
    two = bool(val_acc)
    fig = _figure(figsize=(10.0 if two else 5.5, 4.0), layout="constrained")
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]

    ax = axes[0]
    if loss:
        ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3, label="training loss")
    if val_loss:
        ax.plot(np.arange(1, len(val_loss) + 1), val_loss, marker="o", ms=3,
                label="validation loss")
    values = np.array(loss + val_loss)
    if np.all(np.isfinite(values)) and np.all(values > 0):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_plain_log_formatter())
        ax.yaxis.set_minor_formatter(_plain_log_formatter(labelOnlyBase=False,
                                                          minor_thresholds=(2, 0.5)))
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost C")
    ax.set_title("loss")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend()
    _integer_ticks(ax)

    if two:
        ax = axes[1]
        epochs = np.arange(1, len(val_acc) + 1)
        ax.plot(epochs, val_acc, marker="o", ms=3, color="C2", label="validation accuracy")
        best = int(np.argmax(val_acc))
        ax.plot([epochs[best]], [val_acc[best]], linestyle="none", marker="*", ms=11, color="C3",
                label=f"best {val_acc[best]:.4f} (epoch {best + 1})")
        ax.legend(loc="lower right")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_title("validation accuracy")
        ax.grid(True, alpha=0.3)
        _integer_ticks(ax)
    _save(fig, path)
    return fig


def _plain_log_formatter(**kwargs):
    """Matplotlib's choice of which log ticks to label, written 0.5 rather than 5e-01."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:.3g}" if super().__call__(x, pos) else ""

    return PlainLogFormatter(**kwargs)


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def tile_shape(n):
    """(rows, columns) of the image drawn for `n` incoming weights.

    28x28 for 784 and 8x8 for 64 (square numbers give squares); otherwise
    the factorisation ``rows * columns == n`` closest to a square, if it is
    no more than 3 times wider than tall; otherwise the smallest near-square
    ``rows x columns >= n`` (the extra cells are left blank).

    Raises TypeError if `n` is not an integer, ValueError if it is below 1.
    """
    from fastbp import _checks
    n = _checks.integer(n, "n", minimum=1)
    root = math.isqrt(n)
    for rows in range(root, 0, -1):
        if n % rows == 0:
            cols = n // rows
            if cols <= 3 * rows:
                return rows, cols
            break
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    return rows, cols


def _grid(n, aspect):
    """(rows, columns) of tiles for n tiles of height/width `aspect`: about 1.5 times
    wider than tall, and with no ragged last row when a divisor of n is close."""
    target = max(1.0, math.sqrt(n * 1.5 * aspect))
    exact = [d for d in range(1, n + 1) if n % d == 0 and 0.75 * target <= d <= 1.4 * target]
    cols = min(exact, key=lambda d: abs(d - target)) if exact else min(n, math.ceil(target))
    return math.ceil(n / cols), cols


def weights(net, path=None, layer=1, neurons=None):
    """Each neuron's incoming weights drawn as an image, one tile per neuron.

    Tile j shows the row ``w^layer_j.`` (``net.weights[layer-1][j]``) laid out
    as the previous layer: 28x28 for Fashion-MNIST/MNIST inputs, 8x8 for the
    shipped digits (see `tile_shape` for other widths). The colour map is
    diverging and centred at 0 (red positive, blue negative, white 0), on one
    symmetric scale shared by all tiles, so the tiles can be compared; the
    scale is the 99.5th percentile of ``|w|``, and larger weights saturate.
    This is the picture of 3Blue1Brown's "what is a neural network" video.

    Parameters
    ----------
    net : fastbp.Network
    path : str or os.PathLike, optional
        Where to write the figure.
    layer : int
        1..L, numbered as in the notation (default 1: the weights from the input).
    neurons : int, optional
        Draw only the first `neurons` neurons of the layer (default all).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from fastbp import _checks
    from fastbp.network import Network
    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastbp.Network; got {type(net).__name__}")
    path = _check_path(path)
    L = net.n_layers
    layer = _checks.integer(layer, "layer")
    if not 1 <= layer <= L:
        raise ValueError(f"layer must be in 1..{L}; got {layer}")
    W = np.asarray(net.weights[layer - 1], dtype=np.float64)
    n_out, n_in = W.shape
    if neurons is not None:
        neurons = _checks.integer(neurons, "neurons", minimum=1)
        W = W[:neurons]
        n_out = W.shape[0]

    rows, cols = tile_shape(n_in)
    tiles = np.full((n_out, rows * cols), np.nan)
    tiles[:, :n_in] = W
    tiles = tiles.reshape(n_out, rows, cols)
    vmax = float(np.percentile(np.abs(W), 99.5)) if W.size else 1.0
    if not np.isfinite(vmax) or vmax <= 0:
        vmax = float(np.max(np.abs(W))) if W.size and np.max(np.abs(W)) > 0 else 1.0

    grid_rows, grid_cols = _grid(n_out, rows / cols)
    tile_w = 0.9 if n_out > 16 else 1.4
    tile_h = tile_w * rows / cols
    fig = _figure(figsize=(grid_cols * tile_w + 1.2, grid_rows * (tile_h + 0.18) + 0.7),
                  layout="constrained")
    axes = fig.subplots(grid_rows, grid_cols, squeeze=False)
    image = None
    for idx, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if idx >= n_out:
            ax.set_axis_off()
            continue
        image = ax.imshow(tiles[idx], cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                          interpolation="nearest")
        ax.set_title(f"j={idx}", fontsize=7, pad=2)
        for spine in ax.spines.values():
            spine.set_linewidth(0.3)
    sizes = net.sizes
    head = f"incoming weights $w^{{{layer}}}_{{jk}}$ of the {n_out} neurons of layer {layer}"
    tail = f"({sizes[layer - 1]} inputs as {rows}x{cols} images)"
    title = fig.suptitle(f"{head} {tail}", fontsize=10)
    # A few tiles make a figure narrower than its title: break the title in two, and
    # widen the figure if even that does not fit.
    renderer = fig.canvas.get_renderer()
    margin = 0.2 * fig.dpi
    if title.get_window_extent(renderer).width > fig.bbox.width - margin:
        title.set_text(f"{head}\n{tail}")
        needed = (title.get_window_extent(renderer).width + margin) / fig.dpi
        if needed > fig.get_figwidth():
            fig.set_figwidth(needed)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6 if grid_rows > 2 else 0.9, label="weight",
                     extend="both")
    _save(fig, path, dpi=110)
    return fig
