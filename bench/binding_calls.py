#!/usr/bin/env python3
"""binding_calls.py - the per-call cost of three ways Python can call libragcore, measured
side by side: the stable-ABI extension module (ragcore._native, what the package uses),
ctypes (stdlib) and cffi in ABI mode (when installed), on a call that does nearly nothing
(rag_version_number; for the extension, version() and noop(handle), which also takes and
releases a store handle). Justifies the choice in docs/python.md.
usage: PYTHONPATH=<build>/python python3 bench/binding_calls.py <build>/lib/libragcore.so"""
import ctypes
import sys
import tempfile
import time

import ragcore
from ragcore import _native

N = 500000


def per_call(fn):
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(N):
            fn()
        best = min(best, (time.perf_counter() - t) / N)
    return best * 1e9


def main():
    lib = sys.argv[1]
    out = {}
    out["extension version()"] = per_call(_native.version)
    with ragcore.open(tempfile.mkdtemp() + "/s", embedder="hash") as db:
        h = db._h
        out["extension noop(handle)"] = per_call(lambda: _native.noop(h))
    c = ctypes.CDLL(lib)
    f = c.rag_version_number
    f.restype = ctypes.c_int
    out["ctypes rag_version_number()"] = per_call(f)
    try:
        import cffi
        ffi = cffi.FFI()
        ffi.cdef("int rag_version_number(void);")
        cl = ffi.dlopen(lib)
        out["cffi ABI rag_version_number()"] = per_call(cl.rag_version_number)
    except ImportError:
        pass
    out["python empty lambda"] = per_call(lambda: None)
    for k, v in out.items():
        print(f"{k:34s} {v:7.1f} ns")


if __name__ == "__main__":
    main()
