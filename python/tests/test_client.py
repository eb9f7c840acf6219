"""ragcore.Client against a real ragcore-server: the same calls as the embedded DB."""
import pytest

import ragcore

from conftest import ADMIN_KEY


def test_client_round_trip(server, corpus):
    c = ragcore.Client(server, api_key=ADMIN_KEY)
    c.create_collection("default")
    s = c.ingest(corpus)
    assert s["documents"] == 4
    hits = c.search("cats sleep during the day", k=2)
    assert isinstance(hits, ragcore.Results) and hits[0].doc_id == "cats"
    assert hits[0].metadata["lang"] == "en" and hits[0].lexical_score > 0
    assert [h.doc_id for h in c.search("chats", filter='lang = "fr"', k=3)] == ["chats"]
    v = c.embed("Dogs enjoy long walks and playing fetch in the park.")
    assert len(v[0]) == 384
    assert c.search(v[0], k=1)[0].doc_id == "dogs"
    ctx = c.context("what do cats do?", budget=200)
    assert "[1]" in ctx.text and ctx.sources[0]["doc_id"] == "cats"
    d = c.get("guide")
    assert d.title == "Guide" and "setup.sh" in d.text
    assert "default" in c.collections()
    assert c.stats("default")["documents"] == 4
    assert c.delete(["dogs"]) == 1
    with pytest.raises(ragcore.NotFoundError):
        c.get("dogs")
    with pytest.raises(ragcore.InvalidArgumentError):
        c.search("x", k=0)
    with pytest.raises(ragcore.UnsupportedError):
        c.sync("/tmp")


def test_client_errors(server):
    with pytest.raises(ragcore.AuthError) as e:
        ragcore.Client(server, api_key="wrong-key").search("x")
    assert e.value.code == 401
    with pytest.raises(ragcore.IOFailure):
        ragcore.Client("http://127.0.0.1:9", timeout=2).collections()


def test_same_code_embedded_and_served(server, tmp_path, corpus):
    """The one-line switch: identical calls give identical rankings."""
    c = ragcore.Client(server, api_key=ADMIN_KEY)
    c.create_collection("default")
    c.ingest(corpus)
    with ragcore.open(tmp_path / "local", embedder="hash") as db:
        db.ingest(corpus)
        for q in ("cats", "park walks", "install linux"):
            assert [h.doc_id for h in db.search(q, k=3)] == [h.doc_id for h in c.search(q, k=3)]
