"""Two-stage ingest: articles answerable by their words before their vectors exist, and
retrieval while the vectors fill in (real model, real embedded Chroma)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from index.backfill import embed_pending
from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths, ingest_results
from index.lexical import LexicalIndex
from index.readers import read_paths
from index.store import PassageStore
from index.types import Article
from rag.answerers import ExtractiveAnswerer
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.retrieve import FusionOptions, HybridRetriever
from tests.helpers import (
    SAMPLE_DIR,
    RecordingEmbedder,
    answer_gate,
    news_records,
    write_jsonl,
)

QUESTIONS = ["Who brokered the ceasefire?", "What did the minister say about the budget?",
             "How many people were evacuated?", "Which team won the final?",
             "What happened at the election?"]


def _lexical(store: PassageStore, tmp_path: Path) -> LexicalIndex:
    return LexicalIndex(store, tmp_path / "bm25" / "articles")


def _dev_articles(tmp_path: Path, count: int) -> list[Article]:
    path = write_jsonl(tmp_path / "dev.jsonl", news_records(count))
    return [a for a in read_paths([path], 25_000_000) if isinstance(a, Article)]


def test_question_answered_before_the_vectors_exist(
        store: PassageStore, embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    report = ingest_paths([SAMPLE_DIR], store, embedder, max_bytes=25_000_000,
                          progress=False, wait=False)
    assert report.added == 1 and report.waiting == report.passages > 0
    assert store.embedded_count() == 0  # no vector exists yet
    gate = answer_gate()
    retriever = HybridRetriever(store, embedder, _lexical(store, tmp_path), FusionOptions())
    assistant = Assistant(retriever, ExtractiveAnswerer(embedder, gate),
                          CitationChecker(embedder), gate, top_k=5)
    question = "What did the US ambassador to the UN say Russia was doing in Syria?"
    answer = assistant.ask(question)
    assert not answer.abstained and "barbarism" in answer.answer, answer.answer
    dense = HybridRetriever(store, embedder, _lexical(store, tmp_path), mode="dense")
    assert dense.retrieve(question, 5) == []  # only embedded passages


def test_no_passage_twice_and_no_removed_one_while_vectors_fill_in(
        store: PassageStore, embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    articles = _dev_articles(tmp_path, 14)
    ingest_results(articles, store, embedder, progress=False, wait=False)
    total = store.passage_count()
    retriever = HybridRetriever(store, embedder, _lexical(store, tmp_path),
                                FusionOptions(per_article=0, dedupe_threshold=1.01))
    removed = articles[3].id
    of_removed = len([p for p in store.all_passages() if p.article_id == removed])
    batches = 0

    def check(_: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            assert store.remove_article(removed)
        for question in [*QUESTIONS, articles[3].title, articles[5].title]:
            found = [p.passage_id for p in retriever.retrieve(question, 20)]
            assert len(found) == len(set(found)), question
            if batches >= 2:
                assert all(not pid.startswith(f"{removed}#") for pid in found), question

    result = embed_pending(store, embedder, batch=4, progress=check)
    assert batches >= 3, "the fill should take several batches"
    assert not [p for p in store.all_passages() if p.article_id == removed]
    assert store.pending_count() == 0
    assert store.embedded_count() == store.passage_count() == total - of_removed
    assert result.moved <= total - of_removed + 4  # at most one batch moved before removal
    assert {p.article_id for p in store.all_passages()} == {a.id for a in articles} - {removed}


def test_passage_removed_while_being_embedded_is_not_brought_back(
        store: PassageStore, embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    articles = _dev_articles(tmp_path, 3)
    ingest_results(articles, store, embedder, progress=False, wait=False)
    items = store.pending_passages(100)
    vectors = embedder.embed([p.embedding_text for p in items])
    assert store.remove_article(articles[0].id)  # while the vectors were being computed
    moved = store.store_vectors(items, vectors)
    assert moved == len([p for p in items if p.article_id != articles[0].id])
    assert all(p.article_id != articles[0].id for p in store.all_passages())
    assert store.pending_count() == 0


def test_passage_replaced_while_being_embedded_gets_the_vector_of_its_new_text(
        store: PassageStore, embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    article = _dev_articles(tmp_path, 1)[0]
    ingest_results([article], store, embedder, progress=False, wait=False)
    items = store.pending_passages(100)
    vectors = embedder.embed([p.embedding_text for p in items])
    edited = dataclasses.replace(article, text="A completely different story about herons.\n\n"
                                 + article.text)
    ingest_results([edited], store, embedder, progress=False, wait=False)  # meanwhile
    assert store.store_vectors(items, vectors) == 0  # the old texts' vectors are not used
    embed_pending(store, embedder)
    stored = store.passages([f"{article.id}#0"])[0]
    assert stored.text.startswith("A completely different story about herons.")
    assert store.pending_count() == 0
    hit = store.query(embedder.embed_query(f"{article.title}\n{stored.text}"), 1)
    assert hit[0][0].id == stored.id and hit[0][1] > 0.99


def test_identical_texts_are_embedded_once(store: PassageStore, tmp_path: Path) -> None:
    """Syndicated copies (same title and text, other ids) cost one embedding."""
    recording = RecordingEmbedder()
    original = _dev_articles(tmp_path, 1)[0]
    copies = [dataclasses.replace(original, id=f"copy-{n}", source=f"paper{n}.example")
              for n in range(3)]
    report = ingest_results([original, *copies], store, recording, progress=False)
    assert store.passage_count() == 4 * report.passages // 4 > 0
    assert len(recording.texts) == report.embedded == report.passages // 4
    again = ingest_results([dataclasses.replace(original, id="copy-9")], store, recording,
                           progress=False)
    assert again.embedded == 0  # a later copy reuses the stored vectors at once
    assert store.pending_count() == 0
