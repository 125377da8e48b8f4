"""Splitting articles into passages on sentence boundaries with exact spans."""

from __future__ import annotations

import itertools

from index.passages import sentence_spans, split_article
from index.types import Article
from tests.conftest import SAMPLE_DIR


def _article(text: str) -> Article:
    return Article(id="a", title="t", text=text, source="s")


def test_every_passage_is_the_exact_span_of_the_article_text() -> None:
    text = (SAMPLE_DIR / "aleppo-un-russia-2016.txt").read_text()
    passages = split_article(_article(text), max_words=80, overlap_words=20)
    assert len(passages) >= 5
    for i, p in enumerate(passages):
        assert text[p.start:p.end] == p.text
        assert p.number == i and p.id == f"a#{i}"
        assert len(p.text.split()) <= 80


def test_passages_cover_the_whole_text_and_overlap() -> None:
    sentences = [f"Sentence number {i} says something short." for i in range(60)]
    text = " ".join(sentences)
    passages = split_article(_article(text), max_words=50, overlap_words=12)
    assert passages[0].start == 0 and passages[-1].end == len(text)
    for a, b in itertools.pairwise(passages):
        assert b.start < a.end, "consecutive passages share trailing sentences"
        assert b.start > a.start
    for s in sentences:
        assert any(s in p.text for p in passages)


def test_sentences_do_not_break_after_abbreviations() -> None:
    text = "Mr. Smith met Dr. Jones in the U.S. on Monday. They talked. Then J. Doe left!"
    spans = [text[a:b] for a, b in sentence_spans(text)]
    assert spans == ["Mr. Smith met Dr. Jones in the U.S. on Monday.", "They talked.",
                     "Then J. Doe left!"]


def test_a_run_on_sentence_is_cut_to_the_word_limit() -> None:
    text = " ".join(f"w{i}" for i in range(500))
    passages = split_article(_article(text), max_words=100, overlap_words=0)
    assert all(len(p.text.split()) <= 100 for p in passages)
    assert sum(len(p.text.split()) for p in passages) == 500
