"""The citation check on the kinds of sentence small models write (real embedder).

Each unsupported claim below is a mistake seen from small models on the sample article.
"""

from __future__ import annotations

import pytest

from index.embedder import MiniLMEmbedder
from rag.citations import CitationChecker
from rag.result import RetrievedPassage
from tests.llm.conftest import SAMPLE_ARTICLES

ARTICLE = (SAMPLE_ARTICLES / "aleppo-un-russia-2016.txt").read_text(encoding="utf-8")
TITLE = ARTICLE.splitlines()[0]


@pytest.fixture(scope="module")
def checker(embedder: MiniLMEmbedder) -> CitationChecker:
    return CitationChecker(embedder)


@pytest.mark.parametrize("claim", [
    # a real quote attributed to someone the article never mentions
    "China's ambassador said: \"If not, Russia and Iran will be accomplices in war crimes "
    "committed in Aleppo.\"",
    # names the passage states, but far apart
    "Samantha Power said Russia brokered the ceasefire with Iran.",
    # the passage's own words recombined into a claim it does not make
    "The UN Security Council has called for a ceasefire, but Russia and Iran have refused "
    "to do so.",
    "The passage is about the ceasefire brokered by Russia, which has been supporting the "
    "Syrian regime's offensive on Aleppo.",
])
def test_unsupported_claims_are_rejected(checker: CitationChecker, claim: str) -> None:
    assert not checker.support(claim, ARTICLE, TITLE).supported


@pytest.mark.parametrize("claim", [
    "The ceasefire was brokered by Moscow and Washington earlier this month.",
    "More than 200 civilians have died in three days of shelling.",
    "The US ambassador accused Russia and Assad of bombing humanitarian convoys and "
    "hospitals.",
    "The ceasefire collapsed seven days after it began.",
    # 'Syria' is only in the title: the article's topic may be named anywhere
    "Samantha Power, the US ambassador to the UN, said that what Russia is sponsoring and "
    "doing in Syria is not counter-terrorism but barbarism.",
])
def test_supported_claims_and_paraphrases_are_kept(checker: CitationChecker,
                                                   claim: str) -> None:
    assert checker.support(claim, ARTICLE, TITLE).supported


def test_an_answer_of_only_unsupported_sentences_abstains(checker: CitationChecker) -> None:
    passage = RetrievedPassage(passage_id="a#0", article_id="a", title=TITLE, source="s",
                               text=ARTICLE, start=0, end=len(ARTICLE), score=1.0)
    text = ("China's ambassador said: \"If not, Russia and Iran will be accomplices in war "
            "crimes committed in Aleppo.\" [1]")
    answer = checker.check("What did China's ambassador say?", text, [passage])
    assert answer.abstained and answer.removed_sentences == 1 and not answer.citations
