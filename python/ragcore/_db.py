"""ragcore.open and the DB handle: the library's calls with Python types (see docs/python.md)."""
from __future__ import annotations

import json
import os
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from . import _errors, _native
from ._types import (CheckReport, Context, Document, DocumentInfo, DocumentPage, Hit,
                     IngestEvent, Progress, Results, Summary)
from ._vectors import as_f32, embed_texts, to_f32_bytes

PathLike = Union[str, "os.PathLike[str]"]
DocLike = Union[Dict[str, Any], Tuple[str, str]]

_FORMATS = {"text": 0, "markdown": 1}
_CONTEXT_FORMATS = {"text": 0, "markdown": 1, "json": 2}


def _opt_text(value: Any) -> str:
    """The text form rag_search_option_set / rag_collection_option_set read."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _search_pairs(mode: Optional[str], filter: Optional[str], mmr: Optional[float],
                  options: Dict[str, Any]) -> List[Tuple[str, str]]:
    pairs = [(k, _opt_text(v)) for k, v in options.items() if v is not None]
    if mode is not None:
        pairs.append(("mode", mode))
    if filter is not None:
        pairs.append(("filter", filter))
    if mmr is not None:
        pairs.append(("mmr_lambda", _opt_text(mmr)))
    return pairs


def _document_tuple(d: Any, i: int) -> tuple:
    """The tuple doc_from_tuple (src/_native.c) reads, from a dict, a (id, text) pair or an
    object with id/text attributes (e.g. a ragcore.Document)."""
    if isinstance(d, tuple) and len(d) == 2:
        d = {"id": d[0], "text": d[1]}
    elif not isinstance(d, dict):
        d = {k: getattr(d, k) for k in ("id", "text", "title", "source", "metadata")
             if hasattr(d, k)}
    try:
        doc_id, text = d["id"], d["text"]
    except KeyError as e:
        raise ValueError(f"document {i}: missing {e.args[0]!r}") from None
    meta = d.get("metadata")
    if meta is not None and not isinstance(meta, str):
        meta = json.dumps(meta)
    fmt = d.get("format", "text")
    if fmt not in _FORMATS:
        raise ValueError(f"document {i}: format must be 'text' or 'markdown', not {fmt!r}")
    return (str(doc_id), text, d.get("title"), d.get("source"), meta,
            int(d.get("source_mtime", 0) or 0), _FORMATS[fmt], int(d.get("valid_until", 0) or 0),
            int(d.get("ttl_seconds", 0) or 0))


def _progress_callback(progress: Any, total_hint: Optional[int]) -> Tuple[Optional[Callable], Any]:
    """(callback for the C layer, tqdm bar or None). progress: True (tqdm when installed),
    a callable taking a Progress, or None/False."""
    if not progress:
        return None, None
    if callable(progress):
        return (lambda *a: progress(Progress(*a))), None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None, None
    bar = tqdm(total=total_hint, unit="doc", desc="ingest")

    def cb(bytes_done, bytes_total, documents, chunks, seconds):
        bar.update(documents - bar.n)
        bar.set_postfix(chunks=chunks, refresh=False)
        return None
    return cb, bar


class _PyEmbedder:
    """Adapts a user embedder to the C callback: fn(texts, is_query) -> float32 bytes."""

    def __init__(self, emb: Any) -> None:
        self.name = getattr(emb, "name", None) or type(emb).__name__
        self.dim = int(emb.dim)
        self.emb = emb

    def __call__(self, texts: List[str], is_query: bool) -> bytes:
        return to_f32_bytes(self.emb(texts, is_query), len(texts), self.dim)


class DB:
    """An open ragcore store. Use :func:`ragcore.open` (also a context manager).

    A DB may be shared by threads: searches run concurrently, writes one at a time, and
    every call that does real work releases the GIL. Close it (or leave the ``with``
    block) to checkpoint the indexes and release the store's writer lock.
    """

    def __init__(self, path: PathLike, *, embedder: Any = None, read_only: bool = False,
                 dim: int = 0, index: Optional[str] = None, chunk_tokens: int = 0,
                 chunk_overlap: int = 0, language: Optional[str] = None,
                 ef_search: int = 0, key: Optional[str] = None) -> None:
        self.path = os.fspath(path)
        custom = None
        name = None
        if embedder is None or isinstance(embedder, str):
            name = embedder
        else:
            pe = _PyEmbedder(embedder)
            custom = (pe.name, pe.dim, pe)
        self._h = _native.open(self.path, name, dim, index, chunk_tokens, chunk_overlap,
                               read_only, language, ef_search, custom, key)
        self._key = key  # checks the copies DB.backup writes of an encrypted store
        self.read_only = read_only
        self.embedder, self.dim, self.index_spec = _native.info(self._h)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoints the indexes and closes the store (waits for calls in flight in other
        threads). Closing twice is harmless."""
        _native.close(self._h)

    def __enter__(self) -> "DB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<ragcore.DB {self.path!r} embedder={self.embedder!r} dim={self.dim}"
                f"{' read-only' if self.read_only else ''}>")

    # -- ingest ---------------------------------------------------------------------------

    def ingest(self, items: Union[Iterable[DocLike], Iterable[PathLike], PathLike], *,
               collection: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None,
               pii: Optional[str] = None, progress: Any = None,
               on_event: Optional[Callable[[IngestEvent], Any]] = None,
               include: Optional[Sequence[str]] = None, exclude: Optional[Sequence[str]] = None,
               strip_boilerplate: bool = False, dry_run: bool = False,
               **policy: Any) -> Summary:
        """Ingests documents or files into `collection` (default ``"default"``).

        `items` is either documents - dicts with ``id`` and ``text`` (optional ``title``,
        ``source``, ``metadata`` (dict), ``source_mtime``, ``format`` ("text"|"markdown"),
        ``valid_until``, ``ttl_seconds``) or ``(id, text)`` pairs - or paths of files and
        directories (txt, Markdown, HTML, PDF, JSONL(.gz) corpora), walked as the CLI does.

        Every document passes the collection's hygiene policy (PII, duplicates, quality),
        is chunked, embedded (the GIL is released) and committed in batches. `pii`
        ("off"|"mask"|"hash"|"drop") and other policy settings (``dedup="skip"``,
        ``quality=True``, ``min_chars=...``; see :meth:`configure`) create a NEW collection
        with that policy; for an existing collection they must match its stored policy
        (change it with :meth:`configure`). `metadata` is merged into every document's.
        `progress`: True for a tqdm bar (when tqdm is installed) or a callable receiving
        :class:`ragcore.Progress`; `on_event` receives an :class:`ragcore.IngestEvent` per
        document or file. Returns the call's :class:`ragcore.Summary`.
        """
        if pii is not None:
            policy["pii"] = pii
        coll = collection or "default"
        if policy:
            self._ensure_policy(coll, policy)
        docs, paths = self._split_items(items)
        meta = json.dumps(metadata) if metadata else None
        cb, bar = _progress_callback(progress, len(docs) if docs is not None else None)
        ev = (lambda *a: on_event(IngestEvent(*a))) if on_event else None
        try:
            if docs is not None:
                s = _native.ingest_documents(self._h, docs, coll, meta, include, exclude,
                                             strip_boilerplate, dry_run, False, cb, ev)
            else:
                s = _native.ingest_paths(self._h, paths, coll, meta, include, exclude,
                                         strip_boilerplate, dry_run, False, cb, ev)
        finally:
            if bar is not None:
                bar.close()
        return Summary(s)

    def sync(self, paths: Union[PathLike, Iterable[PathLike]], *,
             collection: Optional[str] = None, metadata: Optional[Dict[str, Any]] = None,
             allow_empty: bool = False, progress: Any = None,
             on_event: Optional[Callable[[IngestEvent], Any]] = None,
             include: Optional[Sequence[str]] = None,
             exclude: Optional[Sequence[str]] = None, **policy: Any) -> Summary:
        """Brings `collection` in step with the files under `paths`: new and changed files
        are stored, unchanged ones skipped without embedding, documents whose file vanished
        deleted. A path that is missing, or that yields nothing while the collection holds
        documents under it, is refused before anything is deleted unless `allow_empty`."""
        coll = collection or "default"
        if policy:
            self._ensure_policy(coll, policy)
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        plist = [os.fspath(p) for p in paths]
        cb, bar = _progress_callback(progress, None)
        ev = (lambda *a: on_event(IngestEvent(*a))) if on_event else None
        meta = json.dumps(metadata) if metadata else None
        try:
            s = _native.sync_paths(self._h, plist, coll, meta, include, exclude, False, False,
                                   allow_empty, cb, ev)
        finally:
            if bar is not None:
                bar.close()
        return Summary(s)

    @staticmethod
    def _split_items(items: Any) -> Tuple[Optional[list], Optional[list]]:
        if isinstance(items, (str, os.PathLike)):
            return None, [os.fspath(items)]
        if isinstance(items, dict):
            items = [items]
        items = list(items)
        if all(isinstance(x, (str, os.PathLike)) for x in items):
            return None, [os.fspath(x) for x in items]
        if any(isinstance(x, (str, os.PathLike)) for x in items):
            raise TypeError("ingest: pass either documents (dicts, (id, text) pairs) or paths, "
                            "not both in one call")
        return [_document_tuple(d, i) for i, d in enumerate(items)], None

    def _ensure_policy(self, coll: str, policy: Dict[str, Any]) -> None:
        pairs = [(k, _opt_text(v)) for k, v in policy.items()]
        if coll not in self.collections():
            _native.configure(self._h, coll, pairs, True)
            return
        stored = json.loads(_native.collection_stats(self._h, coll, 0)["policy"])
        for k, v in pairs:
            if k in stored and str(stored[k]) != v and not (
                    isinstance(stored[k], bool) and stored[k] == (v == "on")):
                raise _errors.InvalidArgumentError(
                    f"collection '{coll}' exists with {k}={stored[k]!r}, not {v!r}: change its "
                    f"policy with db.configure({coll!r}, {k}=...)", -1)

    def configure(self, collection: str, **settings: Any) -> None:
        """Changes a collection's hygiene policy by setting name: ``pii`` (off|mask|hash|
        drop), ``pii_types`` ("all" or comma-separated EMAIL,PHONE,...), ``dedup``
        (off|skip|keep|flag), ``near_dup_threshold``, ``quality`` (bool), ``min_chars``,
        ``max_chars``, ``max_symbol_ratio``, ``ttl_seconds``. Creates the collection with
        these settings when it does not exist."""
        pairs = [(k, _opt_text(v)) for k, v in settings.items()]
        create = collection not in self.collections()
        _native.configure(self._h, collection, pairs, create)

    # -- search ---------------------------------------------------------------------------

    def search(self, query: Any, k: int = 10, *, mode: Optional[str] = None,
               filter: Optional[str] = None, collection: Optional[str] = None,
               mmr: Optional[float] = None, doc_ids: Optional[Sequence[str]] = None,
               **options: Any) -> Results:
        """The best `k` chunks for `query`, best first.

        `query` is text, or a vector (NumPy array, ``array.array('f')`` or a sequence of
        floats of the store's dimension; NumPy float32 arrays are read in place) for a
        dense search. `mode`: "hybrid" (default: dense + BM25 fused), "dense", "lexical".
        `filter`: an expression over doc_id, source, title, source_mtime, ingested_at,
        updated_at and metadata keys, e.g. ``'lang = "en" AND year >= 2020'``. `mmr`: MMR
        diversification with this relevance weight in (0, 1]. Further options by name, as
        the library's option table declares them (``ragcore.search_options()``):
        fusion, rrf_k, dense_weight, candidates, source_prefix, per_doc,
        collapse_threshold, dense_threshold, lexical_threshold, max_age, half_life,
        recency_weight, time_basis, lexical_unit. Returns :class:`ragcore.Results` (a list of
        :class:`ragcore.Hit` with ``no_confident_context``).
        """
        pairs = _search_pairs(mode, filter, mmr, options)
        pairs.append(("k", str(k)))
        if isinstance(query, str):
            ncc, hits = _native.search(self._h, query, 0, 0, collection, pairs, doc_ids)
        else:
            owner, addr, n = as_f32(query)
            ncc, hits = _native.search(self._h, None, addr, n, collection, pairs, doc_ids)
            del owner
        res = Results(map(Hit, hits))
        res.no_confident_context = ncc
        return res

    def context(self, question: str, budget: int = 1024, *, format: str = "text",
                collection: Optional[str] = None, k: Optional[int] = None,
                mode: Optional[str] = None, filter: Optional[str] = None,
                mmr: Optional[float] = None, stale_after: int = 0,
                source_template: Optional[str] = None, **options: Any) -> Context:
        """A prompt-ready context for `question` within `budget` tokens: adjacent chunks
        merged into passages, sources numbered for citation, each with its freshness.
        `format`: "text", "markdown" or "json". `k` chunks are considered (default 20,
        with MMR 0.7 and at most 3 per document unless set). Search options as
        :meth:`search`."""
        if format not in _CONTEXT_FORMATS:
            raise ValueError(f"format must be one of {sorted(_CONTEXT_FORMATS)}, not {format!r}")
        pairs = _search_pairs(mode, filter, mmr, options)
        if k is not None:
            pairs.append(("k", str(k)))
        text, js, tokens, ncc, stale = _native.context(
            self._h, question, collection, pairs, budget, _CONTEXT_FORMATS[format],
            stale_after, source_template)
        return Context(text, json.loads(js).get("sources", []), tokens, ncc, stale)

    # -- documents ------------------------------------------------------------------------

    def get(self, doc_id: str, *, collection: Optional[str] = None) -> Document:
        """Document `doc_id` with all its chunks in text order. NotFoundError if absent."""
        info, chunks = _native.get(self._h, collection, doc_id)
        return Document(DocumentInfo(*info), [Hit(c) for c in chunks])

    def list(self, *, collection: Optional[str] = None, filter: Optional[str] = None,
             after: Optional[str] = None, limit: int = 100,
             include_expired: bool = False) -> DocumentPage:
        """One page of documents in id order (``page.next`` continues it)."""
        infos, nxt = _native.list(self._h, collection, filter, after, limit, include_expired)
        page = DocumentPage(DocumentInfo(*t) for t in infos)
        page.next = nxt
        return page

    def documents(self, *, collection: Optional[str] = None, filter: Optional[str] = None,
                  page_size: int = 1000) -> Iterator[DocumentInfo]:
        """Every (matching) document of a collection, paging through db.list."""
        after = None
        while True:
            page = self.list(collection=collection, filter=filter, after=after,
                             limit=page_size)
            yield from page
            if page.next is None:
                return
            after = page.next

    def delete(self, doc_ids: Union[str, Iterable[str]], *, collection: Optional[str] = None,
               missing_ok: bool = False) -> int:
        """Deletes documents (one id or many) with their chunks; returns how many were
        deleted. A missing id raises NotFoundError unless `missing_ok`."""
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        n = 0
        nf = _errors.NotFoundError
        for d in doc_ids:
            try:
                _native.delete(self._h, collection, d)
                n += 1
            except nf:
                if not missing_ok:
                    raise
        return n

    # -- collections and maintenance ------------------------------------------------------

    def collections(self) -> List[str]:
        """Collection names in byte order."""
        return _native.collections(self._h)

    def create_collection(self, name: str, **settings: Any) -> None:
        """Creates a collection with a hygiene policy (see :meth:`configure`).
        ExistsError when it exists."""
        _native.configure(self._h, name, [(k, _opt_text(v)) for k, v in settings.items()], True)

    def drop_collection(self, name: str) -> None:
        """Deletes a collection with all its documents, chunks and vectors."""
        _native.drop(self._h, name)

    def stats(self, collection: Optional[str] = None, *, stale_after: int = 0) -> Dict[str, Any]:
        """Counts, freshness and policy: of one collection, or of the store (embedder, dim,
        index and every collection) when `collection` is None."""
        if collection is not None:
            return self._coll_stats(collection, stale_after)
        return {"embedder": self.embedder, "dim": self.dim, "index": self.index_spec,
                "collections": {c: self._coll_stats(c, stale_after)
                                for c in self.collections()}}

    def _coll_stats(self, c: str, stale_after: int) -> Dict[str, Any]:
        s = _native.collection_stats(self._h, c, stale_after)
        s["policy"] = json.loads(s["policy"])
        return s

    def check(self) -> CheckReport:
        """Checks the store's records against each other and against its index files (one
        snapshot; runs beside writers). To repair, close the store and call
        ``ragcore.check(path, repair=True)``."""
        return check(self.path, key=self._key)

    def backup(self, outdir: PathLike, *, key: Optional[str] = None) -> Dict[str, Any]:
        """Backs up the store into `outdir` (absent or empty) while writes go on. The copy
        of an encrypted store stays sealed and is checked with `key` (None: the key this DB
        was opened with, else ``$RAGCORE_STORE_KEY``); it opens with the same key."""
        return _native.backup(self._h, os.fspath(outdir), key if key is not None else self._key)

    def checkpoint(self) -> None:
        """Writes every collection's index file now (close does it too)."""
        _native.checkpoint(self._h)

    def gc(self, collection: Optional[str] = None) -> int:
        """Deletes expired documents; returns how many."""
        return _native.gc(self._h, collection)

    def embed(self, texts: Union[str, Sequence[str]], *, is_query: bool = False) -> Any:
        """Embeds texts with the store's embedder: an (n, dim) float32 NumPy array (a list
        of ``array.array`` rows without NumPy), L2-normalised. The GIL is released."""
        return embed_texts(self._h, self.dim, texts, is_query)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the context budget counts them."""
        return _native.count_tokens(self._h, text)


def open(path: PathLike, *, embedder: Any = None, read_only: bool = False, dim: int = 0,
         index: Optional[str] = None, chunk_tokens: int = 0, chunk_overlap: int = 0,
         language: Optional[str] = None, ef_search: int = 0, key: Optional[str] = None) -> DB:
    """Opens (creating when absent, unless `read_only`) the store in directory `path`.

    `embedder` for a new store: a model name from the model cache ("all-MiniLM-L6-v2";
    ``ragcore model pull``), "hash" / "hash-<dim>" (no model), "openai:MODEL[@URL]", a
    Hugging Face model directory, or a Python embedder - an object with ``name``, ``dim``
    and ``__call__(texts, is_query) -> (n, dim) matrix`` (see :class:`ragcore.FunctionEmbedder`).
    None: the store's recorded embedder, or for a new store the first cached model, else
    "hash". An existing store opened with another embedder raises MismatchError.
    `read_only` handles take no lock and see what the writer commits. `index`: the FAISS
    index of new collections ("HNSW32" default, "Flat", "SQ8", ...). `key`: the store's
    encryption key (64 hex digits, or a passphrase; None: ``$RAGCORE_STORE_KEY`` if set): a
    new store opened with a key is created encrypted; a wrong or missing key raises
    EncryptionKeyError (docs/privacy.md).

    A writer holds the store's lock until :meth:`DB.close` (BusyError for a second writer);
    use ``with ragcore.open(path) as db:``.
    """
    return DB(path, embedder=embedder, read_only=read_only, dim=dim, index=index,
              chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, language=language,
              ef_search=ef_search, key=key)


def check(path: PathLike, *, repair: bool = False, ef_construction: int = 0,
          key: Optional[str] = None) -> CheckReport:
    """Checks (and with `repair`, repairs what can be derived again) the store in `path`.
    A repair takes the writer lock: BusyError while a writer has the store open. `key`:
    an encrypted store's key (None: ``$RAGCORE_STORE_KEY``)."""
    counts, items, totals = _native.check(os.fspath(path), repair, ef_construction, key)
    return CheckReport(counts, items, totals)


def restore(backup: PathLike, path: PathLike, *, force: bool = False,
            key: Optional[str] = None) -> Dict[str, Any]:
    """Restores a backup directory into store directory `path` (`force` replaces an
    existing store; BusyError while a writer holds it). The copy is checked first; an
    encrypted backup needs its `key` (None: ``$RAGCORE_STORE_KEY``; EncryptionKeyError
    when missing or wrong)."""
    return _native.restore(os.fspath(backup), os.fspath(path), force, key)


def backup(path: PathLike, outdir: PathLike, *, key: Optional[str] = None) -> Dict[str, Any]:
    """Backs up a store this process does not have open; an encrypted store's copy is
    checked with `key` (None: ``$RAGCORE_STORE_KEY``)."""
    return _native.backup(os.fspath(path), os.fspath(outdir), key)
