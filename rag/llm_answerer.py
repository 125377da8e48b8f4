"""An answerer backed by a chat model: streams its text; the citation check comes after."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rag.answerers import Turn
from rag.llm import ChatModel, Generation
from rag.prompt import answer_messages
from rag.result import RetrievedPassage


class LLMAnswerer:
    """Asks ``model`` to answer from the numbered passages, citing them as [n]."""

    streams = True

    def __init__(self, model: ChatModel, generation: Generation | None = None) -> None:
        self.model = model
        self.generation = generation

    @property
    def name(self) -> str:
        return f"llm:{self.model.name}"

    def describe(self) -> str:
        return f"language model {self.model.describe()}"

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str]:
        yield from self.model.stream(answer_messages(question, passages, history),
                                     self.generation)
