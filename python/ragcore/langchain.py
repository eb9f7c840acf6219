"""LangChain integration: a VectorStore over a ragcore store, a retriever returning
ragcore's hits with their provenance, and embeddings from ragcore's in-process encoder
(MiniLM without torch). Install with ``pip install ragcore[langchain]``."""
from __future__ import annotations

import tempfile
import uuid
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore

from . import _db
from ._errors import NotFoundError
from ._filters import dict_to_expr
from ._types import Hit
from .embeddings import Embedder


class RagcoreEmbeddings(Embeddings):
    """LangChain embeddings computed by ragcore's encoder in process (no torch): the model
    is read from ragcore's model cache (``ragcore model pull all-MiniLM-L6-v2``)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2") -> None:
        self.model = model
        self._e = Embedder(model)

    @property
    def dim(self) -> int:
        return self._e.dim

    def embed_documents(self, texts: List[str]) -> List[List[float]]:
        if not texts:
            return []
        return [list(map(float, r)) for r in self._e.embed(texts)]

    def embed_query(self, text: str) -> List[float]:
        return list(map(float, self._e.embed([text], is_query=True)[0]))


class _LangChainEmbedder:
    """A LangChain Embeddings object as a store's embedder (called by the library)."""

    def __init__(self, emb: Embeddings) -> None:
        self.emb = emb
        self.name = "langchain:" + type(emb).__name__
        self.dim = len(emb.embed_query("dimension probe"))

    def __call__(self, texts: List[str], is_query: bool) -> Any:
        if is_query:
            return [self.emb.embed_query(t) for t in texts]
        return self.emb.embed_documents(texts)


def _store_embedder(embedding: Optional[Embeddings]) -> Any:
    if embedding is None:
        return None
    if isinstance(embedding, RagcoreEmbeddings):
        return embedding.model   # the library's own encoder, no Python in the loop
    return _LangChainEmbedder(embedding)


def _hit_document(h: Hit) -> Document:
    return Document(page_content=h.text, metadata=dict(h.metadata), id=h.doc_id)


class RagcoreVectorStore(VectorStore):
    """A LangChain VectorStore backed by a ragcore store (in process).

    ``RagcoreVectorStore(path, embedding)`` opens (or creates) the store in `path` with
    `embedding` as its embedder (a :class:`RagcoreEmbeddings` runs in C; any other
    LangChain Embeddings is called back), or wraps an open ``db``. Each text is one
    document (id = the LangChain id); long texts are chunked by ragcore and a search
    returns each document's best chunk. `mode` is "dense" (default, plain vector
    similarity), "hybrid" (dense + BM25) or "lexical". Filters are ragcore expressions
    (``'lang = "en" AND year >= 2020'``) or dicts (``{"lang": "en", "year": {"$gte":
    2020}}``). Scores are cosine similarities in dense mode.
    """

    def __init__(self, path: Optional[str] = None, embedding: Optional[Embeddings] = None, *,
                 db: Optional[_db.DB] = None, collection: str = "langchain",
                 mode: str = "dense", **open_kwargs: Any) -> None:
        if db is None:
            if path is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="ragcore-langchain-")
                path = self._tmp.name
            db = _db.open(path, embedder=_store_embedder(embedding), **open_kwargs)
            self._owns_db = True
        else:
            self._owns_db = False
        self.db = db
        self._embedding = embedding
        self.collection = collection
        self.mode = mode
        if collection not in db.collections() and not db.read_only:
            db.create_collection(collection)

    def close(self) -> None:
        """Closes the store when this object opened it."""
        if self._owns_db:
            self.db.close()

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return self._embedding

    # -- writes ---------------------------------------------------------------------------

    def add_texts(self, texts: Iterable[str], metadatas: Optional[List[dict]] = None, *,
                  ids: Optional[List[Optional[str]]] = None, **kwargs: Any) -> List[str]:
        texts = list(texts)
        if ids is None:
            ids = [None] * len(texts)
        out_ids = [i if i else str(uuid.uuid4()) for i in ids]
        metas = metadatas or [{} for _ in texts]
        if len(metas) != len(texts) or len(out_ids) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        docs = [{"id": i, "text": t, "metadata": m} for i, t, m in zip(out_ids, texts, metas)]
        if docs:
            s = self.db.ingest(docs, collection=self.collection)
            if s["failed"]:
                raise ValueError(f"ragcore refused {s['failed']} of {len(docs)} documents")
        return out_ids

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        if ids is None:
            self.db.drop_collection(self.collection)
            self.db.create_collection(self.collection)
            return True
        self.db.delete(ids, collection=self.collection, missing_ok=True)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        out = []
        for i in ids:
            try:
                d = self.db.get(i, collection=self.collection)
            except NotFoundError:
                continue
            out.append(Document(page_content=d.text, metadata=d.metadata, id=d.id))
        return out

    # -- searches -------------------------------------------------------------------------

    def _search(self, query: Any, k: int, filter: Any, **options: Any) -> List[Hit]:
        options.setdefault("mode", self.mode if isinstance(query, str) else "dense")
        options.setdefault("per_doc", 1)
        options.setdefault("collapse_threshold", 2.0)   # no collapsing of look-alikes
        return list(self.db.search(query, k=k, filter=dict_to_expr(filter),
                                   collection=self.collection, **options))

    def similarity_search(self, query: str, k: int = 4, filter: Any = None,
                          **kwargs: Any) -> List[Document]:
        return [_hit_document(h) for h in self._search(query, k, filter, **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Any = None,
                                     **kwargs: Any) -> List[Tuple[Document, float]]:
        return [(_hit_document(h), h.score) for h in self._search(query, k, filter, **kwargs)]

    def similarity_search_by_vector(self, embedding: List[float], k: int = 4,
                                    filter: Any = None, **kwargs: Any) -> List[Document]:
        return [_hit_document(h) for h in self._search(embedding, k, filter, **kwargs)]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, filter: Any = None,
                                      **kwargs: Any) -> List[Document]:
        hits = self._search(query, k, filter, mmr=max(lambda_mult, 1e-6),
                            candidates=max(fetch_k, k), **kwargs)
        return [_hit_document(h) for h in hits]

    def max_marginal_relevance_search_by_vector(self, embedding: List[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                filter: Any = None,
                                                **kwargs: Any) -> List[Document]:
        hits = self._search(embedding, k, filter, mmr=max(lambda_mult, 1e-6),
                            candidates=max(fetch_k, k), **kwargs)
        return [_hit_document(h) for h in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.mode == "dense":
            return lambda s: (s + 1.0) / 2.0     # cosine in [-1, 1] -> [0, 1]
        return lambda s: s

    @classmethod
    def from_texts(cls, texts: List[str], embedding: Embeddings,
                   metadatas: Optional[List[dict]] = None, *,
                   ids: Optional[List[str]] = None, path: Optional[str] = None,
                   **kwargs: Any) -> "RagcoreVectorStore":
        store = cls(path, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


class RagcoreRetriever(BaseRetriever):
    """Retrieves ragcore hits (hybrid by default) as Documents whose metadata carries the
    provenance and freshness: doc_id, chunk_id, score, dense_score, lexical_score, source,
    title, heading_path, start, end, source_mtime, ingested_at, plus the document's own
    metadata. ``RagcoreRetriever(db=db, k=5, filter='lang = "en"')``."""

    db: Any
    k: int = 5
    collection: Optional[str] = None
    mode: str = "hybrid"
    filter: Any = None
    options: dict = {}

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> List[Document]:
        hits = self.db.search(query, k=self.k, mode=self.mode, filter=dict_to_expr(self.filter),
                              collection=self.collection, **self.options)
        out = []
        for h in hits:
            meta = dict(h.metadata)
            meta.update(doc_id=h.doc_id, chunk_id=h.chunk_id, score=h.score,
                        dense_score=h.dense_score, lexical_score=h.lexical_score,
                        source=h.source, title=h.title, heading_path=h.heading_path,
                        start=h.start, end=h.end, source_mtime=h.source_mtime,
                        ingested_at=h.ingested_at,
                        no_confident_context=hits.no_confident_context)
            out.append(Document(page_content=h.text, metadata=meta, id=h.doc_id))
        return out


__all__ = ["RagcoreEmbeddings", "RagcoreVectorStore", "RagcoreRetriever"]
