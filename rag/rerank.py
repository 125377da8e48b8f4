"""The reranking stage between retrieval and answering.

No cross-encoder ships its weights in a PyPI package we could install (the ones there
download a model from a hub at first use, which this project never does), so the default
stage keeps the fused order. A real reranker plugs in by implementing :class:`Reranker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rag.result import RetrievedPassage


class Reranker(Protocol):
    """Reorders (and may cut) the candidates for a question; best first."""

    name: str

    def rerank(self, question: str,
               passages: Sequence[RetrievedPassage]) -> list[RetrievedPassage]: ...


class PassThroughReranker:
    """Keeps the retrieval order unchanged."""

    name = "none"

    def rerank(self, question: str,
               passages: Sequence[RetrievedPassage]) -> list[RetrievedPassage]:
        return list(passages)
