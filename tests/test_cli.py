"""The `fastbp` command line, end to end through subprocesses (``python -m fastbp``).

Every run happens in a temporary directory, so nothing is written to the
checkout (the benchmark suite runs from the package, as fastbp.benchmarks).
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp import Network

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

try:
    import matplotlib  # noqa: F401
    HAVE_MATPLOTLIB = True
except ImportError:
    HAVE_MATPLOTLIB = False
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib")

TINY = ["--epochs", "2", "--layers", "64,8,10", "--no-progress"]


def _env(extra_path=None):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("FASTBP_TRACEBACK", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    return env


def fastbp_cli(*args, cwd, extra_path=None, timeout=300):
    """Run ``python -m fastbp ARGS`` in `cwd`; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "fastbp", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=_env(extra_path))


def ok(*args, cwd, **kwargs):
    r = fastbp_cli(*args, cwd=cwd, **kwargs)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    return r


def usage_error(*args, cwd, match=None, **kwargs):
    """The run fails with status 2 and exactly one line ``fastbp: error: ...`` on stderr."""
    r = fastbp_cli(*args, cwd=cwd, **kwargs)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("fastbp: error: "), r.stderr
    if match is not None:
        assert re.search(match, lines[0]), lines[0]
    return lines[0]


def assert_png(path):
    path = Path(path)
    assert path.is_file()
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    if HAVE_MATPLOTLIB:
        import matplotlib.image
        image = matplotlib.image.imread(str(path))
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_accuracy(stdout):
    m = re.search(r"test accuracy: ([0-9.]+) \((\d+) of (\d+) test examples\)", stdout)
    assert m, stdout
    return float(m.group(1)), int(m.group(2)), int(m.group(3))


test_accuracy.__test__ = False    # a helper, not a test


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small network trained on the digits by `fastbp train --save`, and that run's output."""
    d = tmp_path_factory.mktemp("model")
    r = ok("train", *TINY, "--epochs", "4", "--save", "m.npz", cwd=d)
    return d / "m.npz", r.stdout


# --------------------------------------------------------------------------- #
# help and version
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("command", ["train", "evaluate", "gradcheck", "explain", "show"])
def test_help_of_each_command(tmp_path, command):
    r = ok(command, "--help", cwd=tmp_path)
    assert r.stdout.startswith(f"usage: fastbp {command}")
    assert "--" in r.stdout


def test_help_lists_every_command(tmp_path):
    r = ok("--help", cwd=tmp_path)
    for command in ("train", "evaluate", "gradcheck", "explain", "show", "bench"):
        assert command in r.stdout
    assert "dC0/dw^L_jk" in r.stdout


def test_train_help_states_the_defaults(tmp_path):
    out = ok("train", "--help", cwd=tmp_path).stdout
    for text in ("--validation-split", "--early-stopping", "--progress", "--no-progress",
                 "fashion-mnist", "default: 20", "default: adam"):
        assert text in out, text


def test_version(tmp_path):
    assert ok("--version", cwd=tmp_path).stdout.strip() == f"fastbp {fastbp.__version__}"


def test_console_script():
    script = shutil.which("fastbp", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the fastbp console script is not installed next to this Python")
    r = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60, env=_env())
    assert r.returncode == 0 and r.stdout.strip() == f"fastbp {fastbp.__version__}"


# --------------------------------------------------------------------------- #
# train
# --------------------------------------------------------------------------- #

def test_train_default_is_the_main_job(tmp_path):
    """Plain `fastbp train`: the shipped digits, a few seconds, a good accuracy."""
    r = ok("train", cwd=tmp_path)
    out = r.stdout
    assert "digits: 1212 training, 135 validation, 450 test examples" in out
    assert "64-32-10, relu hidden, softmax output, log_loss cost, float64" in out
    assert "Adam(lr=0.01" in out
    epochs = re.findall(r"^epoch +(\d+)/20  loss [0-9.]+  val_loss [0-9.]+  val_accuracy [0-9.]+",
                        out, re.M)
    assert epochs == [str(e) for e in range(1, 21)]
    accuracy, correct, n = test_accuracy(out)
    assert n == 450 and accuracy > 0.95
    assert re.search(r"^throughput: [0-9,]+ examples/s \(20 epochs of 1212 examples", out, re.M)
    assert list(tmp_path.iterdir()) == []       # writes nothing unless asked


def test_train_is_reproducible(tmp_path):
    def run():
        out = ok("train", *TINY, "--seed", "3", cwd=tmp_path).stdout
        return [line.split("(")[0] for line in out.splitlines()
                if line.startswith(("epoch", "test accuracy"))]
    assert run() == run()


@needs_matplotlib
def test_train_saves_model_and_curves(tmp_path):
    r = ok("train", *TINY, "--save", "m.npz", "--plot", "curves.png", cwd=tmp_path)
    assert "saved the network to m.npz" in r.stdout
    assert "saved the learning curves to curves.png" in r.stdout
    net = Network.load(tmp_path / "m.npz")
    assert net.sizes == [64, 8, 10]
    assert (net.activation, net.output, net.cost_name) == ("relu", "softmax", "log_loss")
    accuracy, correct, n = test_accuracy(r.stdout)
    assert n == 450 and 0 <= correct <= n
    assert_png(tmp_path / "curves.png")


def test_train_options(tmp_path):
    r = ok("train", "--layers", "64,16,16,10", "--activation", "tanh", "--output", "sigmoid",
           "--optimizer", "sgd", "--lr", "0.5", "--momentum", "0.9", "--batch-size", "17",
           "--epochs", "3", "--l2", "1e-4", "--dtype", "float32", "--seed", "1",
           "--validation-split", "0.2", "--save", "m.npz", "--no-progress", cwd=tmp_path)
    out = r.stdout
    assert "64-16-16-10, tanh hidden, sigmoid output, cross_entropy cost, float32" in out
    assert "SGD(lr=0.5, momentum=0.9" in out and "batch size 17" in out and "l2 0.0001" in out
    assert "digits: 1077 training, 270 validation, 450 test" in out
    net = Network.load(tmp_path / "m.npz")
    assert net.dtype == np.float32 and net.cost_name == "cross_entropy"


def test_train_without_validation(tmp_path):
    out = ok("train", *TINY, "--validation-split", "0", cwd=tmp_path).stdout
    assert "1347 training, 450 test" in out
    assert re.search(r"^epoch 1/2  loss [0-9.]+  \(", out, re.M)
    assert "val_accuracy" not in out


def test_train_early_stopping(tmp_path):
    out = ok("train", *TINY, "--epochs", "30", "--early-stopping", "1", "--lr", "0.05",
             cwd=tmp_path).stdout
    m = re.search(r"^early stopping: (stopped after epoch (\d+); )?restored epoch (\d+) "
                  r"\(val_loss ([0-9.]+)\)", out, re.M)
    assert m, out
    val_losses = [float(v) for v in re.findall(r"val_loss ([0-9.]+)  val_acc", out)]
    assert float(m.group(4)) == min(val_losses)


def test_train_progress_bar(tmp_path):
    r = ok("train", *TINY, "--progress", cwd=tmp_path)
    assert "epoch 1" in r.stderr          # the bar (tqdm or the plain one) goes to stderr
    assert test_accuracy(r.stdout)[0] > 0
    r = ok("train", *TINY, "--no-progress", cwd=tmp_path)
    assert r.stderr == ""


def _write_blobs(path, n=120, n_features=5, n_classes=3, seed=0, test=False):
    """A small, well-separated classification problem as an .npz file."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, n_features))
    y = rng.integers(0, n_classes, n)
    X = centres[y] + rng.normal(0, 1, (n, n_features))
    arrays = {"X": X, "y": y}
    if test:
        arrays["X_test"], arrays["y_test"] = X[:30], y[:30]
    np.savez(path, **arrays)


def test_train_on_an_npz_file(tmp_path):
    _write_blobs(tmp_path / "blobs.npz")
    r = ok("train", "--data", "blobs.npz", "--epochs", "30", "--save", "m.npz", cwd=tmp_path)
    assert "blobs.npz: 81 training, 9 validation, 30 test examples (a fixed test quarter) of 5 features" in r.stdout
    assert "5-32-3," in r.stdout          # the default network for a file
    assert test_accuracy(r.stdout)[0] >= 0.9
    assert Network.load(tmp_path / "m.npz").sizes == [5, 32, 3]
    # evaluate needs --data for a 5-input network, and uses the same test quarter
    r2 = ok("evaluate", "m.npz", "--data", "blobs.npz", cwd=tmp_path)
    assert f"accuracy: {test_accuracy(r.stdout)[0]:.4f}" in r2.stdout


def test_train_on_an_npz_file_with_its_own_test_set(tmp_path):
    _write_blobs(tmp_path / "blobs.npz", test=True)
    r = ok("train", "--data", "blobs.npz", "--epochs", "2", "--layers", "5,4,3", cwd=tmp_path)
    assert "30 test examples (its X_test, y_test)" in r.stdout


def test_train_on_images_with_one_hot_targets(tmp_path):
    X, y = fastbp.datasets.load_digits()
    np.savez(tmp_path / "img.npz", X=X.reshape(-1, 8, 8)[:300],
             y=fastbp.datasets.one_hot(y[:300], 10))
    r = ok("train", "--data", "img.npz", "--epochs", "2", cwd=tmp_path)
    assert "of 64 features" in r.stdout and "64-32-10," in r.stdout


def _write_binary(path, n=200, n_features=5, seed=0):
    """A 0/1 target as one column, learnable from the first feature."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_features))
    np.savez(path, X=X, y=(X[:, :1] > 0.5).astype(float))


def test_train_one_output_defaults_to_sigmoid(tmp_path):
    # a softmax over one unit is always 1: nothing would be learned
    _write_binary(tmp_path / "bin1.npz")
    r = ok("train", "--data", "bin1.npz", "--epochs", "40", "--save", "m.npz", cwd=tmp_path)
    assert "5-32-1, relu hidden, sigmoid output, cross_entropy cost" in r.stdout
    assert test_accuracy(r.stdout)[0] >= 0.8
    net = Network.load(tmp_path / "m.npz")
    assert (net.output, net.cost_name) == ("sigmoid", "cross_entropy")
    # 0/1 labels (1-D) with one output unit: the same default
    _write_blobs(tmp_path / "two.npz", n_classes=2)
    r = ok("train", "--data", "two.npz", "--layers", "5,8,1", "--epochs", "2", cwd=tmp_path)
    assert "5-8-1, relu hidden, sigmoid output, cross_entropy cost" in r.stdout
    r = ok("gradcheck", "--layers", "5,4,1", cwd=tmp_path)
    assert "sigmoid output, cross_entropy cost" in r.stdout


def test_train_softmax_with_one_output_is_a_usage_error(tmp_path):
    _write_binary(tmp_path / "bin1.npz")
    for args in (["--data", "bin1.npz"], ["--layers", "64,8,1"]):
        r = fastbp_cli("train", *args, "--output", "softmax", cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        assert re.fullmatch(r"fastbp: error: --output softmax needs at least 2 output units.*"
                            r"always 1.*--output sigmoid.*\n", r.stderr), r.stderr


@needs_matplotlib
def test_train_plot_format_is_checked_before_training(tmp_path):
    for name in ("c.xyz", "curves"):
        r = fastbp_cli("train", *TINY, "--plot", name, "--save", "m2.npz", cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        assert re.fullmatch(rf"fastbp: error: --plot '{name}'.*expected .*png.*svg.*\n", r.stderr), r.stderr
    assert list(tmp_path.iterdir()) == []
    ok("train", *TINY, "--plot", "C.SVG", cwd=tmp_path)     # the suffix in any case
    assert (tmp_path / "C.SVG").is_file()


def test_train_into_a_closed_pipe_exits_quietly(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "fastbp", "train", *TINY], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    p.stdout.close()                    # the reader goes away before the first line
    stderr = p.stderr.read().decode()
    assert p.wait(timeout=300) == 1 and stderr == "", stderr


# --------------------------------------------------------------------------- #
# evaluate
# --------------------------------------------------------------------------- #

def test_evaluate(digits_model, tmp_path):
    model, train_out = digits_model
    r = ok("evaluate", model, cwd=tmp_path)
    out = r.stdout
    accuracy, correct, n = test_accuracy(train_out)
    assert f"accuracy: {accuracy:.4f} ({correct} of {n})" in out   # the same test quarter
    assert "digits: 450 test examples (a fixed test quarter)" in out
    assert re.search(r"^cost C: +[0-9.]+$", out, re.M)
    table = out[out.index("confusion matrix"):].splitlines()
    assert "recall" in table[1]
    rows = table[2:]
    assert len(rows) == 10
    counts = np.array([[int(v) for v in row.split()[1:11]] for row in rows])
    assert counts.sum() == 450 and np.trace(counts) == correct
    assert counts.sum(axis=1).tolist() == np.bincount(_digits_test_labels(), minlength=10).tolist()


def _digits_test_labels():
    X, y = fastbp.datasets.load_digits()
    return fastbp.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)[3]


# --------------------------------------------------------------------------- #
# gradcheck
# --------------------------------------------------------------------------- #

def _gradcheck_rows(out):
    return re.findall(r"^ +(\d+)  ([Wb])\^(\d+) +([0-9x]+)  ([0-9.e+-]+)$", out, re.M)


def test_gradcheck_new_network(tmp_path):
    r = ok("gradcheck", cwd=tmp_path)
    rows = _gradcheck_rows(r.stdout)
    assert [(l, s) for l, s, _, _, _ in rows] == [("1", "W"), ("1", "b"), ("2", "W"), ("2", "b")]
    assert [shape for *_, shape, _ in rows] == ["32x64", "32", "10x32", "10"]
    assert all(float(e) < 1e-6 for *_, e in rows)
    m = re.search(r"largest relative difference: ([0-9.e+-]+) \(threshold 1e-06\): OK", r.stdout)
    assert m and float(m.group(1)) == max(float(e) for *_, e in rows)


def test_gradcheck_saved_model_float32_and_random_data(tmp_path, digits_model):
    r = ok("gradcheck", digits_model[0], "--examples", "3", cwd=tmp_path)
    assert "the first 3 test examples of digits" in r.stdout and ": OK" in r.stdout
    r = ok("gradcheck", "--layers", "5,4,3", "--activation", "sigmoid", "--output", "sigmoid",
           "--dtype", "float32", cwd=tmp_path)
    assert "10 random examples" in r.stdout and "threshold 0.01): OK" in r.stdout
    assert len(_gradcheck_rows(r.stdout)) == 4


def test_gradcheck_of_a_model_refuses_options_that_describe_a_new_network(tmp_path, digits_model):
    for option, value in (("--dtype", "float32"), ("--activation", "tanh"), ("--cost", "quadratic")):
        usage_error("gradcheck", digits_model[0], option, value, cwd=tmp_path,
                    match=rf"{option} describe a new network; .* has its own layout")


def test_gradcheck_network_for_an_npz_file(tmp_path):
    _write_blobs(tmp_path / "blobs.npz")
    r = ok("gradcheck", "--data", "blobs.npz", "--examples", "4", "--activation", "tanh", cwd=tmp_path)
    assert "a new network (5-32-3): tanh hidden" in r.stdout
    assert "the first 4 test examples of blobs.npz" in r.stdout and ": OK" in r.stdout


def test_gradcheck_failure_exits_1(tmp_path):
    r = fastbp_cli("gradcheck", "--layers", "4,3,2", "--threshold", "1e-300", cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "FAILED" in r.stdout and r.stderr == ""


def test_gradcheck_eps_too_small_is_a_usage_error(tmp_path):
    for dtype, eps in (("float64", "1e-300"), ("float32", "1e-12")):
        r = fastbp_cli("gradcheck", "--dtype", dtype, "--eps", eps, cwd=tmp_path)
        # refused before the report starts; one line, no traceback
        assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
        assert re.fullmatch(rf"fastbp: error: eps={eps} is too small to change weights\[0\]\[0, 0\] "
                            rf"\(= \S+\) in {dtype}; use a larger eps\n", r.stderr), r.stderr


# --------------------------------------------------------------------------- #
# explain
# --------------------------------------------------------------------------- #

def _explain_values(out):
    mean = float(re.search(r"= mean of the products += ([-+0-9.e]+)", out).group(1))
    backprop = float(re.search(r"backprop's weights\[\d+\]\[\d+, \d+\] += ([-+0-9.e]+)", out).group(1))
    return mean, backprop


def test_explain_hidden_layer(tmp_path, digits_model):
    out = ok("explain", digits_model[0], "--layer", "1", "--j", "3", "--k", "20", "--examples", "40",
             cwd=tmp_path).stdout
    assert "dz/dw  = a^(0)_20" in out
    assert "da/dz  = sigma'(z^1_3)" in out
    assert "dC0/da = dC0/da^1_3" in out
    assert "the first 40 test examples of digits" in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["example"])
    assert lines[header].split() == ["example", "dz/dw", "da/dz", "dC0/da", "product"]
    rows = [line.split() for line in lines[header + 1:header + 6]]
    assert [r[0] for r in rows] == ["0", "1", "2", "3", "4"]
    for r in rows:                      # the product of the three factors, per example
        dz, da, dc, prod = map(float, r[1:])
        assert prod == pytest.approx(dz * da * dc, rel=1e-4, abs=1e-12)
    mean, backprop = _explain_values(out)
    assert mean == pytest.approx(backprop, rel=1e-9, abs=1e-15)
    net = Network.load(digits_model[0])
    X, y = fastbp.datasets.load_digits()
    Xt, yt = fastbp.datasets.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)[1::2]
    assert backprop == pytest.approx(net.backprop(Xt[:40], yt[:40]).weights[0][3, 20], rel=1e-9)


def test_explain_softmax_output_layer(tmp_path, digits_model):
    out = ok("explain", digits_model[0], cwd=tmp_path).stdout      # default: layer L, j = k = 0
    assert "dC/dw^2_0,0" in out and "weights[1][0, 0]" in out
    assert "dC0/dz^2_0 = a^2_0 - y_0" in out       # softmax: the two factors come as one
    mean, backprop = _explain_values(out)
    assert mean == pytest.approx(backprop, rel=1e-9, abs=1e-15)


def test_explain_elementwise_output_layer(tmp_path):
    ok("train", "--layers", "64,6,10", "--activation", "sigmoid", "--output", "sigmoid",
       "--cost", "quadratic", "--epochs", "1", "--save", "q.npz", cwd=tmp_path)
    out = ok("explain", "q.npz", "--layer", "2", "--j", "9", "--k", "5", "--show", "2",
             cwd=tmp_path).stdout
    assert "dz/dw  = a^(1)_5" in out and "sigma'(z^2_9)   (sigmoid')" in out
    assert "dC0/da = dC0/da^2_9   (from the cost)" in out
    mean, backprop = _explain_values(out)
    assert mean == pytest.approx(backprop, rel=1e-9, abs=1e-15)


# --------------------------------------------------------------------------- #
# show
# --------------------------------------------------------------------------- #

@needs_matplotlib
def test_show_checks_the_image_format(tmp_path, digits_model):
    usage_error("show", digits_model[0], "--out", "w.xyz", cwd=tmp_path, match=r"--out 'w.xyz'.*png")
    assert not (tmp_path / "w.xyz").exists()


@needs_matplotlib
def test_show(tmp_path, digits_model):
    r = ok("show", digits_model[0], "--out", "w.png", cwd=tmp_path)
    assert "8 neurons of layer 1 as 8x8 images" in r.stdout
    assert_png(tmp_path / "w.png")
    r = ok("show", digits_model[0], "--out", "w2.png", "--layer", "2", "--neurons", "3", cwd=tmp_path)
    assert "3 neurons of layer 2 as 2x4 images" in r.stdout
    assert_png(tmp_path / "w2.png")


# --------------------------------------------------------------------------- #
# bench
# --------------------------------------------------------------------------- #

def test_bench_checks_its_arguments_before_running(tmp_path):
    (tmp_path / "taken").write_text("x")
    for args, match in ((["--out", "taken"], r"--out 'taken' exists and is not a directory"),
                        (["--out", ""], r"--out needs a directory name"),
                        (["--workloads", ""], r"--workloads must name some of")):
        line = usage_error("bench", "--quick", *args, cwd=tmp_path, match=match)
        assert "see 'fastbp bench --help'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_bench_runs_from_the_installed_package_anywhere(tmp_path):
    """The suite ships as fastbp.benchmarks: no checkout needed (cwd is empty)."""
    r = ok("bench", "--help", cwd=tmp_path)
    assert r.stdout.startswith("usage: fastbp bench [-h]"), r.stdout
    assert "--quick" in r.stdout and "python -m benchmarks" not in r.stdout
    for args, match in ((["--bogus"], "unrecognized arguments: --bogus"),
                        (["--repeats", "x"], "--repeats: invalid int value: 'x'"),
                        (["--workloads", "W9"], r"unknown workload\(s\) \['W9'\]")):
        usage_error("bench", *args, cwd=tmp_path, match=rf"{match}.*\(see 'fastbp bench --help'\)$")


@pytest.mark.slow
def test_bench_quick_runs_and_records_its_own_command(tmp_path):
    ok("bench", "--quick", "--no-plot", "--workloads", "W1,infer", "--dtypes", "float32",
       "--repeats", "1", "--out", tmp_path / "bench", cwd=tmp_path, timeout=900)
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert record["command"].startswith("fastbp bench --quick --no-plot --workloads W1,infer")
    assert (tmp_path / "bench" / "table.txt").read_text().startswith(
        "fastbp benchmark suite: fastbp bench --quick")


# --------------------------------------------------------------------------- #
# errors: one line, status 2, no traceback
# --------------------------------------------------------------------------- #

def test_empty_save_and_plot_names_are_usage_errors(tmp_path):
    for option in ("--save", "--plot"):
        usage_error("train", option, "", cwd=tmp_path, match=rf"{option} needs a file name")
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_is_one_line_not_a_traceback(tmp_path):
    r = fastbp_cli("train", "--layers", "64,2000000000,10", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: out of memory"), r.stderr


def test_divergence_exits_1_with_one_line(tmp_path):
    r = fastbp_cli("train", "--activation", "identity", "--output", "identity", "--cost", "quadratic",
                   "--optimizer", "sgd", "--lr", "1e100", "--epochs", "3", "--no-progress", cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastbp: error: the cost became NaN or infinite")


def test_error_no_command(tmp_path):
    usage_error(cwd=tmp_path, match="missing command")


@pytest.mark.parametrize("args, match", [
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--data", "missing.npz"], "missing.npz.*no such file"),
    (["train", "--layers", "64,abc,10"], "--layers.*64,32,10"),
    (["train", "--layers", "64"], "--layers"),
    (["train", "--layers", "64,0,10"], "--layers"),
    (["train", "--layers", "10,5"], "64 features per example but --layers 10,5 starts with 10"),
    (["train", "--layers", "64,32,5"], r"labels 0\.\.9 \(10 classes\) but --layers 64,32,5 ends with 5"),
    (["train", "--activation", "softmax"], "invalid choice: 'softmax'"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--dtype", "float16"], "invalid choice: 'float16'"),
    (["train", "--lr", "-1"], "--lr.*positive"),
    (["train", "--lr", "abc"], "--lr"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--batch-size", "2.5"], "--batch-size"),
    (["train", "--validation-split", "1"], r"--validation-split.*\[0, 1\)"),
    (["train", "--momentum", "0.9"], "--momentum is for --optimizer sgd"),
    (["train", "--output", "sigmoid", "--cost", "log_loss"], "log_loss cost requires a softmax"),
    (["train", "--early-stopping", "2", "--validation-split", "0"], "--early-stopping needs"),
    (["train", "--save", "no/such/dir/m.npz"], "--save.*does not exist"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "extra"], r"unrecognized arguments: extra \(see 'fastbp train --help'\)$"),
    (["evaluate", "missing.npz"], "missing.npz"),
    (["evaluate"], "required: MODEL.npz"),
    (["show", "m.npz"], "required: --out"),
    (["gradcheck", "--examples", "0"], "--examples"),
])
def test_error_exits(tmp_path, args, match):
    usage_error(*args, cwd=tmp_path, match=match)


def test_error_malformed_files(tmp_path):
    (tmp_path / "text.npz").write_text("not a zip file\n")
    usage_error("evaluate", "text.npz", cwd=tmp_path, match="text.npz.*not a valid fastbp network file")
    usage_error("show", "text.npz", "--out", "w.png", cwd=tmp_path, match="not a valid fastbp network")
    usage_error("train", "--data", "text.npz", cwd=tmp_path, match="text.npz' is not an .npz archive")
    (tmp_path / "bad.npz").write_bytes(np.random.default_rng(0).bytes(200))
    usage_error("train", "--data", "bad.npz", cwd=tmp_path, match="bad.npz' is not an .npz archive")
    (tmp_path / "empty.npz").write_bytes(b"")
    usage_error("train", "--data", "empty.npz", cwd=tmp_path, match="empty.npz' is empty")
    np.save(tmp_path / "arr.npy", np.zeros((4, 3)))
    usage_error("train", "--data", "arr.npy", cwd=tmp_path,
                match=r"arr.npy' holds a single array \(.npy\); expected an .npz with arrays X and y")
    np.savez(tmp_path / "noy.npz", X=np.zeros((10, 64)))
    usage_error("train", "--data", "noy.npz", cwd=tmp_path, match=r"missing array\(s\) y")
    np.savez(tmp_path / "obj.npz", X=np.array([object()] * 4), y=np.arange(4))
    usage_error("train", "--data", "obj.npz", cwd=tmp_path, match="obj.npz.*not a readable")
    np.savez(tmp_path / "nan.npz", X=np.full((8, 3), np.nan), y=np.zeros(8, dtype=int))
    usage_error("train", "--data", "nan.npz", cwd=tmp_path, match="NaN")
    np.savez(tmp_path / "short.npz", X=np.zeros((8, 3)), y=np.zeros(5, dtype=int))
    usage_error("train", "--data", "short.npz", cwd=tmp_path, match=r"y must have shape \(8,\)")
    # a model file that np.load reads but whose contents are not a network
    np.savez(tmp_path / "notnet.npz", W1=np.zeros((3, 2)))
    usage_error("explain", "notnet.npz", cwd=tmp_path, match="not a valid fastbp network")


def test_error_model_and_data_do_not_fit(tmp_path, digits_model):
    _write_blobs(tmp_path / "blobs.npz")
    usage_error("evaluate", digits_model[0], "--data", "blobs.npz", cwd=tmp_path,
                match=r"5 features per example but the network in .*m.npz \(64-8-10\) starts with 64")
    ok("train", "--data", "blobs.npz", "--epochs", "1", "--save", "b.npz", cwd=tmp_path)
    usage_error("evaluate", "b.npz", cwd=tmp_path, match="takes 5 inputs: say which data set with --data")
    usage_error("explain", digits_model[0], "--layer", "3", cwd=tmp_path, match=r"--layer must be in 1\.\.2")
    usage_error("explain", digits_model[0], "--layer", "1", "--j", "8", cwd=tmp_path,
                match=r"--j must be in 0\.\.7")
    usage_error("explain", digits_model[0], "--k", "8", cwd=tmp_path, match=r"--k must be in 0\.\.7")
    usage_error("show", digits_model[0], "--out", "w.png", "--layer", "5", cwd=tmp_path,
                match=r"--layer must be in 1\.\.2")
    usage_error("gradcheck", digits_model[0], "--layers", "64,10", cwd=tmp_path, match="not both")


def test_error_without_matplotlib(tmp_path, digits_model):
    stub = tmp_path / "stub"
    (stub / "matplotlib").mkdir(parents=True)
    (stub / "matplotlib" / "__init__.py").write_text("raise ImportError('matplotlib hidden by a test')\n")
    usage_error("train", *TINY, "--plot", "c.png", cwd=tmp_path, extra_path=stub,
                match=r"--plot needs matplotlib: pip install fastbp\[plot\]")
    usage_error("show", digits_model[0], "--out", "w.png", cwd=tmp_path, extra_path=stub,
                match=r"needs matplotlib: pip install fastbp\[plot\]")
    assert not (tmp_path / "c.png").exists()


# --------------------------------------------------------------------------- #
# Fashion-MNIST through the command line
# --------------------------------------------------------------------------- #

def test_fashion_mnist_missing_says_how_the_cli_finds_it(tmp_path, monkeypatch, capsys):
    from fastbp import cli
    monkeypatch.setattr(fastbp.datasets, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.delenv("FASTBP_TRACEBACK", raising=False)
    assert cli.main(["train", "--data", "fashion-mnist"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("fastbp: error: "), err
    assert str(tmp_path / "nowhere") in err and "t10k-labels-idx1-ubyte" in err
    assert "dataset-fashion-mnist" in err and "FASHION_MNIST_DIR" in err
    assert "`path`" not in err


@pytest.mark.slow
def test_fashion_mnist_train_and_evaluate(tmp_path):
    try:
        fastbp.datasets.load_fashion_mnist()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    r = ok("train", "--data", "fashion-mnist", "--layers", "784,16,10", "--epochs", "1",
           "--batch-size", "128", "--lr", "3e-3", "--dtype", "float32", "--save", "f.npz",
           cwd=tmp_path, timeout=900)
    assert "fashion-mnist: 54000 training, 6000 validation, 10000 test examples (its test set)" in r.stdout
    accuracy = test_accuracy(r.stdout)[0]
    assert accuracy > 0.7
    out = ok("evaluate", "f.npz", cwd=tmp_path, timeout=900).stdout   # data from the input width
    assert f"accuracy: {accuracy:.4f}" in out
    assert "9 Ankle boot" in out and "0 T-shirt/top" in out
