"""The shared citation check: only supported citations survive."""

from __future__ import annotations

import pytest

from index.embedder import MiniLMEmbedder
from rag.citations import CitationChecker
from rag.result import NOT_COVERED, RetrievedPassage

US = ("“What Russia is sponsoring and doing is not counter-terrorism, it is barbarism,” US "
      "ambassador to the UN Samantha Power told the 15-member council.")
DEAD = ("More than 200 civilians have died in three days of near-constant shelling that has "
        "pounded rebel-held districts, according to medical professionals in the area.")
TRUCE = ("The ceasefire was brokered earlier this month by Moscow and Washington, which backs "
         "Syria’s opposition. But it collapsed last Monday, just seven days after it began.")


def _passage(n: int, text: str) -> RetrievedPassage:
    return RetrievedPassage(passage_id=f"a#{n}", article_id="a", title="Aleppo", source="FT",
                            text=text, start=n * 1000, end=n * 1000 + len(text), score=0.5)


PASSAGES = [_passage(0, US), _passage(1, DEAD), _passage(2, TRUCE)]


@pytest.fixture(scope="module")
def checker(embedder: MiniLMEmbedder) -> CitationChecker:
    return CitationChecker(embedder)


def test_verbatim_sentence_keeps_its_citation(checker: CitationChecker) -> None:
    answer = checker.check("q", f"{DEAD} [2]", PASSAGES)
    assert not answer.abstained
    assert answer.answer == f"{DEAD} [1]"
    [c] = answer.citations
    assert c.passage_id == "a#1" and c.marker == 1
    assert c.highlights == [(1000, 1000 + len(DEAD))]


def test_claim_about_someone_the_passage_never_mentions_is_dropped(
        checker: CitationChecker) -> None:
    text = ("China's ambassador said that Russia is sponsoring barbarism, not "
            "counter-terrorism. [1]")
    answer = checker.check("What did China's ambassador say?", text, PASSAGES)
    assert answer.abstained and answer.answer == NOT_COVERED and answer.citations == []
    assert answer.removed_sentences == 1


def test_wrong_number_is_unsupported(checker: CitationChecker) -> None:
    assert not checker.support("More than 500 civilians have died in three days.", DEAD).supported
    assert checker.support("More than 200 civilians have died in three days.", DEAD).supported


def test_invented_quote_is_unsupported(checker: CitationChecker) -> None:
    claim = "Samantha Power said “Russia must leave Syria at once and forever”."
    assert not checker.support(claim, US).supported


def test_paraphrase_is_supported_but_unrelated_claim_is_not(checker: CitationChecker) -> None:
    assert checker.support("The truce collapsed on Monday, seven days after it began.",
                           TRUCE).supported
    assert not checker.support("Hospitals received new funding from donors on Monday.",
                               TRUCE).supported


def test_only_the_supporting_citation_of_a_sentence_is_kept(checker: CitationChecker) -> None:
    answer = checker.check("q", f"{DEAD} [1][2][3]", PASSAGES)
    assert [c.passage_id for c in answer.citations] == ["a#1"]
    assert answer.answer.endswith("[1]")


def test_markers_are_renumbered_by_first_use(checker: CitationChecker) -> None:
    answer = checker.check("q", f"{TRUCE.split('. ')[0]}. [3] {US} [1]", PASSAGES)
    assert [(c.marker, c.passage_id) for c in answer.citations] == [(1, "a#2"), (2, "a#0")]
    assert "[1]" in answer.answer and "[2]" in answer.answer and "[3]" not in answer.answer


def test_uncited_sentence_gets_a_supporting_passage_or_is_dropped(
        checker: CitationChecker) -> None:
    answer = checker.check("q", f"{DEAD} Aliens landed in Paris yesterday.", PASSAGES)
    assert answer.answer == f"{DEAD} [1]"
    assert answer.removed_sentences == 1


def test_markers_beyond_the_passages_are_ignored(checker: CitationChecker) -> None:
    answer = checker.check("q", "Aliens landed in Paris. [9]", PASSAGES)
    assert answer.abstained


def test_markers_after_the_period_belong_to_the_sentence_before(
        checker: CitationChecker) -> None:
    answer = checker.check("q", f"{DEAD} [2] {US} [1]", PASSAGES)
    assert [c.passage_id for c in answer.citations] == ["a#1", "a#0"]
