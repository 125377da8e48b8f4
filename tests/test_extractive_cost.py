"""The extractive answerer embeds few sentences per answer and never the same one twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.passages import split_article
from index.readers import read_file
from index.types import Article
from rag.answerers import ExtractiveAnswerer, ExtractiveOptions
from rag.result import RetrievedPassage
from tests.helpers import RecordingEmbedder as CountingEmbedder
from tests.helpers import answer_gate

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "articles" / \
    "aleppo-un-russia-2016.txt"
QUESTION = "What did the US ambassador to the UN say Russia was doing in Syria?"


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(scope="module")
def passages() -> list[RetrievedPassage]:
    article = next(iter(read_file(SAMPLE, 10**6)))
    assert isinstance(article, Article)
    return [RetrievedPassage(passage_id=p.id, article_id=p.article_id, title=article.title,
                             source=article.source, text=p.text, start=p.start, end=p.end,
                             score=1.0)
            for p in split_article(article, max_words=60, overlap_words=0)]


def test_answer_embeds_at_most_max_embedded_sentences(embedder, passages):
    answerer = ExtractiveAnswerer(embedder, answer_gate(), ExtractiveOptions(max_embedded=4),
                                  cache_size=0)
    before = len(embedder.texts)
    answerer.compose(QUESTION, passages)
    assert 0 < len(embedder.texts) - before <= 4


def test_cap_above_the_candidate_count_changes_nothing(embedder, passages):
    everything = ExtractiveAnswerer(embedder, answer_gate(), ExtractiveOptions(
        max_embedded=None)).compose(QUESTION, passages)
    capped = ExtractiveAnswerer(embedder, answer_gate(), ExtractiveOptions(
        max_embedded=1000)).compose(QUESTION, passages)
    assert everything.text and capped == everything


def test_asking_again_embeds_no_sentence(embedder, passages):
    answerer = ExtractiveAnswerer(embedder, answer_gate())
    first = answerer.compose(QUESTION, passages)
    before = len(embedder.texts)
    again = answerer.compose(QUESTION, passages)
    assert again == first and len(embedder.texts) == before


def test_repeated_sentences_are_embedded_once(embedder, passages):
    twice = passages + [p.model_copy(update={"article_id": p.article_id + "-copy"})
                        for p in passages]
    answerer = ExtractiveAnswerer(embedder, answer_gate(), ExtractiveOptions(max_embedded=None),
                                  cache_size=0)
    before = len(embedder.texts)
    answerer.compose(QUESTION, twice)
    embedded = embedder.texts[before:]
    assert embedded and len(embedded) == len(set(embedded))


def test_batched_vectors_match_vectors_embedded_alone(embedder, passages):
    texts = [passages[0].text[:40], "Aleppo.", passages[1].text, passages[2].text[:200]]
    together = embedder.embed(texts)
    alone = [embedder.embed([t])[0] for t in texts]
    for got, want in zip(together, alone, strict=True):
        assert float(got @ want) > 0.9999
