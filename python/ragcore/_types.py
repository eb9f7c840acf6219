"""Result types: hits, documents, contexts, summaries - plain Python objects, built from the
tuples the C layer returns (hit_tuple and doc_info_tuple in src/_native.c)."""
from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional


def _nan_to_none(x: float) -> Optional[float]:
    return None if x != x else x


class Hit:
    """One ranked chunk with its provenance and freshness.

    ``score`` is the rank score of the mode (dense: cosine; lexical: BM25; hybrid: the fused
    score); ``dense_score`` / ``lexical_score`` keep each side's own score (``None`` when
    that side did not rank the chunk). ``start``/``end`` are byte offsets of the chunk in
    the document's UTF-8 text; times are unix seconds (0: unknown).
    """

    __slots__ = ("chunk_id", "score", "doc_id", "text", "title", "source", "heading_path",
                 "metadata_json", "start", "end", "token_count", "source_mtime", "ingested_at",
                 "updated_at", "valid_until", "dense_score", "lexical_score", "dense_rank",
                 "lexical_rank", "_metadata")

    def __init__(self, t: tuple) -> None:
        (self.chunk_id, self.score, self.doc_id, self.text, self.title, self.source,
         self.heading_path, self.metadata_json, self.start, self.end, self.token_count,
         self.source_mtime, self.ingested_at, self.updated_at, self.valid_until, ds, ls,
         self.dense_rank, self.lexical_rank) = t
        self.dense_score = _nan_to_none(ds)
        self.lexical_score = _nan_to_none(ls)
        self._metadata = None

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Hit":
        """A hit from the HTTP server's JSON form (ragcore.Client)."""
        nan = float("nan")
        ds, ls = d.get("dense_score"), d.get("lexical_score")
        h = cls((d.get("chunk_id", 0), d.get("score", 0.0), d.get("doc_id", ""),
                 d.get("text", ""), d.get("title", ""), d.get("source", ""),
                 d.get("heading_path", ""), "", d.get("start", 0), d.get("end", 0),
                 d.get("token_count", 0), d.get("source_mtime", 0), d.get("ingested_at", 0),
                 d.get("updated_at", 0), d.get("valid_until", 0),
                 nan if ds is None else ds, nan if ls is None else ls,
                 d.get("dense_rank", 0), d.get("lexical_rank", 0)))
        h._metadata = d.get("metadata") or {}
        h.metadata_json = json.dumps(h._metadata)
        return h

    @property
    def metadata(self) -> Dict[str, Any]:
        """The document's metadata (parsed once from metadata_json)."""
        if self._metadata is None:
            self._metadata = json.loads(self.metadata_json) if self.metadata_json else {}
        return self._metadata

    @property
    def age(self) -> Optional[float]:
        """Seconds since the source time (its mtime, else the ingest time); None if unknown."""
        t = self.source_mtime or self.ingested_at
        return time.time() - t if t else None

    def to_dict(self) -> Dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__slots__ if not k.startswith("_")}
        del d["metadata_json"]
        d["metadata"] = self.metadata
        return d

    def __repr__(self) -> str:
        text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return (f"Hit(doc_id={self.doc_id!r}, chunk_id={self.chunk_id}, "
                f"score={self.score:.4f}, text={text!r})")


class Results(List[Hit]):
    """The hits of one search, best first (a list), and whether any is confident."""

    no_confident_context: bool = False


class DocumentInfo(NamedTuple):
    """What the store records about a document (a page of db.list)."""

    id: str
    source: str
    title: str
    metadata_json: str
    source_mtime: int
    ingested_at: int
    updated_at: int
    valid_until: int
    text_bytes: int
    chunks: int
    expired: bool
    content_hash: int

    @property
    def metadata(self) -> Dict[str, Any]:
        return json.loads(self.metadata_json) if self.metadata_json else {}


class Document:
    """A stored document with all its chunks in text order (db.get)."""

    __slots__ = ("info", "chunks")

    def __init__(self, info: DocumentInfo, chunks: List[Hit]) -> None:
        self.info = info
        self.chunks = chunks

    id = property(lambda self: self.info.id)
    source = property(lambda self: self.info.source)
    title = property(lambda self: self.info.title)
    metadata = property(lambda self: self.info.metadata)

    @property
    def text(self) -> str:
        """The document's text, stitched from its chunks by their byte offsets (chunks
        may overlap; each is an exact slice of the text). The store keeps chunks, not the
        whole text: whitespace the chunker left between two chunks (paragraph breaks) comes
        back as that many newlines (one space for a single byte), so the length is exact."""
        out = bytearray()
        for c in self.chunks:
            b = c.text.encode()
            if c.end <= len(out):
                continue
            skip = len(out) - c.start
            if skip < 0:  # whitespace between chunks, not stored
                out.extend(b" " if skip == -1 else b"\n" * -skip)
                skip = 0
            out.extend(b[skip:])
        if len(out) < self.info.text_bytes:   # trailing whitespace
            out.extend(b"\n" * (self.info.text_bytes - len(out)))
        return out.decode(errors="replace")

    def __repr__(self) -> str:
        return f"Document(id={self.id!r}, chunks={len(self.chunks)}, title={self.title!r})"


class DocumentPage(List[DocumentInfo]):
    """One page of db.list(); ``next`` is the cursor of the following page (None at the end)."""

    next: Optional[str] = None


class Context(NamedTuple):
    """A prompt-ready context (db.context): ``text`` with numbered citations, ``sources``
    (the JSON form's source list), the token count and the confidence and staleness flags."""

    text: str
    sources: List[Dict[str, Any]]
    tokens: int
    no_confident_context: bool
    stale_context: bool

    def __str__(self) -> str:
        return self.text


class Progress(NamedTuple):
    """Ingest progress handed to a progress callback."""

    bytes_done: int
    bytes_total: int
    documents: int
    chunks: int
    seconds: float


class IngestEvent(NamedTuple):
    """What happened to one document or file (ingest/sync ``on_event``)."""

    action: str           # stored, unchanged, deleted, kept, skipped, filtered, pii-dropped, ...
    id: str
    path: str
    reason: str
    canonical_id: str
    duplicate_kind: str
    similarity: float
    status: int
    skip_kind: int
    pii_found: int


class Summary(Dict[str, Any]):
    """Counts of one ingest or sync call (a dict; keys are also attributes)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class CheckReport(NamedTuple):
    """rag_check's findings: counts by kind, the items (kind, collection, message), totals."""

    counts: Dict[str, int]
    items: List[tuple]
    totals: Dict[str, int]

    @property
    def ok(self) -> bool:
        """No problem found (or every problem repaired)."""
        return self.counts["unfixed"] == 0 and (self.counts["problem"] == 0 or
                                                self.counts["repaired"] > 0)

    def __iter__(self) -> Iterator[Any]:  # NamedTuple iteration stays available via tuple()
        return tuple.__iter__(self)
