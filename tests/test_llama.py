"""The LlamaIndex retriever and query engine, driven through llama-index-core's own APIs
over a real store, and the README's example run as written."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.schema import MetadataMode, QueryBundle
from llama_index.core.tools import QueryEngineTool, ToolOutput

from index.embedder import MiniLMEmbedder
from index.filters import Filters
from rag.llama import ArticlesQueryEngine, ArticlesRetriever
from tests.helpers import ROOT, rag_env, run_rag
from tests.server_fixtures import SAMPLE_QUESTION, settings_for
from tests.web_site import PDF_PAGE_ONE, PDF_PAGE_TWO, make_pdf
from ui.llama import articles_query_engine, articles_retriever
from ui.wiring import build

ALEPPO = "Who called the Security Council meeting about Aleppo?"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample article and a two-page PDF, ingested by the command."""
    root = tmp_path_factory.mktemp("llama")
    pdf = make_pdf(root / "harbour.pdf", [PDF_PAGE_ONE, PDF_PAGE_TWO])
    done = run_rag("-q", "ingest", str(ROOT / "examples" / "articles"), str(pdf),
                   env=rag_env(root / "data"))
    assert done.returncode == 0, done.stderr
    return root / "data"


@pytest.fixture(scope="module")
def engine(data_dir: Path, embedder: MiniLMEmbedder) -> ArticlesQueryEngine:
    parts = build(settings_for(data_dir), embedder=embedder, create=False)
    return ArticlesQueryEngine(parts.assistant)


def test_retriever_nodes_carry_the_article_and_the_span(data_dir: Path) -> None:
    retriever = articles_retriever(settings_for(data_dir), top_k=3)
    hits = retriever.retrieve(ALEPPO)
    assert hits and all(h.score is not None for h in hits)
    top = hits[0].node.metadata
    assert top["title"].startswith("Syria: UN pressures Russia")
    assert {"article_id", "title", "source", "url", "published", "start", "end",
            "page"} <= set(top)
    text = hits[0].node.get_content()
    assert top["end"] - top["start"] == len(text)
    assert hits[0].node.node_id == f"{top['article_id']}#{hits[0].node.node_id.rsplit('#')[1]}"
    # Offsets are for programs: a model's view of the node leaves them out.
    assert "start:" not in hits[0].node.get_content(metadata_mode=MetadataMode.LLM)
    pdf_hit = retriever.retrieve("Who is the new harbour master of Port Elmwood?")[0]
    assert pdf_hit.node.metadata["page"] == 2


def test_retriever_works_with_llama_index_bundles_async_filters_and_postprocessors(
        data_dir: Path, embedder: MiniLMEmbedder) -> None:
    parts = build(settings_for(data_dir), embedder=embedder, create=False)
    debug = LlamaDebugHandler()
    retriever = ArticlesRetriever(parts.assistant.retriever, top_k=4,
                                  callback_manager=CallbackManager([debug]))
    bundled = retriever.retrieve(QueryBundle(ALEPPO))
    later = asyncio.run(retriever.aretrieve(ALEPPO))
    assert [n.node.node_id for n in bundled] == [n.node.node_id for n in later]
    assert debug.get_event_pairs(CBEventType.RETRIEVE)  # LlamaIndex's callbacks saw it
    kept = SimilarityPostprocessor(similarity_cutoff=0.02).postprocess_nodes(bundled)
    assert 0 < len(kept) <= len(bundled)
    pdf = "harbour.pdf"  # a file's source is its name, never its path on the server
    only_pdf = ArticlesRetriever(parts.assistant.retriever, top_k=4,
                                 filters=Filters(sources=[pdf]))
    assert {n.node.metadata["source"] for n in only_pdf.retrieve(ALEPPO)} == {pdf}


def test_query_engine_response_has_sources_and_checked_citations(
        engine: ArticlesQueryEngine) -> None:
    response = engine.query(SAMPLE_QUESTION)
    assert isinstance(response, Response)
    assert "barbarism" in str(response) and "[1]" in str(response)
    citations = response.metadata["citations"]
    assert citations and response.metadata["abstained"] is False
    source_ids = {n.node.node_id for n in response.source_nodes}
    assert {c["passage_id"] for c in citations} <= source_ids
    assert response.metadata["result"]["answer"] == response.response
    unanswerable = asyncio.run(engine.aquery("What is the capital of Australia?"))
    assert isinstance(unanswerable, Response)
    assert unanswerable.metadata["abstained"] and not unanswerable.metadata["citations"]
    assert engine.retrieve(QueryBundle(ALEPPO))  # a query engine that can also retrieve


def test_query_engine_is_a_tool_for_llama_index_agents(engine: ArticlesQueryEngine) -> None:
    tool = QueryEngineTool.from_defaults(engine, name="news_articles",
                                         description="Answers questions about the articles.")
    assert tool.metadata.name == "news_articles"
    assert "input" in tool.metadata.get_parameters_dict()["properties"]
    output = tool.call(SAMPLE_QUESTION)
    assert isinstance(output, ToolOutput) and "barbarism" in output.content
    assert isinstance(output.raw_output, Response)
    assert output.raw_output.metadata["citations"]
    again = asyncio.run(tool.acall(input=SAMPLE_QUESTION))
    assert again.content == output.content


def test_readme_example_runs_as_written(data_dir: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- llama-index-example -->\n```python\n(.*?)```", readme, re.S)
    assert block, "the README's LlamaIndex example is missing"
    env = {**rag_env(data_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", block.group(1)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "Syria: UN pressures Russia" in done.stdout
    assert "barbarism" in done.stdout and "[1]" in done.stdout
    assert "page=None" in done.stdout  # the sample article has no pages


def test_builders_never_create_a_collection(tmp_path: Path) -> None:
    from index.store import CollectionNotFound

    with pytest.raises(CollectionNotFound):
        articles_query_engine(data_dir=tmp_path / "empty", collection="nothing-here")
    assert not os.path.exists(tmp_path / "empty" / "bm25" / "nothing-here")
