"""save / load / copy: round trips, atomic writes, and malformed files refused
with a ValueError naming the file (and never unpickled)."""

import json
import os
import pathlib
import re
import zipfile

import numpy as np
import pytest

import fastbp

from conftest import make_data, make_net, snapshot

LAYOUTS = [
    ([3, 2], "sigmoid", None, "quadratic"),
    ([4, 5, 3], "tanh", "softmax", "log_loss"),
    ([5, 6, 4, 1], "relu", "sigmoid", "cross_entropy"),
    ([2, 3, 3, 3, 2], "leaky_relu", "identity", "quadratic"),
]


@pytest.mark.parametrize("sizes, activation, output, cost", LAYOUTS)
def test_round_trip(sizes, activation, output, cost, dtype, tmp_path):
    net = make_net(sizes, activation, output, cost, dtype, seed=1)
    path = tmp_path / "net.npz"
    net.save(path)
    back = fastbp.Network.load(path)
    assert back.sizes == net.sizes
    assert (back.activation, back.output, back.cost_name) == (net.activation, net.output, net.cost_name)
    assert back.activations == net.activations
    assert back.dtype == net.dtype and isinstance(back.dtype, np.dtype)
    assert back.n_layers == net.n_layers
    assert snapshot(back) == snapshot(net)
    for p in back.weights + back.biases:
        assert type(p) is np.ndarray and p.flags.c_contiguous and p.flags.writeable
    X, Y = make_data(net, 9)
    np.testing.assert_array_equal(back.forward(X), net.forward(X))
    assert back.cost(X, Y) == net.cost(X, Y)
    np.testing.assert_array_equal(back.backprop(X, Y).weights[0], net.backprop(X, Y).weights[0])
    # str paths too, and a loaded network saves to an identical network.
    back.save(str(tmp_path / "again.npz"))
    assert snapshot(fastbp.Network.load(str(tmp_path / "again.npz"))) == snapshot(net)


@pytest.mark.parametrize("name", ["model", "model.bin", "model.npz", "weird name.v2"])
@pytest.mark.parametrize("kind", [str, pathlib.Path])
def test_save_writes_exactly_path(name, kind, tmp_path):
    net = make_net([3, 4, 2], seed=2)
    net.save(kind(tmp_path / name))
    assert sorted(os.listdir(tmp_path)) == [name]
    assert zipfile.is_zipfile(tmp_path / name)
    assert snapshot(fastbp.Network.load(kind(tmp_path / name))) == snapshot(net)


def test_save_overwrites(tmp_path):
    path = tmp_path / "net"
    make_net([3, 4, 2], seed=3).save(path)
    net = make_net([5, 2], "tanh", seed=4)
    net.save(path)
    assert os.listdir(tmp_path) == ["net"]
    assert fastbp.Network.load(path).sizes == [5, 2]


def test_saved_file_has_ordinary_permissions(tmp_path):
    """Like np.savez / open(): 0o666 less the umask (a temporary file from mkstemp
    would be 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    make_net([3, 2], seed=5).save(tmp_path / "net.npz")
    assert os.stat(tmp_path / "net.npz").st_mode & 0o777 == 0o666 & ~umask


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    old = make_net([3, 4, 2], seed=6)
    old.save(path)
    content = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        make_net([3, 4, 2], seed=7).save(path)
    assert os.listdir(tmp_path) == ["net.npz"]          # no temporary file left behind
    assert path.read_bytes() == content                 # the old file is untouched

    with pytest.raises(OSError):                        # and on a new path: nothing at all
        make_net([3, 2], seed=8).save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == ["net.npz"]


def test_save_is_atomic_when_renaming_fails(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise PermissionError("no")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        make_net([3, 2], seed=9).save(tmp_path / "net.npz")
    assert os.listdir(tmp_path) == []


def test_save_to_a_directory_names_it(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d'.*is a directory"):
        make_net([3, 2], seed=10).save(tmp_path / "d")
    assert os.listdir(tmp_path / "d") == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_save_writes_through_a_symbolic_link(tmp_path):
    net = make_net([3, 2], seed=10)
    target = tmp_path / "real.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    try:
        os.symlink(target, link)
    except OSError:                      # pragma: no cover (no permission, e.g. Windows)
        pytest.skip("cannot create symbolic links here")
    net.save(link)
    assert os.path.islink(link)
    assert snapshot(fastbp.Network.load(target)) == snapshot(net)


def test_save_accepts_a_bytes_path(tmp_path):
    net = make_net([3, 2], seed=10)
    net.save(os.fsencode(tmp_path / "b.npz"))
    assert snapshot(fastbp.Network.load(tmp_path / "b.npz")) == snapshot(net)


def test_save_into_a_missing_directory(tmp_path):
    target = tmp_path / "nowhere" / "net.npz"
    with pytest.raises(FileNotFoundError, match=rf"^\[Errno \d+\] cannot save the network to "
                                                rf"{re.escape(repr(str(target)))}: No such file"):
        make_net([3, 2], seed=10).save(target)
    assert os.listdir(tmp_path) == []


def test_copy_is_independent(dtype):
    net = make_net([4, 5, 3], "relu", "softmax", "log_loss", dtype, seed=11)
    X, _ = make_data(net, 5)
    c = net.copy()
    assert type(c) is fastbp.Network
    assert (c.sizes, c.activations, c.cost_name, c.dtype) == (net.sizes, net.activations,
                                                              net.cost_name, net.dtype)
    assert snapshot(c) == snapshot(net)
    np.testing.assert_array_equal(c.forward(X), net.forward(X))
    for p, q in zip(c.weights + c.biases, net.weights + net.biases):
        assert not np.shares_memory(p, q)
    before = snapshot(net)
    c.weights[0][...] = 0
    c.biases[1] += 1
    c.weights.append(None)
    assert snapshot(net) == before and len(net.weights) == 2
    net.weights[1][...] = 7
    assert (c.weights[1] != 7).all()


# -- malformed files -----------------------------------------------------------------

def _good_arrays(tmp_path):
    net = make_net([3, 4, 2], "tanh", "sigmoid", "cross_entropy", seed=12)
    path = tmp_path / "good.npz"
    net.save(path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _meta(arrays):
    return json.loads(str(arrays["meta"]))


def _with_meta(arrays, **changes):
    meta = _meta(arrays)
    for k, v in changes.items():
        if v is _DROP:
            del meta[k]
        else:
            meta[k] = v
    return dict(arrays, meta=np.array(json.dumps(meta)))


_DROP = object()


def _assert_refused(path):
    """Both path types are refused naming the file; returns the message."""
    with pytest.raises(ValueError, match=re.escape(str(path))):
        fastbp.Network.load(path)
    with pytest.raises(ValueError, match=re.escape(str(path))) as e:
        fastbp.Network.load(str(path))
    message = str(e.value)
    assert message.startswith(f"{path}: not a valid fastbp network file: "), message
    return message


@pytest.mark.parametrize("kind", [str, pathlib.Path])
def test_missing_file(kind, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        fastbp.Network.load(kind(tmp_path / "nothing.npz"))


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, -100, -1])
def test_truncated_file(keep, tmp_path):
    good = tmp_path / "good.npz"
    make_net([3, 4, 2], seed=13).save(good)
    data = good.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:cut])
    _assert_refused(path)


@pytest.mark.parametrize("content", [
    b"", b"\x00" * 100, bytes(range(256)) * 4, b"PK\x03\x04" + b"\x00" * 60,
    b"\x93NUMPY\x01\x00garbage", b'{"format": "fastbp-network"}',
    np.random.default_rng(0).bytes(5000),
], ids=["empty", "zeros", "bytes", "zip-magic", "npy-magic", "json", "random"])
def test_garbage_file(content, tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(content)
    message = _assert_refused(path)
    # Not NumPy's advice for a file it takes for a pickle ("load it unsafely using allow_pickle").
    assert "pickle" not in message and "unsafe" not in message, message
    if not content.startswith(b"PK"):
        assert "not an .npz archive" in message, message


def test_a_plain_npy_file(tmp_path):
    path = tmp_path / "net.npy"
    np.save(path, np.ones((3, 2)))
    assert _assert_refused(path).endswith("not an .npz archive (the file is a single .npy array)")


def test_an_npz_that_is_not_a_network(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.ones(3), b=np.zeros((2, 2)))
    _assert_refused(path)


def test_a_zip_member_that_is_not_npy(tmp_path):
    arrays = _good_arrays(tmp_path)
    path = tmp_path / "raw.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("meta", str(arrays["meta"]))         # raw JSON text, not an .npy
        for k in ("W1", "b1", "W2", "b2"):
            with z.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, arrays[k])
    _assert_refused(path)


def _write_members(path, members):
    """An .npz whose members are (name, array) or (name, header dict, data bytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, *content in members:
            with z.open(name + ".npy", "w") as f:
                if len(content) == 1:
                    np.lib.format.write_array(f, content[0])
                else:
                    np.lib.format.write_array_header_1_0(f, content[0])
                    f.write(content[1])


_HUGE = {"descr": "<f8", "fortran_order": False, "shape": (200_000, 200_000)}   # 320 GB


@pytest.mark.parametrize("where", ["extra member", "as W1"])
def test_a_member_declaring_a_huge_array_is_refused_from_its_header(where, tmp_path):
    """The member's header is checked against the metadata before its data is read:
    its data here is 16 bytes, and reading it as declared would need 320 GB."""
    arrays = _good_arrays(tmp_path)
    members = [(k, v) for k, v in arrays.items() if not (where == "as W1" and k == "W1")]
    members.append(("Z" if where == "extra member" else "W1", _HUGE, b"\0" * 16))
    path = tmp_path / "huge.npz"
    _write_members(path, members)
    message = _assert_refused(path)
    assert message.endswith("W1 has shape (200000, 200000); expected (4, 3)" if where == "as W1"
                            else "arrays ['W1', 'W2', 'Z', 'b1', 'b2', 'meta']; expected "
                                 "['W1', 'W2', 'b1', 'b2', 'meta']"), message


def test_a_meta_record_longer_than_the_bound_is_refused_from_its_header(tmp_path):
    from fastbp._modelfile import MAX_META_CHARS
    arrays = _good_arrays(tmp_path)
    meta = {"descr": f"<U{MAX_META_CHARS + 1}", "fortran_order": False, "shape": ()}
    path = tmp_path / "long.npz"
    _write_members(path, [(k, v) for k, v in arrays.items() if k != "meta"] + [("meta", meta, b"")])
    assert _assert_refused(path).endswith(f"'meta' is {MAX_META_CHARS + 1} characters long; "
                                          f"expected at most {MAX_META_CHARS}")


def test_deeply_nested_meta_json_is_refused(tmp_path):
    arrays = _good_arrays(tmp_path)
    path = tmp_path / "deep.npz"
    np.savez(path, **dict(arrays, meta=np.array("[" * 100_000 + "]" * 100_000)))
    assert "'meta' is not JSON (RecursionError" in _assert_refused(path)


def _malformed_cases():
    f32 = np.float32
    yield "missing W2", lambda a: {k: v for k, v in a.items() if k != "W2"}
    yield "missing b1", lambda a: {k: v for k, v in a.items() if k != "b1"}
    yield "missing meta", lambda a: {k: v for k, v in a.items() if k != "meta"}
    yield "extra array", lambda a: dict(a, W3=np.ones((2, 2)))
    yield "W1 transposed", lambda a: dict(a, W1=np.ascontiguousarray(a["W1"].T))
    yield "b1 2-D", lambda a: dict(a, b1=a["b1"][None])
    yield "W2 too small", lambda a: dict(a, W2=a["W2"][:, :3])
    yield "W1 float32", lambda a: dict(a, W1=a["W1"].astype(f32))
    yield "b2 int", lambda a: dict(a, b2=a["b2"].astype(np.int64))
    yield "W1 complex", lambda a: dict(a, W1=a["W1"].astype(complex))
    yield "W1 NaN", lambda a: dict(a, W1=np.where(a["W1"] > 0, np.nan, a["W1"]))
    yield "b2 inf", lambda a: dict(a, b2=np.full_like(a["b2"], np.inf))
    yield "meta not JSON", lambda a: dict(a, meta=np.array("{sizes: [3, 4, 2]"))
    yield "meta a JSON list", lambda a: dict(a, meta=np.array("[3, 4, 2]"))
    yield "meta bytes", lambda a: dict(a, meta=np.array(str(a["meta"]).encode()))
    yield "meta 1-D", lambda a: dict(a, meta=np.array([str(a["meta"])]))
    yield "meta a number", lambda a: dict(a, meta=np.array(3.0))
    yield "no format", lambda a: _with_meta(a, format=_DROP)
    yield "other format", lambda a: _with_meta(a, format="keras")
    yield "no sizes", lambda a: _with_meta(a, sizes=_DROP)
    yield "sizes a string", lambda a: _with_meta(a, sizes="3,4,2")
    yield "float sizes", lambda a: _with_meta(a, sizes=[3.0, 4, 2])
    yield "bool sizes", lambda a: _with_meta(a, sizes=[3, True, 2])
    yield "sizes disagree", lambda a: _with_meta(a, sizes=[3, 5, 2])
    yield "sizes one layer", lambda a: _with_meta(a, sizes=[3])
    yield "sizes negative", lambda a: _with_meta(a, sizes=[3, -4, 2])
    yield "sizes huge", lambda a: _with_meta(a, sizes=[3, 2 ** 40, 2])
    yield "unknown activation", lambda a: _with_meta(a, activation="swish")
    yield "softmax hidden", lambda a: _with_meta(a, activation="softmax")
    yield "activation not str", lambda a: _with_meta(a, activation=1)
    yield "no activation", lambda a: _with_meta(a, activation=_DROP)
    yield "unknown output", lambda a: _with_meta(a, output="swish")
    yield "unknown cost", lambda a: _with_meta(a, cost="hinge")
    yield "incompatible pair", lambda a: _with_meta(a, output="tanh")
    yield "bad dtype", lambda a: _with_meta(a, dtype="float16")
    yield "dtype not str", lambda a: _with_meta(a, dtype=None)
    yield "dtype disagrees", lambda a: _with_meta(a, dtype="float32")


MALFORMED = dict(_malformed_cases())


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_npz(case, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **MALFORMED[case](_good_arrays(tmp_path)))
    _assert_refused(path)


@pytest.mark.parametrize("case, why", [
    ("missing meta", "missing the 'meta' JSON record"),
    ("meta bytes", r"'meta' must be a JSON string; got dtype \|S\d+ shape \(\)"),
    ("meta 1-D", r"'meta' must be a JSON string; got dtype <U\d+ shape \(1,\)"),
    ("meta a number", r"'meta' must be a JSON string; got dtype float64 shape \(\)"),
])
def test_malformed_meta_says_what_is_wrong(case, why, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **MALFORMED[case](_good_arrays(tmp_path)))
    assert re.search(f"{why}$", _assert_refused(path))


def test_save_writes_the_format_version(tmp_path):
    from fastbp.network import FORMAT_VERSION
    arrays = _good_arrays(tmp_path)
    assert _meta(arrays)["version"] == FORMAT_VERSION
    path = tmp_path / "same.npz"
    np.savez(path, **_with_meta(arrays, version=FORMAT_VERSION))
    assert snapshot(fastbp.Network.load(path)) == snapshot(fastbp.Network.load(tmp_path / "good.npz"))


@pytest.mark.parametrize("version", ["newer", 99])
def test_a_newer_format_version_is_refused(version, tmp_path):
    from fastbp.network import FORMAT_VERSION
    if version == "newer":
        version = FORMAT_VERSION + 1
    path = tmp_path / "future.npz"
    np.savez(path, **_with_meta(_good_arrays(tmp_path), version=version))
    assert _assert_refused(path).endswith(
        f"format version {version} is newer than this fastbp reads (version {FORMAT_VERSION}); "
        "upgrade fastbp to load it")


@pytest.mark.parametrize("version", [_DROP, None, "1", 1.0, True, 0, -1, [1]],
                         ids=["missing", "null", "str", "float", "bool", "zero", "negative", "list"])
def test_a_malformed_format_version_is_refused(version, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **_with_meta(_good_arrays(tmp_path), version=version))
    got = None if version is _DROP else version
    assert _assert_refused(path).endswith(f"'meta' version must be a positive integer; got {got!r}")


# The pickle trap: unpickling an Evil object would call _trigger, creating a file.

def _trigger(flag):
    pathlib.Path(flag).write_text("unpickled!")
    return 0


class Evil:
    def __init__(self, flag):
        self.flag = str(flag)

    def __reduce__(self):
        return (_trigger, (self.flag,))


@pytest.mark.parametrize("where", ["W1", "meta", "extra"])
def test_pickled_object_array_is_never_unpickled(where, tmp_path):
    flag = tmp_path / "flag"
    arrays = _good_arrays(tmp_path)
    evil = np.empty(2, dtype=object)
    evil[0], evil[1] = Evil(flag), Evil(flag)
    if where == "extra":
        arrays["evil"] = evil
    else:
        arrays[where] = evil
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)            # np.save pickles object arrays (allow_pickle=True)
    assert not flag.exists()
    # The trap works: a careless loader would spring it.
    with np.load(path, allow_pickle=True) as f:
        f[where if where != "extra" else "evil"]
    assert flag.exists()
    flag.unlink()
    with pytest.raises(ValueError, match=re.escape(str(path))):
        fastbp.Network.load(path)
    assert not flag.exists()
