"""Packaging: one version, the compiled modules of the installed package, the
type information that ships with it.

These tests pass on an editable install and on an installed wheel; .ci/run
also runs them against the wheel from a directory outside the checkout.
"""
import contextlib
import importlib.machinery
import importlib.metadata
import importlib.resources
import io
import textwrap
from pathlib import Path

import pytest

import fastbp
import fastbp._blas
import fastbp._core
import fastbp._cpu

PKG_DIR = Path(fastbp.__file__).resolve().parent
BUILDS = [fastbp._core]      # the baseline build (its public names may be the AVX2 build's)
if fastbp._cpu.has_avx2():      # importing it on a CPU without AVX2 would crash
    try:
        import fastbp._core_avx2
        BUILDS.append(fastbp._core_avx2)
    except ImportError:         # not an x86-64 build
        pass
COMPILED = [*BUILDS, fastbp._blas, fastbp._cpu]


def test_version_matches_metadata():
    assert fastbp.__version__ == importlib.metadata.version("fastbp")


@pytest.mark.parametrize("module", COMPILED, ids=lambda m: m.__name__)
def test_compiled_module_lives_in_the_package(module):
    """The extension beside fastbp/__init__.py is the one imported, not a stray
    build somewhere else on sys.path."""
    path = Path(module.__file__).resolve()
    assert path.parent == PKG_DIR, f"{module.__name__} loaded from {path}, package is {PKG_DIR}"
    assert any(path.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES), path
    assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader)


def _recorded_files():
    """The distribution and its recorded files by path."""
    dist = importlib.metadata.distribution("fastbp")
    return dist, {str(f).replace("\\", "/"): f for f in dist.files or ()}


def _editable():
    """An editable install records no package files."""
    return "fastbp/__init__.py" not in _recorded_files()[1]


def test_installed_files_are_the_imported_ones():
    """When fastbp is installed from a wheel (not editable), the package files
    the distribution records are exactly the modules Python imported."""
    if _editable():
        pytest.skip("editable install: the package files are not recorded in the metadata")
    dist, recorded = _recorded_files()
    for module in [fastbp, *COMPILED]:
        name = "fastbp/" + Path(module.__file__).name      # all of them sit in fastbp/
        assert name in recorded, f"{name} is not a file of the installed distribution"
        assert Path(dist.locate_file(recorded[name])).resolve() == Path(module.__file__).resolve()


@pytest.mark.parametrize("name", ["py.typed", "_core.pyi", "_blas.pyi", "_cpu.pyi"])
def test_type_information_ships(name):
    resource = importlib.resources.files("fastbp").joinpath(name)
    assert resource.is_file(), f"fastbp/{name} is missing from the installed package"


def test_stubs_name_the_runtime_classes():
    """Cheap check that needs no mypy: each public class of the compiled
    modules is declared in its stub."""
    for module in COMPILED:
        stem = module.__name__.rsplit(".", 1)[1]
        stub = importlib.resources.files("fastbp").joinpath(
            ("_core" if module in BUILDS else stem) + ".pyi").read_text()
        for name in dir(module):
            if not name.startswith("_") and isinstance(getattr(module, name), type):
                assert f"class {name}" in stub, f"{module.__name__}.{name} is not in the stub"


# --------------------------------------------------------------------------- #
# mypy (the test extra installs it; each run takes several seconds)
# --------------------------------------------------------------------------- #

SNIPPET = '''
import numpy as np
import fastbp
from fastbp._core import Activation, Cost, Kernel

net = fastbp.Network([4, 3, 2], activation="sigmoid", seed=0)
X = np.zeros((5, 4))
Y = np.zeros((5, 2))
A = net.forward(X)
grads = net.backprop(X, Y)
dW = grads.weights[0]

kernel = Kernel([4, 3, 2], [Activation.SIGMOID, Activation.SIGMOID], Cost.QUADRATIC, np.float64)
out: np.ndarray = kernel.forward(net.weights, net.biases, X)
gW, gb, gX, cost = kernel.backprop(net.weights, net.biases, X, Y)
total: float = cost + kernel.cost_value(net.weights, net.biases, X, Y)
depth: int = kernel.L
version: str = fastbp.__version__

# the pure-Python API is annotated too
trainer = fastbp.Trainer(net, fastbp.Adam(lr=1e-3), batch_size=2, seed=0)
history: fastbp.History = trainer.fit(X, Y, epochs=1, validation_data=(X, Y))
losses: list[float] = history.loss
c: float = net.cost(X, Y) + trainer.step(X, Y)
chain: fastbp.ChainRule = fastbp.explain(net, X, Y, 1, 0, 0)
worst: float = fastbp.gradcheck(net, X, Y)
'''

# Lines that must fail, to show mypy read the stubs rather than treating the
# compiled module as Any.
BAD_SNIPPET = '''
import numpy as np
from fastbp._core import Kernel
kernel = Kernel([4, 2], [1], 0, np.float64)
name: str = kernel.L
kernel.forward([], [])
import fastbp
label: str = fastbp.Network([4, 2]).cost(np.zeros((1, 4)), np.zeros((1, 2)))
'''


def _mypy(tmp_path, source):
    api = pytest.importorskip("mypy.api")
    path = tmp_path / "snippet.py"
    path.write_text(textwrap.dedent(source))
    config = "[mypy]\n"      # no project or user config
    src = Path(fastbp.__file__).resolve().parents[1]
    if not {"site-packages", "dist-packages"} & set(src.parts):
        # An editable install (pip install -e .) reaches fastbp through setuptools'
        # import hook, as fastbp.benchmarks is mapped from outside src/; mypy reads
        # only paths, so it is told where the sources are.
        config += f"mypy_path = {src}\n"
    (tmp_path / "mypy.ini").write_text(config)
    stdout, stderr, status = api.run([
        str(path), "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
        "--config-file", str(tmp_path / "mypy.ini"), "--show-error-codes",
        # Only the snippet's own lines are judged; untyped library code is fine.
        "--allow-untyped-calls", "--allow-any-generics", "--no-warn-return-any",
    ])
    return stdout + stderr, status


@pytest.mark.slow
def test_mypy_accepts_the_public_api(tmp_path):
    out, status = _mypy(tmp_path, SNIPPET)
    assert status == 0, out


@pytest.mark.slow
def test_mypy_reads_the_compiled_module_stubs(tmp_path):
    out, status = _mypy(tmp_path, BAD_SNIPPET)
    assert status == 1, out
    assert 'Incompatible types in assignment (expression has type "int", variable has type "str")' in out, out
    assert 'Missing positional argument "X"' in out, out
    assert 'expression has type "float", variable has type "str"' in out, out
    assert "import-not-found" not in out and "import-untyped" not in out, out


@pytest.mark.slow
def test_stubs_match_the_compiled_modules(tmp_path, monkeypatch):
    """mypy's stubtest compares _core.pyi/_blas.pyi with the built modules:
    a def added to or changed in a .pyx must be mirrored in its .pyi."""
    pytest.importorskip("mypy.api")
    from mypy import stubtest
    if _editable():
        # mypy cannot follow setuptools' editable finder, and stubtest then
        # compares nothing and passes; .ci/run runs this on installed packages.
        pytest.skip("editable install: stubtest cannot find the package")

    monkeypatch.chdir(tmp_path)  # stubtest writes its cache to ./.mypy_cache

    allow = tmp_path / "allowlist.txt"
    # Attributes Cython adds to every module.
    allow.write_text("\n".join([
        r"fastbp\._(blas|cpu|core)\.__test__",
        r"fastbp\._(blas|cpu|core)\.__pyx_capi__",
        r"fastbp\._(blas|cpu|core)\.__reduce_cython__",
        r"fastbp\._(blas|cpu|core)\.__setstate_cython__",
    ]) + "\n")
    args = ["--allowlist", str(allow), "--ignore-unused-allowlist", "--concise"]
    try:  # cdef classes cannot be subclassed together (PEP 800); newer mypy checks that
        stubtest.parse_options(["--ignore-disjoint-bases", "fastbp._core"])
        args.append("--ignore-disjoint-bases")
    except SystemExit:
        pass
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        status = stubtest.test_stubs(stubtest.parse_options(
            args + ["fastbp._core", "fastbp._blas", "fastbp._cpu"]))
    assert status == 0, "the .pyi stubs and the compiled modules differ:\n" + buf.getvalue()
