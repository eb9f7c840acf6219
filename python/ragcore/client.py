"""ragcore.Client: the DB API over ragcore-server's HTTP API (stdlib urllib only), so code
moves between an embedded store and the service by changing one line."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from . import _errors
from ._types import Context, Document, DocumentInfo, Hit, Results, Summary
from ._vectors import as_list, has_numpy


class Client:
    """A ragcore-server at `url` (``"http://127.0.0.1:8080"``), authenticated with
    `api_key` (sent as a bearer token) when the server has keys.

    The methods mirror :class:`ragcore.DB`: search, context, ingest (documents), get,
    delete, collections, stats, create_collection, drop_collection, embed. What only a
    local store can do (file ingest and sync, check, backup) raises UnsupportedError.
    Errors raise the same exception classes, from the server's error code and HTTP status.
    """

    def __init__(self, url: str, api_key: Optional[str] = None, *,
                 collection: str = "default", timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.collection = collection
        self.timeout = timeout

    # -- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", "Bearer " + self.api_key)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
                raise _errors.from_http(e.code, err.get("code", ""), err.get("message", "")) \
                    from None
            except (ValueError, KeyError, TypeError):
                raise _errors.from_http(e.code, "http", raw[:200].decode(errors="replace")) \
                    from None
        except urllib.error.URLError as e:
            raise _errors.IOFailure(f"cannot reach {self.url}: {e.reason}", -3) from None
        return json.loads(raw) if raw else None

    def _coll(self, collection: Optional[str]) -> str:
        return "/v1/collections/" + urllib.parse.quote(collection or self.collection, safe="")

    def close(self) -> None:
        """Nothing to release (each request is its own connection)."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the DB API -----------------------------------------------------------------------

    def search(self, query: Any, k: int = 10, *, mode: Optional[str] = None,
               filter: Optional[str] = None, collection: Optional[str] = None,
               mmr: Optional[float] = None, doc_ids: Optional[Sequence[str]] = None,
               **options: Any) -> Results:
        """As :meth:`ragcore.DB.search`, served by the server."""
        body: Dict[str, Any] = {"k": k}
        if isinstance(query, str):
            body["query"] = query
        else:
            body["vector"] = as_list(query)
        for key, v in (("mode", mode), ("filter", filter), ("mmr_lambda", mmr),
                       ("doc_ids", list(doc_ids) if doc_ids is not None else None)):
            if v is not None:
                body[key] = v
        body.update({key: v for key, v in options.items() if v is not None})
        r = self._request("POST", self._coll(collection) + "/search", body)
        res = Results(Hit.from_json(h) for h in r.get("results", []))
        res.no_confident_context = bool(r.get("no_confident_context", False))
        return res

    def context(self, question: str, budget: int = 1024, *, format: str = "text",
                collection: Optional[str] = None, k: Optional[int] = None,
                mode: Optional[str] = None, filter: Optional[str] = None,
                mmr: Optional[float] = None, **options: Any) -> Context:
        """As :meth:`ragcore.DB.context`, served by the server."""
        body: Dict[str, Any] = {"query": question, "budget_tokens": budget, "format": format}
        for key, v in (("k", k), ("mode", mode), ("filter", filter), ("mmr_lambda", mmr)):
            if v is not None:
                body[key] = v
        body.update({key: v for key, v in options.items() if v is not None})
        r = self._request("POST", self._coll(collection) + "/context", body)
        passages = r.get("passages") or {}
        return Context(r.get("context", ""), passages.get("sources", []), r.get("tokens", 0),
                       bool(r.get("no_confident_context", False)), bool(r.get("stale", 0)))

    def ingest(self, items: Iterable[Any], *, collection: Optional[str] = None,
               metadata: Optional[Dict[str, Any]] = None, **unused: Any) -> Summary:
        """Upserts documents (dicts with id and text, or (id, text) pairs) in one
        transaction; the collection's hygiene policy applies on the server. Files are not
        read over HTTP (use the CLI's ``ragcore ingest --server`` for paths)."""
        if unused:
            raise _errors.UnsupportedError(
                f"Client.ingest: {', '.join(sorted(unused))} are set on the server's "
                "collection, not per request", -12)
        docs = []
        for i, d in enumerate(items):
            if isinstance(d, str):
                raise _errors.UnsupportedError("Client.ingest takes documents, not paths: "
                                               "the server does not read client files", -12)
            if isinstance(d, tuple):
                d = {"id": d[0], "text": d[1]}
            d = {k: v for k, v in d.items() if v is not None}
            if metadata:
                d["metadata"] = {**metadata, **(d.get("metadata") or {})}
            docs.append(d)
        return Summary(self._request("POST", self._coll(collection) + "/documents",
                                     {"documents": docs}))

    def get(self, doc_id: str, *, collection: Optional[str] = None) -> Document:
        """A document with its chunks (GET .../documents/{id})."""
        r = self._request("GET", self._coll(collection) + "/documents/" +
                          urllib.parse.quote(doc_id, safe=""))
        meta = r.get("metadata") or {}
        chunks = [Hit.from_json({**c, "doc_id": r.get("id", doc_id), "metadata": meta,
                                 "score": float("nan")}) for c in r.get("chunks", [])]
        info = DocumentInfo(r.get("id", doc_id), r.get("source", ""), r.get("title", ""),
                            json.dumps(meta), r.get("source_mtime", 0),
                            r.get("ingested_at", 0), r.get("updated_at", 0),
                            r.get("valid_until", 0), r.get("text_bytes", 0), len(chunks),
                            bool(r.get("expired", False)), r.get("content_hash", 0))
        return Document(info, chunks)

    def delete(self, doc_ids: Union[str, Iterable[str]], *, collection: Optional[str] = None,
               missing_ok: bool = False) -> int:
        """Deletes documents; NotFoundError for a missing id unless `missing_ok`."""
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        n = 0
        for d in doc_ids:
            try:
                self._request("DELETE", self._coll(collection) + "/documents/" +
                              urllib.parse.quote(d, safe=""))
                n += 1
            except _errors.NotFoundError:
                if not missing_ok:
                    raise
        return n

    def list(self, *, collection: Optional[str] = None, filter: Optional[str] = None,
             after: Optional[str] = None, limit: int = 100, **unused: Any) -> List[DocumentInfo]:
        """A page of documents, when the server serves document listing
        (GET .../documents); UnsupportedError from a server that does not."""
        q = {k: v for k, v in (("filter", filter), ("after", after), ("limit", limit))
             if v is not None}
        try:
            r = self._request("GET", self._coll(collection) + "/documents?" +
                              urllib.parse.urlencode(q))
        except _errors.Error as e:
            if e.code in (404, 405):
                raise _errors.UnsupportedError(
                    "this server does not list documents (GET .../documents)", -12) from None
            raise
        from ._types import DocumentPage
        page = DocumentPage(
            DocumentInfo(d.get("id", ""), d.get("source", ""), d.get("title", ""),
                         json.dumps(d.get("metadata") or {}), d.get("source_mtime", 0),
                         d.get("ingested_at", 0), d.get("updated_at", 0),
                         d.get("valid_until", 0), d.get("text_bytes", 0), d.get("chunks", 0),
                         bool(d.get("expired", False)), d.get("content_hash", 0))
            for d in r.get("documents", []))
        page.next = r.get("next")
        return page

    def collections(self) -> List[str]:
        """Names of the collections the key is granted."""
        r = self._request("GET", "/v1/collections")
        items = r.get("collections", r) if isinstance(r, dict) else r
        return [c["name"] if isinstance(c, dict) else c for c in items]

    def stats(self, collection: Optional[str] = None) -> Dict[str, Any]:
        """A collection's statistics, or every granted collection's."""
        if collection is not None:
            return self._request("GET", self._coll(collection))
        r = self._request("GET", "/v1/collections")
        items = r.get("collections", []) if isinstance(r, dict) else r
        return {"collections": {c["name"]: c for c in items}}

    def create_collection(self, name: str) -> None:
        self._request("POST", "/v1/collections", {"name": name})

    def drop_collection(self, name: str) -> None:
        self._request("DELETE", self._coll(name))

    def embed(self, texts: Union[str, Sequence[str]], *, is_query: bool = False) -> Any:
        """Vectors from the server's embedder (POST /v1/embeddings, base64 float32)."""
        if isinstance(texts, str):
            texts = [texts]
        r = self._request("POST", "/v1/embeddings",
                          {"input": list(texts), "encoding_format": "base64",
                           "input_type": "query" if is_query else "document"})
        rows = [base64.b64decode(d["embedding"]) for d in
                sorted(r["data"], key=lambda d: d["index"])]
        if has_numpy():
            import numpy as np
            return np.frombuffer(b"".join(rows), dtype=np.float32).reshape(len(rows), -1)
        import array
        out = []
        for b in rows:
            a = array.array("f")
            a.frombytes(b)
            out.append(a)
        return out

    def _local_only(self, what: str) -> Any:
        raise _errors.UnsupportedError(f"{what} needs the store itself: run it where the "
                                       "store lives (ragcore CLI or ragcore.open)", -12)

    def sync(self, *a: Any, **k: Any) -> Any:
        return self._local_only("sync")

    def check(self, *a: Any, **k: Any) -> Any:
        return self._local_only("check")

    def backup(self, *a: Any, **k: Any) -> Any:
        return self._local_only("backup")
