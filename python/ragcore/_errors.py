"""Exceptions: one class per ragcore status code, each carrying the library's message."""
from __future__ import annotations

from typing import Dict, Optional, Type


class Error(Exception):
    """Base of every ragcore error.

    ``str(e)`` is the library's detail (``rag_errmsg``), e.g. ``"store '/x' is open for
    writing by pid 4242 (ragcore-server)"``; ``e.code`` is the negative ``RAG_E*`` status
    (or, from :class:`ragcore.Client`, the HTTP status) and ``e.errmsg`` the message.
    """

    code: int = -1

    def __init__(self, message: str = "", code: Optional[int] = None) -> None:
        super().__init__(message)
        self.errmsg = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.errmsg


class InvalidArgumentError(Error, ValueError):
    """RAG_EINVAL: an argument or option was refused (the message names it)."""
    code = -1


class NoMemoryError(Error, MemoryError):
    """RAG_ENOMEM."""
    code = -2


class IOFailure(Error, OSError):
    """RAG_EIO: reading or writing a file failed."""
    code = -3


class NotFoundError(Error, LookupError):
    """RAG_ENOTFOUND: no such document, collection, store or model."""
    code = -4


class ExistsError(Error):
    """RAG_EEXIST: it exists already (collection, non-empty backup directory)."""
    code = -5


class CorruptError(Error):
    """RAG_ECORRUPT: damaged data, or not a ragcore store."""
    code = -6


class MismatchError(Error):
    """RAG_EMISMATCH: the store was created with another embedder or dimension."""
    code = -7


class StoreError(Error):
    """RAG_ESTORE: the storage engine failed."""
    code = -8


class VectorIndexError(Error):
    """RAG_EINDEX: the vector index failed."""
    code = -9


class EmbedError(Error):
    """RAG_EEMBED: the embedder failed (a Python embedder's exception is named)."""
    code = -10


class ParseError(Error, ValueError):
    """RAG_EPARSE: malformed input, e.g. a filter expression (the byte position is named)."""
    code = -11


class UnsupportedError(Error):
    """RAG_EUNSUPPORTED: an operation or format this build does not support."""
    code = -12


class FullError(Error):
    """RAG_EFULL: no space left for the store."""
    code = -13


class ReadOnlyError(Error):
    """RAG_EREADONLY: a write through a read-only handle."""
    code = -14


class EncodingError(Error, ValueError):
    """RAG_EENCODING: text that is not valid UTF-8."""
    code = -15


class BusyError(Error):
    """RAG_EBUSY: another writer holds the store (the message names its pid and program)."""
    code = -16


class CancelledError(Error):
    """RAG_ECANCELED: a callback asked to stop."""
    code = -17


class SequenceError(Error):
    """RAG_ESEQUENCE: a log batch out of sequence."""
    code = -18


class EncryptionKeyError(Error):
    """RAG_EKEY: an encrypted store opened without its key or with another key, or a key
    given for a plain store."""
    code = -19


BY_CODE: Dict[int, Type[Error]] = {
    cls.code: cls
    for cls in (InvalidArgumentError, NoMemoryError, IOFailure, NotFoundError, ExistsError,
                CorruptError, MismatchError, StoreError, VectorIndexError, EmbedError,
                ParseError, UnsupportedError, FullError, ReadOnlyError, EncodingError,
                BusyError, CancelledError, SequenceError, EncryptionKeyError)
}

__all__ = ["Error"] + [cls.__name__ for cls in BY_CODE.values()]


class AuthError(Error, PermissionError):
    """ragcore.Client: the server refused the API key (HTTP 401 or 403)."""
    code = 401


def from_http(status: int, code: str, message: str) -> Error:
    """The exception for a server's error reply {"error": {"code", "message"}}."""
    if status in (401, 403):
        cls: type = AuthError
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ExistsError
    elif status in (429, 503):
        cls = BusyError
    elif status == 507:
        cls = FullError
    elif status in (400, 413, 422):
        cls = ParseError if "parse" in code or "filter" in code else InvalidArgumentError
    else:
        cls = Error
    return cls(f"{message} (HTTP {status} {code})", status)


__all__.append("AuthError")
