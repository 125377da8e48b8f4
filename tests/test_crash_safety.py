"""kill -9 mid-ingest, then the same ingest again: the store equals a clean ingest."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from index.clean import clean_article
from index.embedder import MiniLMEmbedder
from index.ingest import _ROUND, ingest_paths, ingest_results
from index.lexical import LexicalIndex
from index.passages import split_article
from index.readers import read_paths
from index.store import PassageStore, open_client
from index.types import Article
from tests.helpers import (
    OutputWatcher,
    dev_records,
    open_store,
    probe_store,
    rag_env,
    run_rag,
    start_rag,
    stop_process,
    write_jsonl,
)

pytest_plugins = ["tests.robustness_fixtures"]
MAX_BYTES = 25_000_000


def snapshot(data_dir: Path) -> dict[str, object]:
    """Everything an ingest leaves behind, read back through Chroma's own client."""
    client = open_client(data_dir, None)
    passages = client.get_collection("articles").get(
        include=["documents", "metadatas", "embeddings"])
    catalog = client.get_collection("articles__articles").get(include=["metadatas"])
    ids = list(passages["ids"])
    return {
        "ids": ids,
        "documents": dict(zip(ids, passages["documents"], strict=True)),
        "metadatas": dict(zip(ids, passages["metadatas"], strict=True)),
        "embeddings": dict(zip(ids, np.asarray(passages["embeddings"]), strict=True)),
        "catalog": {i: (m["hash"], m["passages"])
                    for i, m in zip(catalog["ids"], catalog["metadatas"], strict=True)},
    }


def assert_consistent(store: PassageStore) -> None:
    """Every article in the catalog has exactly its passages 0..n-1, and nothing else exists."""
    counts: dict[str, list[int]] = {}
    for passage in store.all_passages():
        counts.setdefault(passage.article_id, []).append(passage.number)
    catalog = {a.id: a.passages for a in store.articles()}
    assert set(counts) == set(catalog), "passages without a catalog record, or the reverse"
    for article_id, numbers in counts.items():
        assert sorted(numbers) == list(range(catalog[article_id])), article_id


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Article]]:
    """36 short dev articles: more than one embedding round, cheap to embed."""
    folder = tmp_path_factory.mktemp("crash-corpus")
    path = write_jsonl(folder / "dev40.jsonl", dev_records(70)[30:66])
    # As ingest sees them: boilerplate lines dropped before splitting.
    articles = [clean_article(r) for r in read_paths([path], MAX_BYTES)
                if isinstance(r, Article)]
    assert len(articles) == 36
    return path, articles


@pytest.fixture(scope="module")
def clean(corpus: tuple[Path, list[Article]], minilm: MiniLMEmbedder,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The reference: the same articles ingested once without interruption."""
    data = tmp_path_factory.mktemp("clean-data")
    report = ingest_paths([corpus[0]], open_store(data), minilm, max_bytes=MAX_BYTES,
                          progress=False)
    assert report.added == 36 and not report.failures
    return snapshot(data)


def test_kill_9_mid_ingest_then_rerun_equals_a_clean_ingest(
        corpus: tuple[Path, list[Article]], clean: dict[str, object], tmp_path: Path) -> None:
    path, articles = corpus
    expected_ids = {p.id for a in articles for p in split_article(a, 200, 40)}
    first_round = sum(len(split_article(a, 200, 40)) for a in articles[:_ROUND])
    data = tmp_path / "data"
    env = rag_env(data)

    process = start_rag("ingest", str(path), env=env)
    try:
        watcher = OutputWatcher(process)
        # The first round is embedded: its articles are being written now. Kill there.
        assert watcher.wait_for(lambda _: watcher.embedded() >= first_round, timeout=180)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stop_process(process)
    assert process.returncode == -signal.SIGKILL

    # Every article counted as done has all its passages; others may be partly written.
    interrupted = probe_store(data)
    done_before = len(interrupted["catalog"])
    assert done_before < len(articles), "the ingest finished before it was killed"
    for article_id, count in interrupted["catalog"].items():
        assert interrupted["stored"].get(article_id) == count, article_id
    assert interrupted["bm25"] == interrupted["stored"]  # built from the interrupted store

    rerun = run_rag("ingest", "-q", str(path), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before} unchanged" in rerun.stdout, rerun.stdout

    store = open_store(data)
    assert_consistent(store)
    # The BM25 index built from the interrupted store is stale now: the next query rebuilds
    # it, and it then holds exactly the stored passages.
    lexical = LexicalIndex(store, data / "bm25" / "articles")
    lexical.rank("harbour", 1, 0)
    assert lexical.rebuilds == 1
    assert sorted(lexical._current().ids) == sorted(expected_ids)
    got = snapshot(data)
    assert set(got["ids"]) == expected_ids  # type: ignore[arg-type]
    assert len(got["ids"]) == len(set(got["ids"]))  # type: ignore[arg-type]
    assert got["catalog"] == clean["catalog"]
    assert got["documents"] == clean["documents"]
    assert got["metadatas"] == clean["metadatas"]
    for pid, vector in clean["embeddings"].items():  # type: ignore[attr-defined]
        assert np.allclose(got["embeddings"][pid], vector, atol=1e-3), pid  # type: ignore[index]


def test_half_stored_article_is_not_counted_as_done(
        corpus: tuple[Path, list[Article]], clean: dict[str, object], minilm: MiniLMEmbedder,
        tmp_path: Path) -> None:
    """The state a crash between an article's passages and its catalog record leaves."""
    _, articles = corpus
    data = tmp_path / "data"
    article = max(articles, key=lambda a: len(split_article(a, 200, 40)))
    passages = split_article(article, 200, 40)
    assert len(passages) >= 2
    # Only its first passage, written straight through Chroma, and no catalog record.
    store = open_store(data)
    open_client(data, None).get_collection("articles").add(
        ids=[passages[0].id], embeddings=[[0.0] * 383 + [1.0]], documents=["stale half"],
        metadatas=[{"article_id": article.id, "number": 0}])
    assert store.article_count() == 0

    chosen = [article, *[a for a in articles if a.id != article.id][:2]]
    report = ingest_results(chosen, store, minilm, progress=False)
    assert report.added == 3 and report.unchanged == 0
    assert_consistent(store)
    got = snapshot(data)
    wanted = {p for p in clean["documents"]  # type: ignore[attr-defined]
              if p.rsplit("#", 1)[0] in {a.id for a in chosen}}
    assert got["documents"] == {p: clean["documents"][p] for p in wanted}  # type: ignore[index]
    assert got["catalog"] == {a.id: clean["catalog"][a.id] for a in chosen}  # type: ignore[index]
