"""Ingest embeds each passage text once: unchanged articles never reach the model, and an
edited article re-embeds only the passages whose text changed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from index.embedder import MINILM_NAME, Embedder, LazyEmbedder, Vectors
from index.ingest import SplitOptions, ingest_paths, ingest_results
from index.store import PassageStore, open_client
from index.types import Article
from tests.helpers import RecordingEmbedder as CountingEmbedder

SMALL = SplitOptions(max_words=25, overlap_words=0)  # several short passages per article


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture()
def store(tmp_path: Path) -> PassageStore:
    return PassageStore(open_client(tmp_path / "data", None), "articles", MINILM_NAME)


def article(n: int, extra: str = "") -> Article:
    sentences = [f"Report {n} sentence {i} says the river town {n} rebuilt bridge {i}."
                 for i in range(8)]
    return Article(id=f"a{n}", title=f"Town {n} bridges", text=" ".join(sentences) + extra,
                   source="example.org")


def stored_vectors(store: PassageStore, article_id: str) -> dict[str, Vectors]:
    got = store._passages.get(where={"article_id": article_id},
                              include=["embeddings", "documents"])
    return {d: np.asarray(e) for d, e in zip(got["documents"], got["embeddings"], strict=True)}


def test_reingest_of_unchanged_corpus_never_calls_the_embedder(store, embedder):
    corpus = [article(1), article(2)]
    first = ingest_results(corpus, store, embedder, options=SMALL, progress=False)
    before = len(embedder.texts)
    again = ingest_results(corpus, store, embedder, options=SMALL, progress=False)
    assert first.embedded == first.passages > 0
    assert len(embedder.texts) == before
    assert (again.unchanged, again.passages, again.embedded) == (2, 0, 0)
    assert store.passage_count() == first.passages


def test_reingest_of_unchanged_corpus_never_loads_the_model(store, embedder):
    loads: list[Embedder] = []

    def load() -> Embedder:
        loads.append(embedder)
        return embedder

    corpus = [article(3)]
    ingest_results(corpus, store, LazyEmbedder(MINILM_NAME, load), options=SMALL,
                   progress=False)
    assert len(loads) == 1
    lazy = LazyEmbedder(MINILM_NAME, load)
    ingest_results(corpus, store, lazy, options=SMALL, progress=False)
    assert not lazy.loaded and len(loads) == 1


def test_edited_article_reembeds_only_its_changed_passages(store, embedder):
    ingest_results([article(4)], store, embedder, options=SMALL, progress=False)
    old = stored_vectors(store, "a4")
    before = len(embedder.texts)
    edited = article(4, extra=" A late update says the ferry to town 4 resumed service.")
    report = ingest_results([edited], store, embedder, options=SMALL, progress=False)
    new = stored_vectors(store, "a4")
    assert report.replaced == 1
    assert 0 < report.embedded < report.passages == len(new)
    assert len(embedder.texts) - before == report.embedded
    kept = set(old) & set(new)
    assert len(kept) == report.passages - report.embedded
    for text in kept:  # reused vectors are the stored ones, row for row
        np.testing.assert_allclose(new[text], old[text], atol=1e-6)
    fresh = embedder.embed([f"{edited.title}\n{t}" for t in sorted(new)])
    got = np.stack([new[t] for t in sorted(new)])
    assert np.allclose((fresh * got).sum(axis=1), 1.0, atol=1e-3)  # every vector fits its text


def test_changed_file_replaces_its_article_reusing_unchanged_passages(tmp_path, store,
                                                                       embedder):
    path = tmp_path / "bridges.txt"
    path.write_text(f"{article(5).title}\n\n{article(5).text}", encoding="utf-8")
    first = ingest_paths([path], store, embedder, max_bytes=10**6, options=SMALL,
                         progress=False)
    path.write_text(path.read_text(encoding="utf-8") + "\nThe mayor of town 5 opened it.",
                    encoding="utf-8")
    second = ingest_paths([path], store, embedder, max_bytes=10**6, options=SMALL,
                          progress=False)
    assert (first.added, second.replaced) == (1, 1)
    assert len(store.articles()) == 1
    assert store.passage_count() == second.passages
    assert second.embedded < second.passages


def test_batched_write_replaces_each_articles_passages(store, embedder):
    a, b = article(6), article(7)
    ingest_results([a, b], store, embedder, options=SMALL, progress=False)
    shorter = dataclasses.replace(a, text="Town 6 rebuilt one bridge this spring.")
    report = ingest_results([shorter, b], store, embedder, options=SMALL, progress=False)
    assert (report.replaced, report.unchanged) == (1, 1)
    assert len(stored_vectors(store, "a6")) == 1
    assert {x.id: x.passages for x in store.articles()} == {
        "a6": 1, "a7": len(stored_vectors(store, "a7"))}
