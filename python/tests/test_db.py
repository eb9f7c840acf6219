"""The embedded API: ragcore.open and DB against a real store."""
import array
import re
import threading
import time

import pytest

import ragcore
from ragcore._vectors import as_f32


def test_ingest_search_hit_fields(db, corpus):
    s = db.ingest(corpus, metadata={"team": "docs"})
    assert s.documents == 4 and s["failed"] == 0 and s.chunks >= 4
    hits = db.search("cats sleep during the day", k=2)
    assert isinstance(hits, ragcore.Results) and len(hits) == 2
    top = hits[0]
    assert top.doc_id == "cats"
    assert top.metadata == {"lang": "en", "year": 2021, "tags": ["pets"], "team": "docs"}
    assert top.text == corpus[0]["text"]
    assert (top.start, top.end) == (0, len(corpus[0]["text"].encode()))
    assert top.dense_rank == 1 and top.lexical_rank == 1
    assert top.dense_score is not None and top.lexical_score > 0
    assert top.ingested_at > 1_600_000_000 and top.age is not None


def test_modes_filters_and_options(db, corpus):
    db.ingest(corpus)
    lex = db.search("walks fetch park", mode="lexical", k=4)
    assert [h.doc_id for h in lex] == ["dogs"]           # BM25 matches one document only
    assert lex[0].dense_score is None
    fr = db.search("chats", filter='lang = "fr"', k=4)
    assert {h.doc_id for h in fr} == {"chats"}
    recent = db.search("animals", filter="year >= 2021 AND lang IN (\"en\", \"fr\")", k=10)
    assert {h.doc_id for h in recent} == {"cats", "chats"}
    md = db.search("setup.sh", k=1, mode="lexical")
    assert md[0].heading_path == "Install > Linux"
    with pytest.raises(ragcore.ParseError) as e:
        db.search("x", filter="year >= ")
    assert "position" in str(e.value) and e.value.code == -11
    with pytest.raises(ragcore.InvalidArgumentError) as e:
        db.search("x", fusion="bogus")
    assert "fusion" in str(e.value)
    only = db.search("animals", k=10, doc_ids=["dogs"])
    assert [h.doc_id for h in only] == ["dogs"]
    assert len(db.search("cats dogs", k=3, mmr=0.5, per_doc=1)) == 3


def test_vector_search_numpy_and_array(db, corpus):
    db.ingest(corpus)
    v = db.embed("Dogs enjoy long walks and playing fetch in the park.")
    np = pytest.importorskip("numpy")
    assert isinstance(v, np.ndarray) and v.shape == (1, db.dim) and v.dtype == np.float32
    owner, addr, n = as_f32(v[0])
    assert owner.__array_interface__["data"][0] == v[0].__array_interface__["data"][0]  # no copy
    assert db.search(v[0], k=1)[0].doc_id == "dogs"
    a = array.array("f", v[0].tolist())
    assert as_f32(a)[0] is a
    assert db.search(a, k=1)[0].doc_id == "dogs"
    assert db.search(v[0].tolist(), k=1)[0].doc_id == "dogs"
    with pytest.raises(ragcore.InvalidArgumentError):
        db.search([0.5, 0.5], k=1)              # wrong dimension


def test_documents_get_list_delete(db, corpus):
    db.ingest(corpus)
    d = db.get("guide")
    assert d.text == corpus[3]["text"] and d.title == "Guide" and len(d.chunks) == 2
    assert len(d.text.encode()) == d.info.text_bytes
    page = db.list(limit=2)
    assert [x.id for x in page] == ["cats", "chats"] and page.next == "chats"
    assert [x.id for x in db.documents(page_size=1)] == ["cats", "chats", "dogs", "guide"]
    assert [x.id for x in db.list(filter='lang = "en"')] == ["cats", "dogs"]
    assert db.delete(["dogs", "nope"], missing_ok=True) == 1
    with pytest.raises(ragcore.NotFoundError) as e:
        db.get("dogs")
    assert "dogs" in str(e.value) and e.value.errmsg == str(e.value)
    with pytest.raises(ragcore.NotFoundError):
        db.delete("dogs")
    assert all(h.doc_id != "dogs" for h in db.search("walks fetch park", k=10))


def test_long_document_text_round_trip(tmp_path):
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))
    with ragcore.open(tmp_path / "s", embedder="hash", chunk_tokens=64, chunk_overlap=16) as db:
        db.ingest([("long", text)])
        d = db.get("long")
        assert len(d.chunks) > 5 and d.text == text


def test_context_stats_backup_check(db, corpus, tmp_path):
    db.ingest(corpus)
    ctx = db.context("what do cats do?", budget=200)
    assert "[1]" in ctx.text and ctx.tokens <= 200 and ctx.sources
    assert ctx.sources[0]["doc_id"] == "cats"
    js = db.context("cats", format="json")
    assert js.text.startswith("{")
    st = db.stats()
    assert st["embedder"] == "hash" and st["collections"]["default"]["documents"] == 4
    assert st["collections"]["default"]["policy"]["pii"] == "off"
    info = db.backup(tmp_path / "bk")
    assert info["documents"] == 4
    assert db.check().counts["problem"] == 0
    ragcore.restore(tmp_path / "bk", tmp_path / "restored")
    with ragcore.open(tmp_path / "restored", read_only=True) as r:
        assert r.get("cats").text == corpus[0]["text"]
        with pytest.raises(ragcore.ReadOnlyError):
            r.ingest([("x", "some text here")])


def test_paths_sync_policy_and_progress(db, tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.md").write_text("# A\n\nContact alice@example.org about the launch.\n")
    (src / "b.txt").write_text("The quarterly report is due on Friday.\n")
    seen = []
    events = []
    s = db.ingest(src, collection="notes", pii="mask", progress=seen.append,
                  on_event=events.append)
    assert s.documents == 2 and s.pii_documents == 1 and s.pii_found == {"EMAIL": 1}
    assert seen and isinstance(seen[-1], ragcore.Progress) and seen[-1].documents == 2
    assert {e.action for e in events} == {"stored"}
    hit = db.search("contact launch", collection="notes", k=1)[0]
    assert "[EMAIL]" in hit.text and "alice" not in hit.text
    with pytest.raises(ragcore.InvalidArgumentError) as e:
        db.ingest(src, collection="notes", pii="drop")
    assert "configure" in str(e.value)
    db.ingest(src, collection="notes", pii="mask")       # the stored policy: accepted
    (src / "b.txt").unlink()
    s = db.sync(src, collection="notes")
    assert s.deleted == 1 and s.unchanged == 1


def test_callback_exception_stops_ingest(db):
    def boom(p):
        raise RuntimeError("stop here")
    docs = [(f"d{i}", f"text number {i} " * 20) for i in range(3000)]
    with pytest.raises(RuntimeError, match="stop here"):
        db.ingest(docs, progress=boom)


def test_errors_busy_mismatch_closed(tmp_path):
    path = tmp_path / "s"
    db = ragcore.open(path, embedder="hash")
    with pytest.raises(ragcore.BusyError) as e:
        ragcore.open(path)
    assert e.value.code == -16 and "open for writing" in str(e.value)
    db.close()
    db.close()                                   # harmless
    with pytest.raises(ValueError, match="closed"):
        db.search("x")
    with pytest.raises(ragcore.MismatchError):
        ragcore.open(path, embedder="hash-64")
    with pytest.raises(ragcore.NotFoundError):
        ragcore.open(tmp_path / "absent", read_only=True)
    assert issubclass(ragcore.NotFoundError, ragcore.Error)


def test_encrypted_store_key(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCORE_STORE_KEY", raising=False)
    path, key = tmp_path / "enc", "a passphrase for this test"
    with ragcore.open(path, embedder="hash", key=key) as db:
        db.ingest([("d1", "Sealed chunk text about telomerase inhibitors.")])
    with pytest.raises(ragcore.EncryptionKeyError) as e:
        ragcore.open(path, read_only=True)
    assert e.value.code == -19 and "is encrypted" in str(e.value)
    with pytest.raises(ragcore.EncryptionKeyError, match="wrong key"):
        ragcore.open(path, read_only=True, key="another passphrase")
    with ragcore.open(path, read_only=True, key=key) as db:
        assert db.search("telomerase")[0].doc_id == "d1"
    data = b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())
    assert b"telomerase" not in data


def test_encrypted_backup_and_restore_with_key(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCORE_STORE_KEY", raising=False)
    path, key = tmp_path / "enc", "the backup test passphrase"
    with ragcore.open(path, embedder="hash", key=key) as db:
        db.ingest([("d1", "Sealed chunk text about ribozyme catalysis.")])
        db.backup(tmp_path / "bk")                      # the key the DB was opened with
        db.backup(tmp_path / "bk2", key=key)            # the key given
        with pytest.raises(ragcore.EncryptionKeyError, match="wrong key"):
            db.backup(tmp_path / "bk3", key="another passphrase")
    assert not (tmp_path / "bk3").exists()
    data = b"".join(p.read_bytes() for p in (tmp_path / "bk").rglob("*") if p.is_file())
    assert b"ribozyme" not in data and b"catalysis" not in data
    with pytest.raises(ragcore.EncryptionKeyError):
        ragcore.restore(tmp_path / "bk", tmp_path / "r0")
    with pytest.raises(ragcore.EncryptionKeyError, match="wrong key"):
        ragcore.restore(tmp_path / "bk", tmp_path / "r0", key="another passphrase")
    assert ragcore.restore(tmp_path / "bk", tmp_path / "r", key=key)["documents"] == 1
    assert ragcore.backup(tmp_path / "r", tmp_path / "bk4", key=key)["documents"] == 1
    assert ragcore.check(tmp_path / "r", key=key).ok
    with ragcore.open(tmp_path / "r", read_only=True, key=key) as db:
        assert db.search("ribozyme")[0].doc_id == "d1"


def test_python_embedder_and_its_errors(tmp_path):
    calls = []

    def fn(texts, is_query):
        calls.append((len(texts), is_query))
        return [[float(len(t) % 5 == j) + 0.1 for j in range(4)] for t in texts]

    emb = ragcore.FunctionEmbedder("len-mod-5", 4, fn)
    with ragcore.open(tmp_path / "s", embedder=emb) as db:
        assert (db.embedder, db.dim) == ("len-mod-5", 4)
        db.ingest([("a", "abcde"), ("b", "abcdef")])
        assert db.search("xxxxx", k=1, mode="dense")[0].doc_id == "a"
        assert (1, True) in calls and any(not q for _, q in calls)
    bad = ragcore.FunctionEmbedder("len-mod-5", 4, lambda t, q: 1 / 0)
    with ragcore.open(tmp_path / "s", embedder=bad) as db:
        with pytest.raises(ragcore.EmbedError) as e:
            db.search("anything", mode="dense")
        assert "ZeroDivisionError('division by zero')" in str(e.value)


def test_gil_released_during_ingest(tmp_path):
    docs = [(f"d{i}", f"document {i} about subject {i % 97} " * 30) for i in range(4000)]
    with ragcore.open(tmp_path / "s", embedder="hash") as db:
        t = threading.Thread(target=db.ingest, args=(docs,))
        spins = 0
        t.start()
        time.sleep(0.05)                     # the ingest is inside the C library now
        start = time.perf_counter()
        while t.is_alive():
            spins += 1
        took = time.perf_counter() - start
        t.join()
        assert db.stats("default")["documents"] == 4000
    # While the ingest ran, this thread kept running Python: with the GIL held by the
    # ingest it would have spun only at the interpreter's 5 ms switch points.
    assert took > 0.05 and spins > 2000 * took


def test_threads_share_one_handle(db, corpus):
    db.ingest(corpus)
    errors, results = [], []

    def worker():
        try:
            for _ in range(50):
                results.append(db.search("cats", k=1)[0].doc_id)
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors and results == ["cats"] * 200


def test_module_helpers():
    names = {o["name"] for o in ragcore.search_options()}
    assert {"k", "mode", "filter", "mmr_lambda", "half_life"} <= names
    assert any(m["name"] == "all-MiniLM-L6-v2" for m in ragcore.models())
    assert ragcore.version() == ragcore.__version__
    assert re.fullmatch(r"int8 GEMM (AVX-512 VNNI|AVX-VNNI|AVX2|scalar), "
                        r"fp32 GEMM (AVX-512|AVX2|scalar)", ragcore.kernels()), ragcore.kernels()
    e = ragcore.Embedder("hash-8")
    assert e.dim == 8 and len(e.embed(["a", "b"])) == 2
    help_text = ragcore.DB.search.__doc__
    assert "filter" in help_text and "mmr" in help_text


def test_without_numpy(tmp_path):
    """NumPy is optional: vectors come back as array.array rows and are accepted as lists."""
    import subprocess
    import sys
    code = f"""
import sys, array
sys.modules["numpy"] = None          # import numpy now fails
import ragcore
with ragcore.open({str(tmp_path / 's')!r}, embedder="hash") as db:
    db.ingest([("a", "alpha beta gamma"), ("b", "delta epsilon")])
    (v,) = db.embed("alpha beta gamma")
    assert isinstance(v, array.array) and len(v) == db.dim
    assert db.search(v, k=1)[0].doc_id == "a"
    assert db.search(list(v), k=1)[0].doc_id == "a"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_ctrl_c_stops_ingest(tmp_path):
    """A signal during a long ingest raises KeyboardInterrupt from it; committed batches stay."""
    import os
    import signal
    import subprocess
    import sys
    code = f"""
import os, signal, threading, ragcore
docs = [(f"d{{i}}", f"document {{i}} about subject {{i % 97}} " * 40) for i in range(30000)]
db = ragcore.open({str(tmp_path / 's')!r}, embedder="hash")
db.create_collection("default")
threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    db.ingest(docs)
    print("finished")
except KeyboardInterrupt:
    n = db.stats("default")["documents"]
    print("interrupted", n < 30000)
db.close()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.stdout.strip() == "interrupted True", (r.stdout, r.stderr)
