"""LangChain: langchain-tests' standard VectorStoreIntegrationTests against the ragcore
VectorStore (sync and async), plus the retriever and the embeddings."""
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("langchain_tests")

from langchain_core.documents import Document  # noqa: E402
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests  # noqa: E402

import ragcore  # noqa: E402
from ragcore.langchain import RagcoreRetriever, RagcoreVectorStore  # noqa: E402


class TestRagcoreVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = RagcoreVectorStore(str(tmp_path / "lc"), self.get_embeddings())
        yield store
        store.close()


def test_filters_scores_and_mmr(tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding
    store = RagcoreVectorStore(str(tmp_path / "lc"), DeterministicFakeEmbedding(size=16))
    ids = store.add_texts(["alpha one", "beta two", "gamma three"],
                          metadatas=[{"n": 1, "kind": "a"}, {"n": 2, "kind": "b"},
                                     {"n": 3, "kind": "b"}], ids=["a", "b", "c"])
    assert ids == ["a", "b", "c"]
    docs = store.similarity_search("beta two", k=3, filter={"kind": "b"})
    assert [d.id for d in docs][0] == "b" and {d.id for d in docs} == {"b", "c"}
    docs = store.similarity_search("beta two", k=3, filter={"n": {"$gte": 2}, "kind": "b"})
    assert {d.id for d in docs} == {"b", "c"}
    docs = store.similarity_search("x", k=3, filter='n < 2')
    assert [d.id for d in docs] == ["a"]
    (doc, score), = store.similarity_search_with_score("gamma three", k=1)
    assert doc == Document(page_content="gamma three", metadata={"n": 3, "kind": "b"}, id="c")
    assert score == pytest.approx(1.0, abs=1e-5)
    assert len(store.max_marginal_relevance_search("alpha one", k=2, fetch_k=3)) == 2
    rel = store.similarity_search_with_relevance_scores("alpha one", k=1)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5)
    store.close()


def test_retriever_returns_provenance(tmp_path):
    with ragcore.open(tmp_path / "s", embedder="hash") as db:
        db.ingest([{"id": "k", "text": "Rotate API keys every ninety days.",
                    "title": "Keys", "metadata": {"team": "sec"}}, ("o", "Unrelated text.")])
        r = RagcoreRetriever(db=db, k=1)
        (d,) = r.invoke("how often to rotate api keys")
        assert d.page_content.startswith("Rotate API keys")
        assert d.metadata["doc_id"] == "k" and d.metadata["team"] == "sec"
        assert d.metadata["title"] == "Keys" and d.metadata["lexical_score"] > 0
        assert RagcoreRetriever(db=db, k=2, filter={"team": "sec"}).invoke("text")[0].id == "k"
