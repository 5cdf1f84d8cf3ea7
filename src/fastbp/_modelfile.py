"""Reading a saved `Network` safely: never unpickle, check everything."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from fastbp.network import FORMAT_VERSION, _layout  # network imports this module lazily

FORMAT = "fastbp-network"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # what np.load takes for an .npz archive


def _fail(path, why):
    return ValueError(f"{path!s}: not a valid fastbp network file: {why}")


def read(cls, path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such fastbp network file: {path!r}")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise _fail(path, f"cannot read it ({type(e).__name__}: {e})") from None
    if not magic.startswith(ZIP_MAGIC):
        # np.load would take it for a pickle and refuse it with advice to unpickle it.
        what = ("is empty" if not magic else "is a single .npy array" if magic == b"\x93NUMPY"
                else "is not a zip archive")
        raise _fail(path, f"not an .npz archive (the file {what})")
    try:
        with np.load(path, allow_pickle=False) as f:
            contents = {key: f[key] for key in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        # allow_pickle=False makes an object array raise ValueError here: refused, never unpickled.
        raise _fail(path, f"cannot read it as an .npz archive ({type(e).__name__}: {e})") from None
    except Exception as e:  # zlib.error and friends from a corrupt member
        raise _fail(path, f"corrupt archive ({type(e).__name__}: {e})") from None

    for key, value in contents.items():
        if not isinstance(value, np.ndarray):   # a zip member that is not an .npy file
            raise _fail(path, f"member {key!r} is not a NumPy array")
    meta = contents.get("meta")
    if meta is None:
        raise _fail(path, "missing the 'meta' JSON record")
    if meta.dtype.kind != "U" or meta.ndim != 0:
        raise _fail(path, f"'meta' must be a JSON string; got dtype {meta.dtype} shape {meta.shape}")
    try:
        meta = json.loads(str(meta))
    except ValueError as e:
        raise _fail(path, f"'meta' is not JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, f"'meta' does not say format={FORMAT!r}")
    version = meta.get("version")
    if type(version) is not int or version < 1:      # save has always written one
        raise _fail(path, f"'meta' version must be a positive integer; got {version!r}")
    if version > FORMAT_VERSION:
        raise _fail(path, f"format version {version} is newer than this fastbp reads "
                          f"(version {FORMAT_VERSION}); upgrade fastbp to load it")
    try:
        sizes = meta["sizes"]
        if not isinstance(sizes, list) or not all(type(s) is int for s in sizes):
            raise ValueError(f"sizes must be a list of ints, got {sizes!r}")
        if meta["dtype"] not in ("float32", "float64"):   # what save writes; np.dtype(None) is float64
            raise ValueError(f"dtype must be 'float32' or 'float64', got {meta['dtype']!r}")
        layout = _layout(sizes, meta["activation"], meta["output"], meta["cost"], meta["dtype"])
        sizes = layout[0]
        net = cls.__new__(cls)
        net._setup(tuple(sizes), *layout[1:])
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"bad metadata ({e})") from None

    L = len(sizes) - 1
    expected = {"meta"} | {f"W{l}" for l in range(1, L + 1)} | {f"b{l}" for l in range(1, L + 1)}
    if set(contents) != expected:
        raise _fail(path, f"arrays {sorted(contents)}; expected {sorted(expected)}")
    net.weights, net.biases = [], []
    for l in range(1, L + 1):
        for key, shape, out in ((f"W{l}", (sizes[l], sizes[l - 1]), net.weights),
                                (f"b{l}", (sizes[l],), net.biases)):
            a = contents[key]
            if a.shape != shape:
                raise _fail(path, f"{key} has shape {a.shape}; expected {shape}")
            if a.dtype != net.dtype:
                raise _fail(path, f"{key} has dtype {a.dtype}; expected {net.dtype}")
            if not np.isfinite(a).all():
                raise _fail(path, f"{key} contains NaN or infinity")
            out.append(np.ascontiguousarray(a, dtype=net.dtype))
    return net
