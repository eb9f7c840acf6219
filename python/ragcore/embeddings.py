"""Embedders without a store: ragcore's in-process encoder (MiniLM in C, no torch), and a
wrapper that turns a Python function into an embedder a store can use."""
from __future__ import annotations

from typing import Any, Callable, List, Sequence, Union

from . import _native
from ._vectors import embed_texts


class Embedder:
    """ragcore's embedder used directly: ``Embedder("all-MiniLM-L6-v2")`` (from the model
    cache; ``ragcore model pull all-MiniLM-L6-v2``), ``Embedder("hash")``, a Hugging Face
    model directory or ``"openai:MODEL@URL"``. Threads may share one; the GIL is released
    while it encodes."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", dim: int = 0) -> None:
        self._e, self.name, self.dim = _native.embedder_create(name, dim)

    def embed(self, texts: Union[str, Sequence[str]], *, is_query: bool = False) -> Any:
        """An (n, dim) float32 NumPy array (a list of array.array rows without NumPy) of
        L2-normalised vectors. Queries get the model's query instruction, if it has one."""
        return embed_texts(self._e, self.dim, texts, is_query)

    def __call__(self, texts: List[str], is_query: bool) -> Any:
        return self.embed(texts, is_query=is_query)

    def __repr__(self) -> str:
        return f"<ragcore.Embedder {self.name!r} dim={self.dim}>"


class FunctionEmbedder:
    """A Python function as a store's embedder: ``fn(texts, is_query) -> (n, dim) matrix``.
    The store records `name` and `dim` and refuses to reopen with another embedder."""

    def __init__(self, name: str, dim: int, fn: Callable[[List[str], bool], Any]) -> None:
        self.name, self.dim, self.fn = name, int(dim), fn

    def __call__(self, texts: List[str], is_query: bool) -> Any:
        return self.fn(texts, is_query)
