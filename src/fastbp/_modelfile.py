"""Reading a saved `Network` safely: never unpickle, check everything."""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from fastbp.network import (  # network imports this module lazily
    FORMAT, FORMAT_VERSION, _layout, _parameter_array)

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")   # what np.load takes for an .npz archive


#: The longest 'meta' record read (in characters): save writes about 8 per layer.
#: The bound is checked in the member's header, before the record is read.
MAX_META_CHARS = 1 << 24


class _Refused(ValueError):
    """A malformed file, already described with its name."""


def _fail(path, why):
    return _Refused(f"{path!s}: not a valid fastbp network file: {why}")


def _header(zf, name):
    """(shape, dtype) from the .npy header of zip member `name`, reading no array data."""
    with zf.open(name) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:       # savez writes 1.0 (2.0 for huge headers); 3.0 is for utf-8 field names
            raise ValueError(f"unsupported .npy format version {version}")
    return shape, dtype


def _array(zf, name):
    with zf.open(name) as fp:
        # allow_pickle=False: an object array raises ValueError; it is never unpickled.
        return np.lib.format.read_array(fp, allow_pickle=False)


def read(cls, path):
    """Every member's header is checked against the metadata before any array
    data is read, so a small file cannot make load decompress a large member
    only to refuse it."""
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
        with zipfile.ZipFile(path) as zf:
            return _read_archive(cls, path, zf)
    except _Refused:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise _fail(path, f"cannot read it as an .npz archive ({type(e).__name__}: {e})") from None
    except Exception as e:  # zlib.error and friends from a corrupt member
        raise _fail(path, f"corrupt archive ({type(e).__name__}: {e})") from None


def _read_archive(cls, path, zf):
    members = {}
    for name in zf.namelist():
        if not name.endswith(".npy"):
            raise _fail(path, f"member {name!r} is not a NumPy array")
        members[name[:-4]] = name
    if "meta" not in members:
        raise _fail(path, "missing the 'meta' JSON record")
    shape, dtype = _header(zf, members["meta"])
    if dtype.kind != "U" or shape != ():
        raise _fail(path, f"'meta' must be a JSON string; got dtype {dtype} shape {shape}")
    if dtype.itemsize // 4 > MAX_META_CHARS:
        raise _fail(path, f"'meta' is {dtype.itemsize // 4} characters long; expected at most "
                          f"{MAX_META_CHARS}")
    try:
        meta = json.loads(str(_array(zf, members["meta"])))
    except (ValueError, RecursionError) as e:        # RecursionError: "[[[[..." nested deeply
        raise _fail(path, f"'meta' is not JSON ({type(e).__name__}: {e})") from None
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
    if set(members) != expected or len(members) != len(zf.namelist()):
        raise _fail(path, f"arrays {sorted(members)}; expected {sorted(expected)}")
    params = []
    for l in range(1, L + 1):
        for key, shape in ((f"W{l}", (sizes[l], sizes[l - 1])), (f"b{l}", (sizes[l],))):
            got_shape, got_dtype = _header(zf, members[key])
            if got_shape != shape:
                raise _fail(path, f"{key} has shape {got_shape}; expected {shape}")
            if got_dtype != net.dtype:
                raise _fail(path, f"{key} has dtype {got_dtype}; expected {net.dtype}")
            params.append(key)
    net.weights, net.biases = [], []
    for key in params:
        a = _array(zf, members[key])
        if not np.isfinite(a).all():
            raise _fail(path, f"{key} contains NaN or infinity")
        (net.weights if key[0] == "W" else net.biases).append(_parameter_array(a, net.dtype))
    return net
