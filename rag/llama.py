"""LlamaIndex as a way in, for Python users: our retrieval as a LlamaIndex ``BaseRetriever``
and our checked, cited answers as a ``BaseQueryEngine``.

Inside, the app keeps its own store, splitter and hybrid retrieval (see index/store.py,
index/passages.py, rag/retrieve.py for why); these adapters let a LlamaIndex program
(an agent's ``QueryEngineTool``, a router, a fusion retriever) use them as its own. Nodes
carry the passage's article id, title, source, url, published date, character span and
page; a ``Response`` carries the retrieved passages as ``source_nodes`` and the checked
citations in its ``metadata``.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from index.filters import Filters
from rag.assistant import Assistant
from rag.result import Answer, RetrievedPassage
from rag.retrieve import Retriever

# Offsets and ids are for programs, not for a language model's prompt.
_NOT_FOR_MODELS = ["article_id", "start", "end", "passage_id"]


def passage_node(passage: RetrievedPassage) -> NodeWithScore:
    """A retrieved passage as a LlamaIndex node (id = our passage id), with its score."""
    node = TextNode(
        id_=passage.passage_id, text=passage.text,
        metadata={"passage_id": passage.passage_id, "article_id": passage.article_id,
                  "title": passage.title, "source": passage.source, "url": passage.url,
                  "published": passage.published, "start": passage.start,
                  "end": passage.end, "page": passage.page},
        excluded_llm_metadata_keys=_NOT_FOR_MODELS,
        excluded_embed_metadata_keys=[*_NOT_FOR_MODELS, "url", "published", "page"])
    return NodeWithScore(node=node, score=passage.score)


class ArticlesRetriever(BaseRetriever):
    """The app's retrieval (hybrid by default: BM25 and embeddings fused, near-duplicates
    collapsed) as a LlamaIndex retriever."""

    def __init__(self, retriever: Retriever, top_k: int = 5, filters: Filters | None = None,
                 as_of: date | None = None,
                 callback_manager: CallbackManager | None = None) -> None:
        self._inner = retriever
        self.top_k = top_k
        self.filters = filters
        self.as_of = as_of
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self._inner.retrieve(query_bundle.query_str, self.top_k, self.filters,
                                     self.as_of)
        return [passage_node(p) for p in found]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


class ArticlesQueryEngine(BaseQueryEngine):
    """The app's answers as a LlamaIndex query engine: every sentence of ``response`` cites
    a passage that supports it (``[n]``), or the engine says the articles do not cover the
    question. ``metadata`` holds ``citations`` (the checked ones, as in the result contract),
    ``abstained``, ``abstain_reason`` and the whole ``result``."""

    def __init__(self, assistant: Assistant, top_k: int | None = None,
                 filters: Filters | None = None, as_of: date | None = None,
                 callback_manager: CallbackManager | None = None) -> None:
        self._assistant = assistant
        self.top_k = top_k
        self.filters = filters
        self.as_of = as_of
        super().__init__(callback_manager=callback_manager)

    def _query(self, query_bundle: QueryBundle) -> Response:
        answer = self._assistant.ask(query_bundle.query_str, self.top_k, self.filters,
                                     as_of=self.as_of)
        return as_response(answer)

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        return await asyncio.to_thread(self._query, query_bundle)

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The passages the engine would answer from (no answer is written)."""
        found = self._assistant.retriever.retrieve(
            query_bundle.query_str, self.top_k or self._assistant.top_k, self.filters,
            self.as_of)
        return [passage_node(p) for p in found]

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}


def as_response(answer: Answer) -> Response:
    """Our result as a LlamaIndex Response."""
    return Response(response=answer.answer,
                    source_nodes=[passage_node(p) for p in answer.passages],
                    metadata={"citations": [c.model_dump() for c in answer.citations],
                              "abstained": answer.abstained,
                              "abstain_reason": answer.abstain_reason,
                              "result": answer.model_dump()})
