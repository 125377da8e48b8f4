"""Answers written by the tiny local model, checked by the shared citation check.

SmolLM2-135M is mostly wrong: these tests assert the properties that must hold whatever it
writes (only supported citations, the streaming protocol), never its wording.
"""

from __future__ import annotations

import pytest

from index.embedder import MiniLMEmbedder
from index.store import PassageStore
from rag.answerers import Turn
from rag.citations import CitationChecker
from rag.condense import LLMCondenser
from rag.llm import LlamaCppChatModel
from rag.result import Answer
from tests.llm.conftest import (
    TEST_GENERATION,
    LLMServer,
    assert_only_supported_citations,
    make_assistant,
    smollm2_path,
)

pytestmark = pytest.mark.llm

QUESTIONS = [
    "What did the US ambassador to the UN say Russia was doing in Syria?",
    "What did China's ambassador say?",  # the article never mentions China
    "Who brokered the ceasefire?",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_server_answers_keep_only_supported_citations(
        question: str, llm_server: LLMServer, sample_store: PassageStore,
        embedder: MiniLMEmbedder) -> None:
    answer = make_assistant(llm_server.chat_model(), sample_store, embedder).ask(question)
    assert answer.answerer == "llm:openai-compatible:local-model"
    assert_only_supported_citations(answer, CitationChecker(embedder))


def test_ask_stream_yields_text_then_one_checked_answer(
        llm_server: LLMServer, sample_store: PassageStore, embedder: MiniLMEmbedder) -> None:
    assistant = make_assistant(llm_server.chat_model(), sample_store, embedder)
    events = list(assistant.ask_stream(QUESTIONS[2]))
    *chunks, final = events
    assert len(chunks) >= 2 and all(isinstance(c, str) for c in chunks)
    assert isinstance(final, Answer)
    assert final.condensed_question is None
    assert_only_supported_citations(final, CitationChecker(embedder))


def test_follow_up_is_condensed_by_the_model_before_retrieval(
        llm_server: LLMServer, sample_store: PassageStore, embedder: MiniLMEmbedder) -> None:
    model = llm_server.chat_model()
    history = [Turn("user", "What did the US ambassador to the UN say about Russia?"),
               Turn("assistant", "She said what Russia is sponsoring is barbarism. [1]")]
    assistant = make_assistant(model, sample_store, embedder, LLMCondenser(model))
    answer = assistant.ask("What else did she say?", history=history)
    assert answer.question == "What else did she say?"
    assert answer.condensed_question and "\n" not in answer.condensed_question
    assert answer.condensed_question != answer.question
    assert_only_supported_citations(answer, CitationChecker(embedder))


def test_in_process_model_answers_keep_only_supported_citations(
        sample_store: PassageStore, embedder: MiniLMEmbedder) -> None:
    model = LlamaCppChatModel(smollm2_path(), context_window=2048, threads=1,
                              generation=TEST_GENERATION)
    answer = make_assistant(model, sample_store, embedder).ask(QUESTIONS[0])
    assert answer.answerer == "llm:llama-cpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert_only_supported_citations(answer, CitationChecker(embedder))
