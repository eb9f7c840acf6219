"""LlamaIndex: a VectorStoreIndex built over the ragcore vector store, retrieved from with
dense, hybrid and filtered queries, with embeddings from ragcore's own encoder."""
import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter  # noqa: E402
from llama_index.core.vector_stores import (FilterOperator, MetadataFilter,  # noqa: E402
                                            MetadataFilters)

import ragcore  # noqa: E402
from ragcore.llama_index import RagcoreEmbedding, RagcoreVectorStore, filters_to_expr  # noqa: E402

MODEL = "all-MiniLM-L6-v2"


def _embedding():
    if not any(m["name"] == MODEL and m["cached"] for m in ragcore.models()):
        pytest.skip(f"{MODEL} is not in the model cache (ragcore model pull {MODEL})")
    return RagcoreEmbedding(MODEL)


DOCS = [
    Document(text="The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
             doc_id="eiffel", metadata={"city": "paris", "year": 1889}),
    Document(text="The Colosseum is an ancient amphitheatre in the centre of Rome.",
             doc_id="colosseum", metadata={"city": "rome", "year": 80}),
    Document(text="Big Ben is the nickname for the great bell of the clock in London.",
             doc_id="bigben", metadata={"city": "london", "year": 1859}),
]


@pytest.fixture
def index(tmp_path):
    emb = _embedding()
    store = RagcoreVectorStore(str(tmp_path / "li"), dim=384)
    ctx = StorageContext.from_defaults(vector_store=store)
    splitter = SentenceSplitter(chunk_size=200, chunk_overlap=0, tokenizer=str.split)
    idx = VectorStoreIndex.from_documents(DOCS, storage_context=ctx, embed_model=emb,
                                          transformations=[splitter])
    yield idx, store
    store.close()


def test_build_and_retrieve(index):
    idx, store = index
    nodes = idx.as_retriever(similarity_top_k=2).retrieve("Which tower stands in Paris?")
    assert nodes[0].node.ref_doc_id == "eiffel"
    assert nodes[0].node.metadata["city"] == "paris"
    assert "Eiffel" in nodes[0].node.get_content()
    assert nodes[0].score > nodes[1].score
    assert store.client.stats("llama_index")["documents"] == 3


def test_hybrid_and_filters(index):
    idx, _ = index
    hyb = idx.as_retriever(similarity_top_k=3, vector_store_query_mode="hybrid")
    assert hyb.retrieve("amphitheatre Rome")[0].node.ref_doc_id == "colosseum"
    f = MetadataFilters(filters=[MetadataFilter(key="year", value=1800,
                                                operator=FilterOperator.GT)])
    got = idx.as_retriever(similarity_top_k=3, filters=f).retrieve("famous landmark")
    assert {n.node.ref_doc_id for n in got} == {"eiffel", "bigben"}
    lex = idx.as_retriever(similarity_top_k=3, vector_store_query_mode="text_search")
    assert [n.node.ref_doc_id for n in lex.retrieve("bell clock")] == ["bigben"]


def test_delete_ref_doc(index):
    idx, store = index
    idx.delete_ref_doc("bigben")
    got = idx.as_retriever(similarity_top_k=3).retrieve("bell in London")
    assert "bigben" not in {n.node.ref_doc_id for n in got}
    assert store.client.stats("llama_index")["documents"] == 2


def test_filters_to_expr():
    f = MetadataFilters(filters=[MetadataFilter(key="a", value="x"),
                                 MetadataFilter(key="n", value=[1, 2],
                                                operator=FilterOperator.IN)], condition="or")
    assert filters_to_expr(f) == 'a = "x" OR n IN (1, 2)'
