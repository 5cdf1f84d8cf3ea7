"""Tests for fastbp.datasets: shipped digits, IDX files, Fashion-MNIST, one_hot, splits."""
import gzip
import importlib.resources
import io
import os
import struct

import numpy as np
import pytest

from fastbp import datasets
from fastbp.datasets import (
    load_digits,
    load_fashion_mnist,
    load_idx,
    one_hot,
    train_test_split,
)

# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

IDX_CODES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


def idx_bytes(array, code=None, shape=None, ndim=None, magic=b"\x00\x00"):
    """The bytes of an IDX file holding ``array`` (big-endian); header fields
    can be overridden to build malformed files."""
    array = np.asarray(array)
    if code is None:
        code = {np.dtype(v): k for k, v in IDX_CODES.items()}[array.dtype]
    shape = array.shape if shape is None else shape
    ndim = len(shape) if ndim is None else ndim
    header = magic + bytes([code, ndim]) + struct.pack(f">{len(shape)}I", *shape)
    big = array.astype(np.dtype(IDX_CODES.get(code, np.uint8)).newbyteorder(">"))
    return header + big.tobytes()


def write(path, data, gz=False):
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def sample(dtype, shape, seed=0):
    """Values that exercise the whole range and every byte of the type."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.standard_normal(shape).astype(dt) * dt.type(1e3)
        if a.size >= 2:
            a.flat[0] = np.finfo(dt).max
            a.flat[1] = -np.finfo(dt).tiny
        return a
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)
    if a.size >= 2:
        a.flat[0], a.flat[1] = info.min, info.max
    return a


# --------------------------------------------------------------------------- #
# load_digits
# --------------------------------------------------------------------------- #


def test_load_digits_shape_dtype_range():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.flags.c_contiguous and X.flags.writeable
    assert X.min() == 0.0 and X.max() == 1.0
    # pixels are counts 0..16 scaled exactly by 1/16
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    assert set(np.unique(y)) == set(range(10))
    np.testing.assert_array_equal(
        np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    )


def test_load_digits_returns_fresh_arrays():
    X1, y1 = load_digits()
    X1[:] = -1.0
    y1[:] = -1
    X2, y2 = load_digits()
    assert X2.min() == 0.0 and y2.min() == 0


def test_load_digits_equals_scikit_learn():
    sk_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sk_datasets.load_digits()
    X, y = load_digits()
    np.testing.assert_array_equal(X * 16.0, bunch.data)
    np.testing.assert_array_equal(X, bunch.data / 16.0)
    np.testing.assert_array_equal(y, bunch.target)


def test_digits_data_and_licence_shipped():
    data = importlib.resources.files("fastbp") / "data"
    assert (data / "digits.npz").is_file()
    licence = (data / "DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "Alpaydin" in licence and "Kaynak" in licence


def test_digits_file_loads_without_pickle():
    raw = (importlib.resources.files("fastbp") / "data" / "digits.npz").read_bytes()
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["labels", "pixels"]
        assert npz["pixels"].dtype == np.uint8 and npz["pixels"].max() == 16
        assert npz["labels"].dtype == np.uint8 and npz["labels"].max() == 9


# --------------------------------------------------------------------------- #
# load_idx: round trips
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 3, 2)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("code", sorted(IDX_CODES), ids=lambda c: f"0x{c:02X}")
def test_load_idx_round_trip(tmp_path, code, shape, gz):
    dtype = np.dtype(IDX_CODES[code])
    a = sample(dtype, shape, seed=code)
    path = write(tmp_path / ("f.idx.gz" if gz else "f.idx"), idx_bytes(a, code), gz)
    got = load_idx(path)
    assert got.shape == shape
    assert got.dtype.isnative
    if len(shape) == 1 and dtype.kind in "iu":
        assert got.dtype == np.int64  # 1-D integer files are labels
    else:
        assert got.dtype == dtype
    np.testing.assert_array_equal(got, a)
    assert got.flags.c_contiguous and got.flags.writeable


def test_load_idx_accepts_str_and_pathlike(tmp_path):
    a = sample(np.int16, (2, 3))
    path = write(tmp_path / "a.idx", idx_bytes(a))
    np.testing.assert_array_equal(load_idx(str(path)), a)
    np.testing.assert_array_equal(load_idx(path), a)


def test_load_idx_detects_gzip_by_content_not_name(tmp_path):
    a = sample(np.uint8, (2, 4, 4))
    gz_named_plain = write(tmp_path / "images-idx3-ubyte", idx_bytes(a), gz=True)
    plain_named_gz = write(tmp_path / "images-idx3-ubyte.gz", idx_bytes(a), gz=False)
    np.testing.assert_array_equal(load_idx(gz_named_plain), a)
    np.testing.assert_array_equal(load_idx(plain_named_gz), a)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_idx_empty_dimension(tmp_path, gz):
    images = np.zeros((0, 28, 28), np.uint8)
    got = load_idx(write(tmp_path / "i", idx_bytes(images), gz))
    assert got.shape == (0, 28, 28) and got.dtype == np.uint8
    labels = load_idx(write(tmp_path / "l", idx_bytes(np.zeros(0, np.uint8)), gz))
    assert labels.shape == (0,) and labels.dtype == np.int64


def test_load_idx_mnist_like_labels_are_int64(tmp_path):
    labels = np.array([5, 0, 4, 1, 9, 2], np.uint8)
    got = load_idx(write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels)))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, labels)


def test_load_idx_multi_member_gzip(tmp_path):
    a = sample(np.float64, (3, 4))
    data = idx_bytes(a)
    path = tmp_path / "multi.gz"
    path.write_bytes(gzip.compress(data[:10]) + gzip.compress(data[10:]))
    np.testing.assert_array_equal(load_idx(path), a)


# --------------------------------------------------------------------------- #
# load_idx: malformed files
# --------------------------------------------------------------------------- #

GOOD = sample(np.int32, (3, 4))


def malformed(kind):
    """Bytes of a malformed (uncompressed) IDX file and a regex for the error."""
    good = idx_bytes(GOOD)
    return {
        "truncated data": (good[:-3], r"truncated.*expected|truncated.*needs 60 bytes.*found 57"),
        "extra bytes": (good + b"\x00\x01", r"too long.*needs 60 bytes.*found 62"),
        "wrong magic": (b"\x01\x00" + good[2:], r"not an IDX file.*expected.*00 00.*found 01 00"),
        "bad dtype code": (idx_bytes(GOOD, code=0x0A), r"unknown element type code 0x0A.*expected"),
        "zero dims": (b"\x00\x00\x08\x00" + bytes(12), r"number of dimensions is 0.*expected at least 1"),
        "truncated header": (good[:9], r"truncated header.*12-byte header.*found 9"),
        "short magic": (b"\x00\x00", r"truncated header.*found 2"),
        "empty file": (b"", r"empty file.*found 0 bytes"),
        # more dimensions than NumPy allows (32 before NumPy 2, 64 since)
        "too many dims": (b"\x00\x00\x08\x41" + b"\x00\x00\x00\x01" * 65 + b"\x07",
                          r"bad header: number of dimensions is 65, expected at most (32|64)"),
        # no elements, but a shape too large for any NumPy array
        "huge empty shape": (b"\x00\x00\x0e\x04\x00\x00\x00\x00" + b"\xff" * 12,
                             r"bad header.*\(0, 4294967295, 4294967295, 4294967295\).*expected"),
    }[kind]


MALFORMED = [
    "truncated data",
    "extra bytes",
    "wrong magic",
    "bad dtype code",
    "zero dims",
    "truncated header",
    "short magic",
    "empty file",
    "too many dims",
    "huge empty shape",
]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("kind", MALFORMED)
def test_load_idx_rejects_malformed(tmp_path, kind, gz):
    data, pattern = malformed(kind)
    path = write(tmp_path / "bad-file.idx", data, gz)
    with pytest.raises(ValueError, match=pattern) as info:
        load_idx(path)
    assert str(path) in str(info.value)  # the message names the file


def test_load_idx_truncated_data_message(tmp_path):
    data = idx_bytes(GOOD)[:-3]
    path = write(tmp_path / "t.idx", data)
    with pytest.raises(ValueError, match=r"truncated file.*\(3, 4\) of int32 needs 60 bytes.*found 57"):
        load_idx(path)


@pytest.mark.parametrize("where", ["header", "middle", "trailer"])
def test_load_idx_rejects_corrupt_gzip(tmp_path, where):
    packed = bytearray(gzip.compress(idx_bytes(sample(np.uint8, (50, 20)))))
    if where == "header":
        packed[3] = 0xFF  # reserved flag bits set
    elif where == "middle":
        for i in range(12, len(packed) - 8):
            packed[i] ^= 0x5A
    else:
        packed[-6] ^= 0xFF  # CRC / length mismatch
    path = write(tmp_path / "c.gz", bytes(packed))
    with pytest.raises(ValueError, match=r"gzip") as info:
        load_idx(path)
    assert str(path) in str(info.value)


def test_load_idx_rejects_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(sample(np.uint8, (50, 20))))
    path = write(tmp_path / "cut.gz", packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="truncated") as info:
        load_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
def test_load_idx_huge_claim_refused_before_reading(tmp_path, gz):
    # a header claiming ~ 8e28 bytes must be refused without allocating them
    header = b"\x00\x00\x0e\x03" + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    path = write(tmp_path / "huge", header + bytes(16), gz)
    with pytest.raises(ValueError, match="truncated"):
        load_idx(path)


def test_load_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "no-such-file-idx1-ubyte")


def test_load_idx_wrong_path_type():
    with pytest.raises(TypeError):
        load_idx(123)


# --------------------------------------------------------------------------- #
# load_fashion_mnist
# --------------------------------------------------------------------------- #

FASHION = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def fake_fashion(directory, n_train=12, n_test=5, gz=(False, True, True, False), seed=0):
    """Write a tiny Fashion-MNIST look-alike; return its arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )
    arrays[0][0, 0, 0], arrays[0][0, 0, 1] = 0, 255
    for base, a, z in zip(FASHION, arrays, gz):
        write(directory / (base + (".gz" if z else "")), idx_bytes(a), z)
    return arrays


@pytest.fixture
def no_default_fashion(monkeypatch, tmp_path):
    """Hide the system copy and $FASHION_MNIST_DIR."""
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "nowhere"))


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float64])
def test_load_fashion_mnist_from_path(tmp_path, dtype):
    arrays = fake_fashion(tmp_path / "fm")
    (Xtr, ytr), (Xte, yte) = load_fashion_mnist(tmp_path / "fm", dtype=dtype)
    assert Xtr.shape == (12, 784) and Xte.shape == (5, 784)
    assert Xtr.dtype == np.dtype(dtype) and Xte.dtype == np.dtype(dtype)
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    np.testing.assert_array_equal(
        Xtr, (arrays[0].reshape(12, 784) / np.float64(255)).astype(dtype)
    )
    np.testing.assert_array_equal(Xte * 255, np.round(Xte * 255))
    np.testing.assert_array_equal(ytr, arrays[1])
    np.testing.assert_array_equal(yte, arrays[3])


def test_load_fashion_mnist_default_dtype_float32(tmp_path):
    fake_fashion(tmp_path / "fm", gz=(True,) * 4)
    (Xtr, _), (Xte, _) = load_fashion_mnist(str(tmp_path / "fm"))
    assert Xtr.dtype == np.float32 and Xte.dtype == np.float32


def test_load_fashion_mnist_env_then_default(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "env", n_train=3)
    fake_fashion(tmp_path / "default", n_train=4)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "env"))
    assert load_fashion_mnist()[0][0].shape == (3, 784)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "empty-or-missing"))
    assert load_fashion_mnist()[0][0].shape == (4, 784)
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert load_fashion_mnist()[0][0].shape == (4, 784)


def test_load_fashion_mnist_missing_says_where_and_how(tmp_path, no_default_fashion):
    (tmp_path / "partial").mkdir()
    write(tmp_path / "partial" / "train-images-idx3-ubyte", idx_bytes(np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist(tmp_path / "partial")
    msg = str(info.value)
    assert str(tmp_path / "partial") in msg
    assert "t10k-labels-idx1-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "FASHION_MNIST_DIR" in msg
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist()
    assert str(tmp_path / "nowhere") in str(info.value)


def test_load_fashion_mnist_explicit_path_does_not_fall_back(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "default")
    monkeypatch.setattr(datasets, "FASHION_MNIST_DEFAULT_DIR", str(tmp_path / "default"))
    with pytest.raises(FileNotFoundError, match="typo"):
        load_fashion_mnist(tmp_path / "typo")


def test_load_fashion_mnist_validates_content(tmp_path):
    d = tmp_path / "fm"
    fake_fashion(d)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3], np.uint8)))
    with pytest.raises(ValueError, match=r"expected 5 labels.*found 3"):
        load_fashion_mnist(d)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.array([1, 2, 3, 4, 10], np.uint8)))
    with pytest.raises(ValueError, match=r"0\.\.9, found 10"):
        load_fashion_mnist(d)
    write(d / "t10k-labels-idx1-ubyte", idx_bytes(np.arange(5, dtype=np.uint8)))
    write(d / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((5, 28, 27), np.uint8)))
    with pytest.raises(ValueError, match=r"\(n, 28, 28\).*\(5, 28, 27\)"):
        load_fashion_mnist(d)


@pytest.mark.parametrize("dtype, exc", [("int32", ValueError), ("float16", ValueError), ("nonsense", ValueError), (3.5, TypeError)])
def test_load_fashion_mnist_bad_dtype(tmp_path, dtype, exc):
    fake_fashion(tmp_path / "fm")
    with pytest.raises(exc, match="float32"):
        load_fashion_mnist(tmp_path / "fm", dtype=dtype)


@pytest.mark.slow
def test_load_fashion_mnist_real_files():
    candidates = [os.environ.get("FASHION_MNIST_DIR"), datasets.FASHION_MNIST_DEFAULT_DIR]
    if not any(
        d and all(
            os.path.isfile(os.path.join(d, b)) or os.path.isfile(os.path.join(d, b + ".gz"))
            for b in FASHION
        )
        for d in candidates
    ):
        pytest.skip(
            "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, "
            "or set FASHION_MNIST_DIR)"
        )
    (Xtr, ytr), (Xte, yte) = load_fashion_mnist()
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.float32 and Xte.dtype == np.float32
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert ytr.dtype == np.int64 and yte.dtype == np.int64
    for X in (Xtr, Xte):
        assert X.min() == 0.0 and X.max() == 1.0
    for y, n in ((ytr, 6000), (yte, 1000)):
        assert y.min() == 0 and y.max() == 9
        np.testing.assert_array_equal(np.bincount(y), [n] * 10)  # balanced classes


# --------------------------------------------------------------------------- #
# one_hot
# --------------------------------------------------------------------------- #


def test_one_hot_basic():
    Y = one_hot(np.array([2, 0, 1, 2]), 3)
    assert Y.dtype == np.float64 and Y.shape == (4, 3)
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize("dtype", ["float32", np.float64, "int64", "uint8", bool])
def test_one_hot_dtype(dtype):
    Y = one_hot([0, 1], 2, dtype=dtype)
    assert Y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(Y, np.eye(2))


@pytest.mark.parametrize("label_dtype", [np.uint8, np.int8, np.int32, np.int64, np.uint64])
def test_one_hot_any_integer_labels(label_dtype):
    y = np.array([3, 1, 0], dtype=label_dtype)
    np.testing.assert_array_equal(one_hot(y, 4).argmax(axis=1), y)


def test_one_hot_empty_and_single_class():
    assert one_hot([], 3).shape == (0, 3)
    assert one_hot(np.array([], dtype=np.int64), 3).shape == (0, 3)
    np.testing.assert_array_equal(one_hot([0, 0], 1), [[1.0], [1.0]])


@pytest.mark.parametrize(
    "y, n_classes, exc, pattern",
    [
        ([[0, 1]], 2, ValueError, r"1-D.*\(1, 2\)"),
        (np.array([0.0, 1.0]), 2, TypeError, "integer"),
        (np.array([True, False]), 2, TypeError, "integer"),
        (["a", "b"], 2, TypeError, "integer"),
        ([0, 3], 3, ValueError, r"y\[1\] = 3.*\[0, 3\)"),
        ([0, -1], 3, ValueError, r"y\[1\] = -1.*\[0, 3\)"),
        ([0], 0, ValueError, ">= 1"),
        ([0], 2.0, TypeError, "n_classes"),
        ([0], True, TypeError, "n_classes"),
    ],
)
def test_one_hot_errors(y, n_classes, exc, pattern):
    with pytest.raises(exc, match=pattern):
        one_hot(y, n_classes)


@pytest.mark.parametrize("dtype", ["U3", object, "nonsense"])
def test_one_hot_bad_dtype(dtype):
    with pytest.raises(TypeError, match="numeric"):
        one_hot([0], 1, dtype=dtype)


# --------------------------------------------------------------------------- #
# train_test_split
# --------------------------------------------------------------------------- #


def labelled(n=100, n_classes=4):
    X = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    y = np.arange(n) % n_classes
    return X, y


def test_split_sizes_and_partition():
    X, y = labelled(101)
    Xtr, Xte, ytr, yte = train_test_split(X, y, seed=0)
    assert len(Xte) == len(yte) == 26  # ceil(0.25 * 101), as scikit-learn
    assert len(Xtr) == len(ytr) == 75
    ids = np.concatenate([Xtr[:, 0], Xte[:, 0]]) / 3
    np.testing.assert_array_equal(np.sort(ids), np.arange(101))
    np.testing.assert_array_equal(ytr, (Xtr[:, 0] // 3) % 4)  # rows stay paired
    np.testing.assert_array_equal(yte, (Xte[:, 0] // 3) % 4)
    assert Xtr.dtype == X.dtype and ytr.dtype == y.dtype


@pytest.mark.parametrize("test_size, n_test", [(0.5, 50), (0.07, 7), (0.333, 34), (10, 10), (99, 99), (np.int64(3), 3)])
def test_split_test_size(test_size, n_test):
    X, y = labelled(100)
    _, Xte, _, yte = train_test_split(X, y, test_size=test_size, seed=1)
    assert len(Xte) == len(yte) == n_test


@pytest.mark.parametrize("stratify", [False, True])
def test_split_is_deterministic_with_seed(stratify):
    X, y = labelled()
    a = train_test_split(X, y, seed=42, stratify=stratify)
    b = train_test_split(X, y, seed=42, stratify=stratify)
    c = train_test_split(X, y, seed=43, stratify=stratify)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[1], c[1])
    g1 = train_test_split(X, y, seed=np.random.default_rng(7), stratify=stratify)
    g2 = train_test_split(X, y, seed=np.random.default_rng(7), stratify=stratify)
    for u, v in zip(g1, g2):
        np.testing.assert_array_equal(u, v)


def test_split_generator_is_advanced():
    X, y = labelled()
    rng = np.random.default_rng(0)
    first = train_test_split(X, y, seed=rng)
    second = train_test_split(X, y, seed=rng)
    assert not np.array_equal(first[1], second[1])


def test_split_without_seed_and_with_lists_and_2d_targets():
    X, y = labelled(20)
    Xtr, Xte, Ytr, Yte = train_test_split(X.tolist(), one_hot(y, 4))
    assert Xtr.shape == (15, 3) and Xte.shape == (5, 3)
    assert Ytr.shape == (15, 4) and Yte.shape == (5, 4)


def test_split_stratified_keeps_proportions_on_digits():
    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, seed=0, stratify=True)
    assert len(yte) == 360 and len(ytr) == 1437
    expected = np.bincount(y) * 360 / 1797
    assert np.abs(np.bincount(yte, minlength=10) - expected).max() < 1
    np.testing.assert_array_equal(np.bincount(ytr) + np.bincount(yte), np.bincount(y))


def test_split_stratified_imbalanced_labels():
    y = np.array(["a"] * 80 + ["b"] * 16 + ["c"] * 4)
    X = np.arange(100)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, seed=3, stratify=True)
    assert len(yte) == 25
    counts = {c: int((yte == c).sum()) for c in "abc"}
    assert counts == {"a": 20, "b": 4, "c": 1}
    np.testing.assert_array_equal(y[Xte], yte)
    # test rows are shuffled, not grouped by class
    assert not np.array_equal(np.sort(yte), yte)


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(test_size=0.0), ValueError, r"\(0, 1\)"),
        (dict(test_size=1.0), ValueError, r"\(0, 1\)"),
        (dict(test_size=-0.2), ValueError, r"\(0, 1\)"),
        (dict(test_size=0), ValueError, r"\[1, 9\]"),
        (dict(test_size=10), ValueError, r"\[1, 9\]"),
        (dict(test_size=0.99), ValueError, "0 training examples: expected at least 1"),
        (dict(test_size=True), TypeError, "test_size"),
        (dict(test_size="0.2"), TypeError, "test_size"),
        (dict(seed=1.5), TypeError, "seed"),
        (dict(seed=np.random.RandomState(0)), TypeError, "Generator"),
        (dict(seed=-1), ValueError, "non-negative"),
        (dict(stratify="yes"), TypeError, "stratify"),
        (dict(stratify=np.arange(10)), TypeError, "stratify"),
    ],
)
def test_split_bad_arguments(kwargs, exc, pattern):
    X, y = labelled(10, 2)
    with pytest.raises(exc, match=pattern):
        train_test_split(X, y, **kwargs)


def test_split_bad_data():
    X, y = labelled(10, 2)
    with pytest.raises(ValueError, match="same number of examples.*10 and 9"):
        train_test_split(X, y[:9])
    with pytest.raises(ValueError, match="at least 2 examples"):
        train_test_split(X[:1], y[:1])
    with pytest.raises(ValueError, match="at least 2 examples"):
        train_test_split(X[:0], y[:0])
    with pytest.raises(ValueError, match="one example per row"):
        train_test_split(np.float64(1.0), y)


def test_split_stratify_errors():
    X, y = labelled(10, 2)
    with pytest.raises(ValueError, match="1-D class labels"):
        train_test_split(X, one_hot(y, 2), stratify=True)
    y1 = y.copy()
    y1[0] = 7  # a class with one member
    with pytest.raises(ValueError, match="at least 2 examples of every class, class 7 has 1$"):
        train_test_split(X, y1, stratify=True)
    with pytest.raises(ValueError, match="class 'c' has 1$"):
        train_test_split(X[:5], np.array(["a", "a", "b", "b", "c"]), test_size=2, stratify=True)
    X5, y5 = labelled(20, 5)
    with pytest.raises(ValueError, match="5 classes.*at least 5.*4 test"):
        train_test_split(X5, y5, test_size=4, stratify=True)
