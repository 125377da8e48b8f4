"""A real Answerer that streams like a language model: many small chunks, one of them a
sentence no passage supports (so the citation check removes it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from index.embedder import Embedder
from rag.answerers import ExtractiveAnswerer, Turn
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.result import RetrievedPassage
from rag.retrieve import DenseRetriever
from tests.helpers import answer_gate
from ui.settings import Settings
from ui.wiring import Components, build_store

UNSUPPORTED = "The moon landing was filmed in a studio in Nevada. [1]"


class ScriptedAnswerer:
    """The extractive answer plus an invented sentence, streamed word by word."""

    name = "scripted"
    streams = True

    def __init__(self, embedder: Embedder) -> None:
        self._extractive = ExtractiveAnswerer(embedder, answer_gate())

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str]:
        text = self._extractive.compose(question, passages).text
        for word in f"{text} {UNSUPPORTED}".split(" "):
            yield word + " "


def scripted_components(settings: Settings, embedder: Embedder) -> Components:
    store = build_store(settings)
    assistant = Assistant(DenseRetriever(store, embedder), ScriptedAnswerer(embedder),
                          CitationChecker(embedder), answer_gate(), settings.top_k)
    return Components(settings, store, embedder, assistant)
