"""Data sets and the small tools that go with them.

Everything here runs offline and needs only NumPy:

- :func:`load_digits` -- the UCI 8x8 handwritten digits (1,797 examples), shipped
  inside the package, so every example and test has real data to train on.
- :func:`load_idx` -- reads IDX files, the format of MNIST and Fashion-MNIST,
  plain or gzipped, and checks them strictly.
- :func:`load_fashion_mnist` -- Fashion-MNIST from a local directory (Debian's
  ``dataset-fashion-mnist`` package installs it under
  ``/usr/share/datasets/fashion-mnist``); never downloads anything.
- :func:`one_hot` -- class labels ``(n,)`` to targets ``(n, n_classes)``.
- :func:`train_test_split` -- a seeded (optionally stratified) split.

Conventions are those of the rest of fastbp: one example per row, ``X`` of shape
``(n_examples, n_features)``, labels ``y`` of shape ``(n_examples,)`` as int64.
"""
import gzip
import importlib.resources
import io
import math
import numbers
import os
import struct
import zlib

import numpy as np

__all__ = [
    "load_digits",
    "load_idx",
    "load_fashion_mnist",
    "one_hot",
    "train_test_split",
]

# --------------------------------------------------------------------------- #
# Shipped digits
# --------------------------------------------------------------------------- #

_DIGITS_FILE = "digits.npz"


def load_digits():
    """The UCI optical-recognition 8x8 handwritten digits, shipped with fastbp.

    The 1,797 examples of the UCI test set (Alpaydin & Kaynak, 1998), as
    scikit-learn's ``load_digits`` returns them, with the pixels scaled to
    [0, 1]. Licence CC BY 4.0; source and citation in
    ``fastbp/data/DIGITS_LICENSE.txt``.

    Returns
    -------
    X : ndarray of float64, shape (1797, 64)
        One 8x8 image per row (row-major), pixel counts 0..16 divided by 16,
        so every value is in [0, 1] (and exactly representable).
    y : ndarray of int64, shape (1797,)
        The digit shown, 0..9.

    Each call returns new arrays, which the caller may modify freely.
    """
    resource = importlib.resources.files("fastbp") / "data" / _DIGITS_FILE
    # read_bytes works for a package on disk, in a wheel or in a zip file.
    with np.load(io.BytesIO(resource.read_bytes()), allow_pickle=False) as npz:
        pixels = npz["pixels"]
        labels = npz["labels"]
    X = pixels.astype(np.float64)
    X /= 16.0
    y = labels.astype(np.int64)
    return X, y


# --------------------------------------------------------------------------- #
# IDX files
# --------------------------------------------------------------------------- #

# The element types of the IDX format (third byte of the magic number), all
# big-endian on disk.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES_TEXT = ", ".join(
    f"0x{code:02X} ({dt.newbyteorder('=').name})" for code, dt in _IDX_DTYPES.items()
)
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate never compresses by more than about 1032:1, so a gzip file of m bytes
# cannot hold much more than 1032 * m bytes: a header claiming more is refused
# before any memory is allocated for the data.
_GZIP_MAX_RATIO = 1100
_CHUNK = 1 << 24  # bytes per read() call
# NumPy 2 raised its limit on the number of dimensions from 32 to 64; the header
# is checked against it so that the error names the file.
_MAX_NDIM = 64 if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else 32


def load_idx(path):
    """Read an IDX file (the MNIST format), plain or gzipped.

    An IDX file is a 4-byte magic number -- two zero bytes, an element-type
    code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64) and the number of dimensions -- then one big-endian uint32
    per dimension, then the elements, big-endian, in C order. A gzipped file
    is recognised by its content (the bytes 1f 8b), whatever its name.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    ndarray
        The array with the file's own shape and element type, in native byte
        order -- except that a **1-D integer file** (a label file) is returned
        as **int64**, the type fastbp uses for class labels everywhere.
        Multi-dimensional integer files (images) keep their element type, e.g.
        MNIST images come back as uint8 of shape (n, 28, 28); floating-point
        files always keep theirs.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a well-formed IDX file: empty, wrong magic number,
        unknown element type, zero dimensions or more than NumPy supports, a
        shape too large for a NumPy array, truncated header, fewer or more
        data bytes than the header's shape needs, or corrupt gzip data. The
        message names the file and what was expected and found.
    TypeError
        If ``path`` is not a str, bytes or os.PathLike.

    Notes
    -----
    Only the header is read before the size is validated: for a plain file the
    file size must equal the header's claim exactly before the data are read;
    for a gzipped file the data are read into an array of exactly the claimed
    size, and any further bytes are counted without being kept.
    """
    fspath = os.fspath(path)
    name = os.fsdecode(fspath)
    with open(fspath, "rb") as raw:
        lead = raw.read(2)
        raw.seek(0)
        if lead != _GZIP_MAGIC:
            size = os.fstat(raw.fileno()).st_size
            return _read_idx(raw, name, file_size=size, gz_size=None)
        gz_size = os.fstat(raw.fileno()).st_size
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_idx(stream, name, file_size=None, gz_size=gz_size)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"IDX file {name!r}: corrupt or truncated gzip data: expected a "
                f"complete gzip stream, found an error ({exc})"
            ) from exc


def _read_exactly(stream, n):
    """Read up to ``n`` bytes; fewer only at end of file."""
    parts = []
    remaining = n
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def _readinto_exactly(stream, buffer):
    """Fill ``buffer`` (a byte memoryview); return the number of bytes read."""
    total = 0
    n = len(buffer)
    while total < n:
        got = stream.readinto(buffer[total : min(n, total + _CHUNK)])
        if not got:
            break
        total += got
    return total


def _count_rest(stream):
    """Number of bytes left in ``stream``, read in chunks and discarded."""
    extra = 0
    while True:
        part = stream.read(_CHUNK)
        if not part:
            return extra
        extra += len(part)


def _read_idx(stream, name, file_size, gz_size):
    """Parse and validate an IDX stream. ``file_size`` is the size of a plain
    file (None for gzip); ``gz_size`` the compressed size of a gzip file."""
    what = f"IDX file {name!r}" if gz_size is None else f"IDX file {name!r} (gzipped)"

    magic = _read_exactly(stream, 4)
    if len(magic) == 0:
        raise ValueError(
            f"{what}: empty file: expected at least a 4-byte IDX header, found 0 bytes"
        )
    if len(magic) < 4:
        raise ValueError(
            f"{what}: truncated header: expected a 4-byte magic number, "
            f"found {len(magic)} byte(s)"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(
            f"{what}: not an IDX file: expected the magic number to start with "
            f"bytes 00 00, found {magic[0]:02x} {magic[1]:02x}"
        )
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{what}: unknown element type code 0x{code:02X}: expected one of "
            f"{_IDX_CODES_TEXT}"
        )
    if ndim == 0:
        raise ValueError(
            f"{what}: bad header: number of dimensions is 0, expected at least 1"
        )
    if ndim > _MAX_NDIM:
        raise ValueError(
            f"{what}: bad header: number of dimensions is {ndim}, expected at most "
            f"{_MAX_NDIM} (NumPy's limit)"
        )
    dim_bytes = _read_exactly(stream, 4 * ndim)
    header_size = 4 + 4 * ndim
    if len(dim_bytes) < 4 * ndim:
        raise ValueError(
            f"{what}: truncated header: {ndim} dimension(s) need a "
            f"{header_size}-byte header, found {4 + len(dim_bytes)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", dim_bytes)
    disk_dtype = _IDX_DTYPES[code]
    count = math.prod(shape)
    data_size = count * disk_dtype.itemsize
    expected = header_size + data_size
    claim = (
        f"the header's shape {shape} of {disk_dtype.newbyteorder('=').name} "
        f"needs {expected} bytes ({header_size} header + {data_size} data)"
    )

    if file_size is not None:
        if file_size != expected:
            problem = "truncated file" if file_size < expected else "file too long"
            raise ValueError(f"{what}: {problem}: {claim}, found {file_size} bytes")
    elif data_size > _GZIP_MAX_RATIO * gz_size + (1 << 16):
        raise ValueError(
            f"{what}: truncated or corrupt file: {claim}, more than a gzip file "
            f"of {gz_size} bytes can hold"
        )

    # NumPy refuses a shape whose nonzero dimensions overflow its byte count even
    # when a zero dimension leaves no elements (the size checks above let it pass).
    nominal = math.prod(d for d in shape if d) * disk_dtype.itemsize
    if nominal > np.iinfo(np.intp).max:
        raise ValueError(
            f"{what}: bad header: the shape {shape} is too large for a NumPy array, even "
            f"with no elements: expected the product of its nonzero dimensions times "
            f"{disk_dtype.itemsize} bytes ({disk_dtype.newbyteorder('=').name}) to be at most "
            f"{np.iinfo(np.intp).max}, found {nominal}"
        )
    data = np.empty(count, dtype=disk_dtype)
    got = _readinto_exactly(stream, memoryview(data.view(np.uint8)))
    if got < data_size:
        raise ValueError(
            f"{what}: truncated file: {claim}, found {header_size + got} bytes"
        )
    if file_size is None:
        extra = _count_rest(stream)
        if extra:
            raise ValueError(
                f"{what}: file too long: {claim}, found {expected + extra} bytes "
                f"(decompressed)"
            )

    native = disk_dtype.newbyteorder("=")
    if not disk_dtype.isnative:
        data.byteswap(inplace=True)
    data = data.view(native)
    if ndim == 1 and native.kind in "iu":
        return data.astype(np.int64)
    return data.reshape(shape)


# --------------------------------------------------------------------------- #
# Fashion-MNIST
# --------------------------------------------------------------------------- #

FASHION_MNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _float_dtype(dtype):
    """``dtype`` as float32 or float64, or a clear error."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        if isinstance(dtype, str):
            raise ValueError(
                f"unknown dtype {dtype!r}: expected 'float32' or 'float64'"
            ) from exc
        raise TypeError(
            f"dtype must be a dtype name, numpy dtype or type, expected 'float32' "
            f"or 'float64', got {type(dtype).__name__}"
        ) from exc
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt.name!r}")
    return dt


def _find_fashion_files(directory):
    """Map each standard base name to a file in ``directory`` (plain preferred
    over .gz); return (found, missing)."""
    found, missing = {}, []
    for base in _FASHION_FILES:
        for candidate in (base, base + ".gz"):
            full = os.path.join(directory, candidate)
            if os.path.isfile(full):
                found[base] = full
                break
        else:
            missing.append(base)
    return found, missing


def _locate_fashion_mnist(path):
    """(files, looked): the four files as `_find_fashion_files` maps them, from
    `path` or else $FASHION_MNIST_DIR or the default directory, or None and a
    sentence saying where they were looked for (the command line, which cannot
    pass `path`, gives its own advice after it)."""
    if path is not None:
        candidates = [("the path argument", os.fsdecode(os.fspath(path)))]
    else:
        candidates = []
        env = os.environ.get("FASHION_MNIST_DIR")
        if env:
            candidates.append(("$FASHION_MNIST_DIR", env))
        candidates.append(("the default directory", FASHION_MNIST_DEFAULT_DIR))

    looked = []
    for label, directory in candidates:
        if not os.path.isdir(directory):
            looked.append(f"{directory!r} ({label}): not a directory")
            continue
        found, missing = _find_fashion_files(directory)
        if not missing:
            return found, None
        looked.append(
            f"{directory!r} ({label}): missing "
            + ", ".join(f"{m}[.gz]" for m in missing)
        )
    return None, (
        "looked in "
        + "; ".join(looked)
        + ". Expected the files "
        + ", ".join(f"{b}[.gz]" for b in _FASHION_FILES)
    )


def load_fashion_mnist(path=None, dtype="float32"):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from local IDX files.

    Nothing is downloaded. The four standard files
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each with or
    without ``.gz``, are looked for in one directory:

    - ``path`` if given (and only there: an explicit directory is never
      silently replaced by another one);
    - otherwise ``$FASHION_MNIST_DIR`` if that is set and holds all four files,
      then ``/usr/share/datasets/fashion-mnist``, where Debian's
      ``dataset-fashion-mnist`` package installs them.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Directory holding the four files.
    dtype : {"float32", "float64"}, default "float32"
        Element type of the images returned.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        ``X_*`` of ``dtype``, shape (n, 784): one 28x28 image per row
        (row-major), pixel values divided by 255, so in [0, 1].
        ``y_*`` int64, shape (n,), classes 0..9. The standard files have
        n = 60000 (train) and 10000 (test).

    Raises
    ------
    FileNotFoundError
        If no directory holds the four files; the message says where it looked
        and how to get them.
    ValueError
        If a file is malformed (see :func:`load_idx`), the images are not uint8
        of shape (n, 28, 28), the label count differs from the image count, or
        a label is outside 0..9; or if ``dtype`` is not float32/float64.
    """
    dt = _float_dtype(dtype)
    files, looked = _locate_fashion_mnist(path)
    if files is None:
        raise FileNotFoundError(
            f"Fashion-MNIST not found; {looked}. Get them with `apt-get install "
            f"dataset-fashion-mnist` (Debian/Ubuntu, installs into "
            f"{FASHION_MNIST_DEFAULT_DIR}), or put them in a directory and pass it as "
            "`path` or set FASHION_MNIST_DIR to it."
        )

    def pair(images_base, labels_base):
        images_file, labels_file = files[images_base], files[labels_base]
        images = load_idx(images_file)
        labels = load_idx(labels_file)
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"IDX file {images_file!r}: expected uint8 images of shape "
                f"(n, 28, 28), found {images.dtype.name} of shape {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype != np.int64:
            raise ValueError(
                f"IDX file {labels_file!r}: expected a 1-D integer label file, "
                f"found {labels.dtype.name} of shape {labels.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"IDX file {labels_file!r}: expected {len(images)} labels (one per "
                f"image in {images_file!r}), found {len(labels)}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            bad = labels[(labels < 0) | (labels > 9)][0]
            raise ValueError(
                f"IDX file {labels_file!r}: expected class labels in 0..9, found {bad}"
            )
        X = images.reshape(len(images), 28 * 28).astype(dt)
        X /= 255
        return X, labels

    train = pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test = pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return train, test


# --------------------------------------------------------------------------- #
# Labels and splits
# --------------------------------------------------------------------------- #


def _as_int(value, name):
    """``value`` as a Python int; bools and non-integers are a TypeError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def one_hot(y, n_classes, dtype="float64"):
    """One-hot encode class labels.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Class labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes, at least 1.
    dtype : dtype, default "float64"
        Element type of the result (any numeric or bool type).

    Returns
    -------
    Y : ndarray, shape (n, n_classes)
        ``Y[i, y[i]] == 1`` and every other entry 0.

    Raises
    ------
    TypeError
        If ``y`` is not of an integer type (bool and float labels are refused),
        ``n_classes`` is not an int, or ``dtype`` is not a numeric type.
    ValueError
        If ``y`` is not 1-D, ``n_classes < 1`` or a label is out of range.
    """
    n_classes = _as_int(n_classes, "n_classes")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    try:
        out_dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a numeric dtype, got {dtype!r}") from exc
    if out_dtype.kind not in "biuf":
        raise TypeError(
            f"dtype must be a numeric dtype (e.g. 'float64'), got {out_dtype.name!r}"
        )
    labels = np.asarray(y)
    if labels.size == 0 and not isinstance(y, np.ndarray):
        labels = labels.astype(np.int64)  # an empty list has no integer dtype
    if labels.ndim != 1:
        raise ValueError(
            f"y must be 1-D class labels of shape (n,), got shape {labels.shape}"
        )
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"y must hold integer class labels, got dtype {labels.dtype.name}"
        )
    if labels.size:
        bad = (labels < 0) | (labels >= n_classes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"label y[{i}] = {labels[i]} is out of range: expected labels in "
                f"[0, {n_classes})"
            )
    Y = np.zeros((labels.shape[0], n_classes), dtype=out_dtype)
    Y[np.arange(labels.shape[0]), labels] = 1
    return Y


def _rng(seed):
    """A numpy Generator from None, an int or a Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            "seed must be None, an int or a numpy.random.Generator, "
            f"got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return np.random.default_rng(int(seed))


def _n_test(test_size, n):
    """The number of test examples for ``test_size`` (fraction or count)."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            "test_size must be a float in (0, 1) or an int count, "
            f"got {type(test_size).__name__}"
        )
    if isinstance(test_size, numbers.Integral):
        n_test = int(test_size)
        if not 1 <= n_test <= n - 1:
            raise ValueError(
                f"test_size = {n_test} examples leaves an empty set: expected an "
                f"int in [1, {n - 1}] for {n} examples"
            )
        return n_test
    fraction = float(test_size)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_size must be in (0, 1) as a fraction, got {test_size}")
    # Round away floating-point noise (0.07 * 100 = 7.000000000000001) first.
    n_test = math.ceil(round(fraction * n, 6))
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size = {test_size} of {n} examples gives {n_test} test and "
            f"{n - n_test} training examples: expected at least 1 of each"
        )
    return n_test


def _stratified_counts(counts, n_test):
    """Test examples per class: ``n_test * counts / n`` rounded by largest
    remainder (ties to the lower class index), so the total is ``n_test``."""
    n = counts.sum()
    exact = counts * n_test / n
    take = np.floor(exact).astype(np.int64)
    short = n_test - int(take.sum())
    if short:
        order = np.argsort(-(exact - take), kind="stable")
        take[order[:short]] += 1
    return take


def train_test_split(X, y, test_size=0.25, seed=None, stratify=False):
    """Split examples into a random training set and test set.

    Like scikit-learn's ``train_test_split`` for one ``X`` and one ``y``.

    Parameters
    ----------
    X : array_like, shape (n, ...)
        Examples, one per row.
    y : array_like, shape (n, ...)
        Targets: labels ``(n,)`` or a target matrix ``(n, k)``.
    test_size : float or int, default 0.25
        A float in (0, 1) is the fraction of examples in the test set (rounded
        up, as scikit-learn does); an int is their number. Both sets must end
        up non-empty.
    seed : None, int or numpy.random.Generator
        Makes the split reproducible: the same seed gives the same split. A
        Generator is used (and advanced) as is.
    stratify : bool, default False
        If True, ``y`` must be 1-D class labels and each class is split in the
        same proportion (up to rounding), so both sets keep the class
        proportions of ``y``. Every class needs at least 2 examples, and each
        set must be large enough to hold one example of every class. As in
        scikit-learn, the rounding may still leave a rare class out of a small
        set (2 of 100 examples with ``test_size=2`` gives a test set of the
        common class only).

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray
        Rows of ``X`` and ``y`` (new arrays, in random order), with
        ``len(X_test) == len(y_test) == n_test`` and the rest in training.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length, there are fewer than 2 examples,
        ``test_size`` leaves a set empty, or a stratified split is impossible.
    TypeError
        If ``test_size``, ``seed`` or ``stratify`` is of the wrong kind.
    """
    if not isinstance(stratify, (bool, np.bool_)):
        raise TypeError(
            f"stratify must be True or False, got {type(stratify).__name__} "
            "(the labels to stratify by are y)"
        )
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"X and y must have one example per row, got shapes {X.shape} and {y.shape}"
        )
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            f"X and y must have the same number of examples, got {n} and {y.shape[0]}"
        )
    if n < 2:
        raise ValueError(f"need at least 2 examples to split, got {n}")
    n_test = _n_test(test_size, n)
    rng = _rng(seed)

    if not stratify:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:]
    else:
        if y.ndim != 1:
            raise ValueError(
                f"stratify=True needs 1-D class labels y of shape (n,), got shape {y.shape}"
            )
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        if counts.min() < 2:
            c = classes[int(np.argmin(counts))].item()  # 5, not np.int64(5)
            raise ValueError(
                f"stratify=True needs at least 2 examples of every class, "
                f"class {c!r} has {counts.min()}"
            )
        n_classes = len(classes)
        if n_test < n_classes or n - n_test < n_classes:
            raise ValueError(
                f"stratify=True with {n_classes} classes needs at least {n_classes} "
                f"examples in each set, got {n - n_test} training and {n_test} test"
            )
        take = _stratified_counts(counts, n_test)
        by_class = np.argsort(inverse, kind="stable")
        test_parts, train_parts = [], []
        start = 0
        for k, count in enumerate(counts):
            members = rng.permutation(by_class[start : start + count])
            test_parts.append(members[: take[k]])
            train_parts.append(members[take[k] :])
            start += count
        test = rng.permutation(np.concatenate(test_parts))
        train = rng.permutation(np.concatenate(train_parts))

    return X[train], X[test], y[train], y[test]
