"""LlamaIndex integration: a vector store for llama-index-core over a ragcore store (dense,
hybrid and lexical queries, metadata filters) and embeddings from ragcore's in-process
encoder. Install with ``pip install ragcore[llama-index]``."""
from __future__ import annotations

import tempfile
import threading
from typing import Any, Dict, List, Optional, Sequence

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterCondition,
                                                  FilterOperator, MetadataFilters,
                                                  VectorStoreQuery, VectorStoreQueryMode,
                                                  VectorStoreQueryResult)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from . import _db
from ._filters import _key, _literal
from .embeddings import Embedder


class RagcoreEmbedding(BaseEmbedding):
    """LlamaIndex embeddings computed by ragcore's encoder in process (no torch)."""

    model: str = "all-MiniLM-L6-v2"
    _e: Any = PrivateAttr()

    def __init__(self, model: str = "all-MiniLM-L6-v2", **kwargs: Any) -> None:
        super().__init__(model=model, model_name=model, **kwargs)
        self._e = Embedder(model)

    @classmethod
    def class_name(cls) -> str:
        return "RagcoreEmbedding"

    def _get_query_embedding(self, query: str) -> List[float]:
        return [float(x) for x in self._e.embed([query], is_query=True)[0]]

    def _get_text_embedding(self, text: str) -> List[float]:
        return [float(x) for x in self._e.embed([text])[0]]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return [[float(x) for x in r] for r in self._e.embed(texts)]

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)


class _Passthrough:
    """The store's embedder: hands back the vectors LlamaIndex computed for the nodes (and
    the query) instead of embedding again. A text without a supplied vector fails."""

    def __init__(self, dim: int) -> None:
        self.name = f"llama-index-{dim}"
        self.dim = dim
        self.pending: Dict[str, List[float]] = {}

    def __call__(self, texts: List[str], is_query: bool) -> List[List[float]]:
        out = []
        for t in texts:
            v = self.pending.get(t)
            if v is None:
                v = self.pending.get(t.strip())
            if v is None:
                raise KeyError(f"no embedding supplied for text {t[:40]!r}")
            out.append(v)
        return out


_OPS = {FilterOperator.EQ: "=", FilterOperator.NE: "!=", FilterOperator.GT: ">",
        FilterOperator.GTE: ">=", FilterOperator.LT: "<", FilterOperator.LTE: "<="}


def filters_to_expr(f: Optional[MetadataFilters]) -> Optional[str]:
    """LlamaIndex MetadataFilters as a ragcore filter expression."""
    if f is None or not f.filters:
        return None
    parts = []
    for m in f.filters:
        if isinstance(m, MetadataFilters):
            parts.append(f"({filters_to_expr(m)})")
            continue
        k = _key(m.key)
        if m.operator in _OPS:
            parts.append(f"{k} {_OPS[m.operator]} {_literal(m.value)}")
        elif m.operator in (FilterOperator.IN, FilterOperator.NIN):
            e = f"{k} IN ({', '.join(_literal(v) for v in m.value)})"
            parts.append(e if m.operator == FilterOperator.IN else f"NOT {e}")
        elif m.operator == FilterOperator.IS_EMPTY:
            parts.append(f"NOT EXISTS {k}")
        else:
            raise ValueError(f"filter operator {m.operator} is not supported by ragcore")
    joiner = " OR " if f.condition == FilterCondition.OR else " AND "
    expr = joiner.join(parts)
    return f"NOT ({expr})" if f.condition == getattr(FilterCondition, "NOT", None) else expr


class RagcoreVectorStore(BasePydanticVectorStore):
    """A llama-index vector store backed by a ragcore store in `path` (a temporary
    directory when None), for embeddings of dimension `dim`.

    Nodes keep the vectors LlamaIndex computed (ragcore stores them as given; the store's
    embedder is recorded as ``llama-index-<dim>``). Query modes: DEFAULT (dense, by the
    query vector), HYBRID (dense + BM25 fused; needs query_str), TEXT_SEARCH/SPARSE (BM25).
    Metadata filters become ragcore filter expressions.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection: str = "llama_index"
    _db: Any = PrivateAttr()
    _emb: Any = PrivateAttr()
    _lock: Any = PrivateAttr()
    _tmp: Any = PrivateAttr(default=None)

    def __init__(self, path: Optional[str] = None, dim: int = 384, *,
                 collection: str = "llama_index", **open_kwargs: Any) -> None:
        super().__init__(collection=collection)
        if path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ragcore-llama-")
            path = self._tmp.name
        self._emb = _Passthrough(dim)
        open_kwargs.setdefault("chunk_tokens", 8192)   # nodes are chunked by LlamaIndex
        self._db = _db.open(path, embedder=self._emb, **open_kwargs)
        self._lock = threading.Lock()
        if collection not in self._db.collections():
            self._db.create_collection(collection)

    @classmethod
    def class_name(cls) -> str:
        return "RagcoreVectorStore"

    @property
    def client(self) -> Any:
        return self._db

    def close(self) -> None:
        self._db.close()

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        docs = []
        vectors = {}
        for n in nodes:
            text = n.get_content(metadata_mode=MetadataMode.NONE)
            meta = node_to_metadata_dict(n, remove_text=True, flat_metadata=False)
            docs.append({"id": n.node_id, "text": text, "metadata": meta})
            emb = n.get_embedding()
            vectors[text] = emb
            vectors[text.strip()] = emb
        with self._lock:   # the passthrough table belongs to one ingest at a time
            self._emb.pending = vectors
            try:
                self._db.ingest(docs, collection=self.collection)
            finally:
                self._emb.pending = {}
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **kwargs: Any) -> None:
        ids = [d.id for d in self._db.documents(collection=self.collection,
                                                filter=f"ref_doc_id = {_literal(ref_doc_id)}")]
        self._db.delete(ids, collection=self.collection, missing_ok=True)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        k = query.similarity_top_k or 2
        expr = filters_to_expr(query.filters)
        if query.doc_ids:
            ids = ", ".join(_literal(i) for i in query.doc_ids)
            e = f"ref_doc_id IN ({ids})"
            expr = f"({expr}) AND {e}" if expr else e
        opts: Dict[str, Any] = {"collection": self.collection, "filter": expr, "per_doc": 1,
                                "collapse_threshold": 2.0, "doc_ids": query.node_ids or None}
        mode = query.mode
        if mode in (VectorStoreQueryMode.TEXT_SEARCH, VectorStoreQueryMode.SPARSE):
            hits = self._db.search(query.query_str, k, mode="lexical", **opts)
        elif mode == VectorStoreQueryMode.HYBRID and query.query_str:
            if query.alpha is not None:
                opts.update(fusion="weighted", dense_weight=query.alpha)
            with self._lock:
                self._emb.pending = {query.query_str: query.query_embedding}
                try:
                    hits = self._db.search(query.query_str, k, mode="hybrid", **opts)
                finally:
                    self._emb.pending = {}
        else:
            if query.query_embedding is None:
                raise ValueError("a dense query needs query_embedding")
            if mode == VectorStoreQueryMode.MMR:
                opts["mmr"] = (kwargs.get("mmr_threshold") or query.mmr_threshold or 0.5)
            hits = self._db.search(query.query_embedding, k, mode="dense", **opts)
        nodes, sims, ids = [], [], []
        for h in hits:
            node = metadata_dict_to_node(h.metadata, text=h.text)
            nodes.append(node)
            sims.append(h.score)
            ids.append(h.doc_id)
        return VectorStoreQueryResult(nodes=nodes, similarities=sims, ids=ids)


__all__ = ["RagcoreEmbedding", "RagcoreVectorStore", "filters_to_expr"]
