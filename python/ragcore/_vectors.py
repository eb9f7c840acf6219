"""Float32 buffers shared with the C library without copies (NumPy optional)."""
from __future__ import annotations

import array
import itertools
from typing import Any, Sequence, Tuple

_UNSET = object()
_np_module: Any = _UNSET


def _numpy() -> Any:
    """The numpy module, or None without it. NumPy is optional (array.array serves without
    it) and imported on first use, not with ragcore: its import costs more CPU than a small
    ingest or a script's whole run."""
    global _np_module
    if _np_module is _UNSET:
        try:
            import numpy
            _np_module = numpy
        except ImportError:  # pragma: no cover - exercised in the no-NumPy run
            _np_module = None
    return _np_module


def has_numpy() -> bool:
    return _numpy() is not None


def as_f32(vec: Any) -> Tuple[Any, int, int]:
    """(owner, address, floats) of a contiguous float32 view of `vec`.

    A C-contiguous float32 NumPy array and an ``array.array('f')`` are used in place; other
    arrays are converted once, sequences of numbers copied into an ``array.array``. The
    owner must be kept alive while the address is used.
    """
    if isinstance(vec, array.array) and vec.typecode == "f":
        addr, n = vec.buffer_info()
        return vec, addr, n
    _np = _numpy() if hasattr(vec, "__array_interface__") else None
    if _np is not None:
        arr = _np.ascontiguousarray(vec, dtype=_np.float32)
        return arr, arr.__array_interface__["data"][0], int(arr.size)
    buf = array.array("f", vec)
    addr, n = buf.buffer_info()
    return buf, addr, n


def empty_matrix(rows: int, dim: int) -> Tuple[Any, int]:
    """A zeroed rows x dim float32 matrix (NumPy when present) and its address."""
    _np = _numpy()
    if _np is not None:
        m = _np.empty((rows, dim), dtype=_np.float32)
        return m, m.__array_interface__["data"][0]
    buf = array.array("f", bytes(4 * rows * dim))
    return buf, buf.buffer_info()[0]


def matrix_result(m: Any, rows: int, dim: int) -> Any:
    """What embed() returns: the NumPy matrix itself, or a list of array.array rows."""
    if _numpy() is not None:
        return m
    return [m[i * dim:(i + 1) * dim] for i in range(rows)]


def to_f32_bytes(rows: Any, n: int, dim: int) -> bytes:
    """float32 bytes of an n x dim matrix given as NumPy, or a sequence of sequences."""
    _np = _numpy()
    if _np is not None:
        m = _np.asarray(rows, dtype=_np.float32)
        if m.shape != (n, dim):
            raise ValueError(f"embedder returned shape {m.shape}, expected ({n}, {dim})")
        return m.tobytes()
    rows = list(rows)
    if len(rows) != n or any(len(r) != dim for r in rows):
        raise ValueError(f"embedder returned {len(rows)} rows, expected {n} of {dim} floats")
    return array.array("f", itertools.chain.from_iterable(rows)).tobytes()


def as_list(vec: Sequence[float]) -> list:
    """A plain list of floats (for JSON)."""
    if hasattr(vec, "tolist"):
        return vec.tolist()
    return [float(x) for x in vec]


def embed_texts(handle: Any, dim: int, texts: Any, is_query: bool) -> Any:
    """Embeds texts (a str or a sequence) through a store or standalone embedder handle of
    the extension module, into a fresh float32 matrix (see matrix_result)."""
    from . import _native
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    m, addr = empty_matrix(len(texts), dim)
    _native.embed(handle, texts, is_query, addr, len(texts) * dim)
    return matrix_result(m, len(texts), dim)
