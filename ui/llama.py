"""Build the LlamaIndex retriever and query engine from settings, for Python programs:

    from ui.llama import articles_query_engine
    engine = articles_query_engine()          # RAG_* settings, the data folder .rag
    print(engine.query("Who brokered the ceasefire?"))

The components are built once per call (the embedding model loads then) and only read the
store: a collection that does not exist is an error, never created.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from index.filters import Filters
from rag.llama import ArticlesQueryEngine, ArticlesRetriever
from ui.settings import Settings, load_settings
from ui.wiring import Components, build


def _components(settings: Settings | None, overrides: dict[str, Any]) -> Components:
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = settings.model_copy(update=overrides)
    return build(settings, create=False)


def articles_retriever(settings: Settings | None = None, *, top_k: int | None = None,
                       filters: Filters | None = None, as_of: date | None = None,
                       data_dir: Path | str | None = None,
                       collection: str | None = None) -> ArticlesRetriever:
    """A LlamaIndex ``BaseRetriever`` over the stored articles (hybrid retrieval)."""
    parts = _components(settings, _given(data_dir, collection))
    return ArticlesRetriever(parts.assistant.retriever, top_k or parts.settings.top_k,
                             filters, as_of)


def articles_query_engine(settings: Settings | None = None, *, top_k: int | None = None,
                          filters: Filters | None = None, as_of: date | None = None,
                          data_dir: Path | str | None = None,
                          collection: str | None = None) -> ArticlesQueryEngine:
    """A LlamaIndex query engine giving checked, cited answers (the answerer RAG_LLM_*
    settings choose; extractive and offline by default)."""
    parts = _components(settings, _given(data_dir, collection))
    return ArticlesQueryEngine(parts.assistant, top_k, filters, as_of)


def _given(data_dir: Path | str | None, collection: str | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if data_dir is not None:
        found["data_dir"] = Path(data_dir)
    if collection is not None:
        found["collection"] = collection
    return found
