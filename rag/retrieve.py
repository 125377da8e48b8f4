"""Question to ranked passages."""

from __future__ import annotations

from typing import Protocol

from index.embedder import Embedder
from index.store import PassageStore, StoredPassage
from rag.filters import Filters
from rag.result import RetrievedPassage


class Retriever(Protocol):
    """Anything that ranks stored passages for a question."""

    name: str

    def retrieve(self, question: str, k: int,
                 filters: Filters | None = None) -> list[RetrievedPassage]: ...


def to_result(passage: StoredPassage, score: float) -> RetrievedPassage:
    return RetrievedPassage(passage_id=passage.id, article_id=passage.article_id,
                            title=passage.title, source=passage.source, url=passage.url,
                            published=passage.published, text=passage.text, start=passage.start,
                            end=passage.end, score=round(score, 4))


class DenseRetriever:
    """Nearest passages by embedding cosine similarity, straight from Chroma."""

    name = "dense"

    def __init__(self, store: PassageStore, embedder: Embedder) -> None:
        self._store = store
        self._embedder = embedder

    def retrieve(self, question: str, k: int,
                 filters: Filters | None = None) -> list[RetrievedPassage]:
        vector = self._embedder.embed_query(question)
        where = filters.to_where() if filters else None
        return [to_result(p, s) for p, s in self._store.query(vector, k, where)]
