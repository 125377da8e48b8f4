"""Ingest is idempotent: unchanged articles add nothing, changed ones replace their passages."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder, Vectors
from index.ingest import SplitOptions, ingest_paths
from index.store import EmbeddingModelMismatch, PassageStore
from tests.conftest import MAX_BYTES, SAMPLE_DIR, open_store


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.embedded = 0
        self.name = inner.name

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        self.embedded += len(texts)
        return self.inner.embed(texts, progress)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


@pytest.fixture()
def counting(embedder: MiniLMEmbedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def _ids(store: PassageStore) -> list[str]:
    return sorted(p.id for p in store.all_passages())


def test_reingest_of_unchanged_article_adds_and_embeds_nothing(
        store: PassageStore, counting: CountingEmbedder) -> None:
    first = ingest_paths([SAMPLE_DIR], store, counting, max_bytes=MAX_BYTES, progress=False)
    assert first.added == 1 and first.passages == store.passage_count() > 0
    embedded, ids = counting.embedded, _ids(store)
    again = ingest_paths([SAMPLE_DIR], store, counting, max_bytes=MAX_BYTES, progress=False)
    assert (again.added, again.unchanged, again.replaced, again.passages) == (0, 1, 0, 0)
    assert counting.embedded == embedded
    assert _ids(store) == ids


def test_changed_file_replaces_its_passages(tmp_path: Path, store: PassageStore,
                                            counting: CountingEmbedder) -> None:
    path = tmp_path / "story.txt"
    path.write_text("Flood warning\n\n" + "The river rose two metres overnight. " * 60)
    ingest_paths([path], store, counting, max_bytes=MAX_BYTES, progress=False,
                 options=SplitOptions(max_words=60))
    old = store.articles()
    path.write_text("Flood warning lifted\n\n" + "The river fell back to normal levels. " * 30)
    report = ingest_paths([path], store, counting, max_bytes=MAX_BYTES, progress=False,
                          options=SplitOptions(max_words=60))
    assert (report.added, report.replaced) == (0, 1)
    [article] = store.articles()
    assert article.id != old[0].id and article.title == "Flood warning lifted"
    texts = [p.text for p in store.all_passages()]
    assert len(texts) == article.passages == store.passage_count()
    assert all("rose" not in t for t in texts)


def test_record_with_same_id_and_new_text_is_replaced(tmp_path: Path, store: PassageStore,
                                                      counting: CountingEmbedder) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_text('{"id": "n1", "text": "Old text about elections."}\n')
    ingest_paths([path], store, counting, max_bytes=MAX_BYTES, progress=False)
    path.write_text('{"id": "n1", "text": "New text about the election results."}\n')
    report = ingest_paths([path], store, counting, max_bytes=MAX_BYTES, progress=False)
    assert report.replaced == 1
    assert [p.text for p in store.all_passages()] == ["New text about the election results."]


def test_bad_files_are_reported_while_good_ones_are_stored(
        tmp_path: Path, store: PassageStore, counting: CountingEmbedder) -> None:
    (tmp_path / "good.md").write_text("# Harvest\n\nFarmers brought in a record harvest.")
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    (tmp_path / "bad.json").write_text("{oops")
    report = ingest_paths([tmp_path], store, counting, max_bytes=MAX_BYTES, progress=False)
    assert report.added == 1 and report.failed == 3
    assert {Path(f.where).name for f in report.failures} == {"empty.txt", "bin.txt", "bad.json"}
    assert [a.title for a in store.articles()] == ["Harvest"]


def test_remove_deletes_the_article_and_its_passages(store: PassageStore,
                                                     counting: CountingEmbedder) -> None:
    ingest_paths([SAMPLE_DIR], store, counting, max_bytes=MAX_BYTES, progress=False)
    [article] = store.articles()
    assert store.remove_article(article.id)
    assert store.passage_count() == 0 and store.articles() == []
    assert not store.remove_article(article.id)


def test_a_collection_refuses_another_embedding_model(tmp_path: Path) -> None:
    open_store(tmp_path / "d", "news")
    with pytest.raises(EmbeddingModelMismatch, match="another collection"):
        open_store(tmp_path / "d", "news", model="some-other-model")
    open_store(tmp_path / "d", "other-news", model="some-other-model")  # a new collection is fine
