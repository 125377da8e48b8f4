"""Questions about the sample article: answerable ones cite the passage holding the answer,
the others abstain."""

from __future__ import annotations

import pytest

from index.embedder import MiniLMEmbedder
from index.filters import Filters
from index.store import PassageStore
from rag.answerers import ExtractiveAnswerer
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.result import NOT_COVERED
from rag.retrieve import DenseRetriever
from tests.helpers import answer_gate

# (question, phrase the cited passage must contain, word the answer must contain)
ANSWERABLE = [
    ("What did Samantha Power call what Russia is doing in Syria?", "it is barbarism",
     "barbarism"),
    ("How many civilians have died in the shelling of Aleppo?",
     "More than 200 civilians have died", "200"),
    ("Who brokered the ceasefire in Syria?", "brokered earlier this month by Moscow and "
     "Washington", "Washington"),
    ("What would Russia and Iran be guilty of, according to the French foreign minister?",
     "guilty of war crimes", "war crimes"),
    ("When did the ceasefire collapse?", "collapsed last Monday", "Monday"),
]

# (question, what the abstention must say)
UNANSWERABLE = [
    ("What did China's ambassador say about the attacks?", "do not quote China's ambassador"),
    ("Who won the 2018 FIFA World Cup?", "mentions 2018"),
    ("What is the population of Tokyo?", "mentions Tokyo"),
    ("How much does the new iPhone cost?", "iPhone"),
]


@pytest.fixture(scope="module")
def assistant(sample_store: PassageStore, embedder: MiniLMEmbedder) -> Assistant:
    gate = answer_gate()
    return Assistant(DenseRetriever(sample_store, embedder), ExtractiveAnswerer(embedder, gate),
                     CitationChecker(embedder), gate, top_k=5)


@pytest.mark.parametrize(("question", "phrase", "word"), ANSWERABLE)
def test_answerable_question_cites_the_passage_holding_the_answer(
        assistant: Assistant, question: str, phrase: str, word: str) -> None:
    answer = assistant.ask(question)
    assert not answer.abstained, answer.answer
    assert word in answer.answer
    assert any(phrase in c.text for c in answer.citations), [c.text for c in answer.citations]
    assert "[1]" in answer.answer


@pytest.mark.parametrize(("question", "reason"), UNANSWERABLE)
def test_question_the_article_cannot_answer_abstains_saying_why(
        assistant: Assistant, question: str, reason: str) -> None:
    answer = assistant.ask(question)
    assert answer.abstained, answer.answer
    assert answer.answer == NOT_COVERED
    assert answer.citations == [] and answer.short_answer is None
    assert reason in (answer.abstain_reason or ""), answer.abstain_reason


def test_an_answer_leads_with_its_short_answer_taken_verbatim(
        assistant: Assistant, sample_store: PassageStore) -> None:
    answer = assistant.ask(ANSWERABLE[2][0])
    assert not answer.abstained and answer.abstain_reason is None
    assert answer.short_answer == "Moscow and Washington"
    assert answer.answer.startswith("Moscow and Washington [1] — ")
    start, end = answer.short_answer_span or (0, 0)
    [cited] = [c for c in answer.citations if c.article_id == answer.short_answer_article_id]
    assert cited.text[start - cited.start:end - cited.start] == answer.short_answer


def test_nothing_retrieved_abstains_saying_so(assistant: Assistant) -> None:
    answer = assistant.ask("Who brokered the ceasefire?",
                           filters=Filters(sources=["no-such-source.example"]))
    assert answer.abstained and answer.abstain_reason == "no passage was retrieved"


def test_every_marker_in_the_answer_names_a_citation_with_its_span(assistant: Assistant) -> None:
    answer = assistant.ask(ANSWERABLE[0][0])
    markers = {c.marker for c in answer.citations}
    assert markers == set(range(1, len(markers) + 1))
    for c in answer.citations:
        assert f"[{c.marker}]" in answer.answer
        assert c.start < c.end and c.end - c.start == len(c.text)
        for lo, hi in c.highlights:
            assert c.start <= lo < hi <= c.end


def test_passages_are_returned_best_first(assistant: Assistant) -> None:
    answer = assistant.ask("Who brokered the ceasefire?")
    scores = [p.score for p in answer.passages]
    assert scores == sorted(scores, reverse=True) and len(scores) >= 1
