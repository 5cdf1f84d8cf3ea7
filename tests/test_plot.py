"""fastbp.plot: learning curves and weight tiles (skipped without matplotlib)."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastbp
from fastbp import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _matplotlib():
    return pytest.importorskip("matplotlib")


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    import matplotlib.image
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and min(image.shape[:2]) > 50


@pytest.fixture(scope="module")
def trained():
    """A small digits network and the History of its training."""
    X, y = fastbp.datasets.load_digits()
    net = fastbp.Network([64, 12, 10], activation="relu", output="softmax", cost="log_loss", seed=0)
    trainer = fastbp.Trainer(net, fastbp.Adam(lr=1e-2), batch_size=32, seed=0)
    history = trainer.fit(X[:1200], y[:1200], epochs=4, validation_data=(X[1200:], y[1200:]),
                          progress=False)
    return net, history


# --------------------------------------------------------------------------- #
# history
# --------------------------------------------------------------------------- #

def test_history_returns_a_figure_and_writes_png(tmp_path, trained):
    _matplotlib()
    from matplotlib.figure import Figure
    _, history = trained
    fig = plot.history(history, tmp_path / "curves.png")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2                          # loss, validation accuracy
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["training loss"].get_ydata(), history.loss)
    np.testing.assert_allclose(lines["validation loss"].get_ydata(), history.val_loss)
    np.testing.assert_array_equal(lines["training loss"].get_xdata(), [1, 2, 3, 4])
    np.testing.assert_allclose(acc_ax.get_lines()[0].get_ydata(), history.val_accuracy)
    assert_png(tmp_path / "curves.png")


def test_history_without_validation_and_from_a_dict(tmp_path):
    _matplotlib()
    fig = plot.history({"loss": [2.0, 1.0, 0.5]})
    assert len(fig.axes) == 1
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["training loss"]
    fig = plot.history(fastbp.History(loss=[1.0, -0.5]), str(tmp_path / "c.png"))  # not log scale
    assert fig.axes[0].get_yscale() == "linear"
    assert_png(tmp_path / "c.png")


def test_history_other_formats(tmp_path, trained):
    _matplotlib()
    plot.history(trained[1], tmp_path / "curves.svg")
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")


def test_history_empty_is_refused():
    _matplotlib()
    with pytest.raises(ValueError, match="no epochs"):
        plot.history(fastbp.History())


@pytest.mark.parametrize("h", [None, [1.0, 2.0, 3.0], "abc", 3.5])
def test_history_of_the_wrong_kind_is_a_type_error(h):
    with pytest.raises(TypeError, match=r"h must be a fastbp\.History or a dict.*got " + type(h).__name__):
        plot.history(h)


def test_history_lists_of_different_lengths_or_kinds_are_refused():
    _matplotlib()
    with pytest.raises(ValueError, match=r"one value per epoch each; got 3 loss, 1 val_loss and 2 "):
        plot.history({"loss": [1, 2, 3], "val_loss": [1], "val_accuracy": [0.5, 0.6]})
    with pytest.raises(TypeError, match=r"h's 'loss' must be a list of numbers"):
        plot.history({"loss": 1.0})


def test_a_path_is_written_exactly_and_a_directory_or_empty_path_is_refused(tmp_path, trained):
    _matplotlib()
    net, history = trained
    for draw in (lambda path: plot.history(history, path), lambda path: plot.weights(net, path)):
        for bad, words in ((tmp_path, "is a directory"), ("", "empty")):
            with pytest.raises(ValueError, match=words):
                draw(bad)
        draw(tmp_path / "curves")                  # no suffix: PNG, under exactly that name
        assert_png(tmp_path / "curves")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["curves"]
        (tmp_path / "curves").unlink()


# --------------------------------------------------------------------------- #
# weights
# --------------------------------------------------------------------------- #

def _images(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


def test_weights_digits_tiles(tmp_path, trained):
    _matplotlib()
    from matplotlib.figure import Figure
    net, _ = trained
    fig = plot.weights(net, tmp_path / "w.png")
    assert isinstance(fig, Figure)
    images = _images(fig)
    assert len(images) == 12
    for j, im in enumerate(images):                    # tile j is w^1_j. as 8x8, row-major
        np.testing.assert_array_equal(im.get_array(), net.weights[0][j].reshape(8, 8))
        vmin, vmax = im.get_clim()
        assert vmin == -vmax and vmax > 0               # diverging scale centred at 0
    assert len({im.get_clim() for im in images}) == 1   # one shared scale
    assert_png(tmp_path / "w.png")


def test_weights_28x28_tiles_and_other_widths():
    _matplotlib()
    net = fastbp.Network([784, 5, 3], seed=0)
    images = _images(plot.weights(net))
    assert len(images) == 5 and images[0].get_array().shape == (28, 28)
    net = fastbp.Network([7, 4, 3], seed=0)           # 7 inputs: a 3x3 tile, two cells blank
    images = _images(plot.weights(net))
    a = images[2].get_array()
    assert a.shape == (3, 3)
    np.testing.assert_array_equal(np.ravel(a)[:7], net.weights[0][2])
    assert np.ma.getmaskarray(a).ravel()[7:].all() or np.isnan(np.ravel(a.data)[7:]).all()


def test_weights_layer_and_neurons(tmp_path, trained):
    _matplotlib()
    net, _ = trained
    images = _images(plot.weights(net, layer=2, neurons=4))
    assert len(images) == 4
    assert images[0].get_array().shape == plot.tile_shape(12) == (3, 4)
    np.testing.assert_array_equal(images[3].get_array(), net.weights[1][3].reshape(3, 4))


def test_weights_bad_arguments(trained):
    _matplotlib()
    net, _ = trained
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.2"):
        plot.weights(net, layer=3)
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.2"):
        plot.weights(net, layer=0)
    with pytest.raises(TypeError, match="fastbp.Network"):
        plot.weights(net.weights)


@pytest.mark.parametrize("n, shape", [(784, (28, 28)), (64, (8, 8)), (1, (1, 1)), (2, (1, 2)),
                                      (12, (3, 4)), (30, (5, 6)), (7, (3, 3)), (26, (5, 6)),
                                      (100, (10, 10)), (3, (1, 3))])
def test_tile_shape(n, shape):
    rows, cols = plot.tile_shape(n)
    assert (rows, cols) == shape and rows * cols >= n


def test_tile_shape_bad_arguments():
    assert plot.tile_shape(np.int64(64)) == (8, 8)
    for n in (2.7, 64.0, "a", None, True):
        with pytest.raises(TypeError, match="n must be an integer"):
            plot.tile_shape(n)
    for n in (0, -3):
        with pytest.raises(ValueError, match=f"n must be >= 1; got {n}"):
            plot.tile_shape(n)


@pytest.mark.parametrize("neurons", [1, 2, 4, 8])
def test_weights_title_fits_a_narrow_figure(neurons):
    _matplotlib()
    net = fastbp.Network([64, 8, 10], seed=0)
    fig = plot.weights(net, neurons=neurons)
    fig.canvas.draw()
    title = fig.get_suptitle()
    assert "8x8 images" in title
    extent = next(t for t in fig.texts if t.get_text() == title).get_window_extent()
    assert 0 <= extent.x0 and extent.x1 <= fig.bbox.width, (extent, fig.bbox)


# --------------------------------------------------------------------------- #
# without matplotlib, and without pyplot
# --------------------------------------------------------------------------- #

def test_missing_matplotlib_gives_a_clear_import_error(monkeypatch, trained):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"fastbp.plot needs matplotlib: pip install fastbp\[plot\]"):
        plot.history(trained[1])
    with pytest.raises(ImportError, match=r"fastbp.plot needs matplotlib"):
        plot.weights(trained[0])


def test_import_needs_no_matplotlib_and_plots_need_no_pyplot(tmp_path):
    _matplotlib()
    code = textwrap.dedent(f"""
        import sys
        import fastbp, fastbp.plot
        assert "matplotlib" not in sys.modules          # imported lazily
        fastbp.plot.history({{"loss": [1.0, 0.5], "val_loss": [1.1, 0.6],
                              "val_accuracy": [0.5, 0.7]}}, {str(tmp_path / "h.png")!r})
        fastbp.plot.weights(fastbp.Network([4, 2]), {str(tmp_path / "w.png")!r})
        assert "matplotlib" in sys.modules
        assert "matplotlib.pyplot" not in sys.modules   # no global figures, no display
    """)
    env = {"MPLBACKEND": "TkAgg", "DISPLAY": ""}        # a GUI backend must not matter
    import os
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **env}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_png(tmp_path / "h.png")
    assert_png(tmp_path / "w.png")
