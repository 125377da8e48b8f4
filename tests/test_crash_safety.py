"""kill -9 mid-ingest, then the same ingest again: the store equals a clean ingest."""

from __future__ import annotations

import signal
from collections.abc import Callable
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
    news_records,
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
    path = write_jsonl(folder / "dev40.jsonl", news_records(70)[30:66])
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


def _kill_when(path: Path, env: dict[str, str], ready: Callable[[OutputWatcher], bool],
               *args: str) -> None:
    """Start `rag ingest`, kill -9 it once ``ready`` holds for its progress output."""
    process = start_rag("ingest", *args, str(path), env=env)
    try:
        watcher = OutputWatcher(process)
        assert watcher.wait_for(lambda _: ready(watcher), timeout=300)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        stop_process(process)
    assert process.returncode == -signal.SIGKILL


def _rerun_equals_clean(path: Path, data: Path, env: dict[str, str],
                        articles: list[Article], clean: dict[str, object]) -> None:
    """The same ingest again leaves exactly what an uninterrupted one does."""
    expected_ids = {p.id for a in articles for p in split_article(a, 200, 40)}
    interrupted = probe_store(data)
    done_before = len(interrupted["catalog"])
    rerun = run_rag("ingest", "-q", str(path), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before} unchanged" in rerun.stdout, rerun.stdout

    store = open_store(data)
    assert_consistent(store)
    assert store.pending_count() == 0
    # The BM25 index built from the interrupted store is stale if the re-run wrote
    # anything: the next query rebuilds it, and it then holds exactly the stored passages.
    lexical = LexicalIndex(store, data / "bm25" / "articles")
    lexical.rank("harbour", 1, 0)
    assert sorted(lexical._current().ids) == sorted(expected_ids)
    got = snapshot(data)
    assert set(got["ids"]) == expected_ids  # type: ignore[arg-type]
    assert len(got["ids"]) == len(set(got["ids"]))  # type: ignore[arg-type]
    assert got["catalog"] == clean["catalog"]
    assert got["documents"] == clean["documents"]
    assert got["metadatas"] == clean["metadatas"]
    for pid, vector in clean["embeddings"].items():  # type: ignore[attr-defined]
        assert np.allclose(got["embeddings"][pid], vector, atol=1e-3), pid  # type: ignore[index]


def _probe_is_consistent(data: Path) -> dict[str, dict[str, int]]:
    """Every article counted as done has all its passages (embedded or pending), and the
    BM25 index built from the interrupted store holds exactly those."""
    interrupted = probe_store(data)
    for article_id, count in interrupted["catalog"].items():
        assert interrupted["stored"].get(article_id) == count, article_id
    assert interrupted["bm25"] == interrupted["stored"]
    return interrupted


def test_kill_9_while_storing_then_rerun_equals_a_clean_ingest(
        corpus: tuple[Path, list[Article]], clean: dict[str, object], tmp_path: Path) -> None:
    path, articles = corpus
    data = tmp_path / "data"
    env = rag_env(data)
    # The first round of articles is stored: the second is being written. Kill there.
    _kill_when(path, env, lambda w: w.progress("searchable") >= _ROUND)
    interrupted = _probe_is_consistent(data)
    assert len(interrupted["catalog"]) >= _ROUND
    _rerun_equals_clean(path, data, env, articles, clean)


def test_kill_9_while_embedding_then_rerun_equals_a_clean_ingest(
        corpus: tuple[Path, list[Article]], clean: dict[str, object], tmp_path: Path) -> None:
    """Between the stages: every article stored and searchable, some passages embedded."""
    path, articles = corpus
    data = tmp_path / "data"
    env = rag_env(data)
    _kill_when(path, env, lambda w: w.progress("embedding") >= 64)
    interrupted = _probe_is_consistent(data)
    assert len(interrupted["catalog"]) == len(articles)
    waiting = sum(interrupted["pending"].values())
    assert 0 < waiting < sum(interrupted["catalog"].values()), "killed before or after"
    _rerun_equals_clean(path, data, env, articles, clean)


def test_no_wait_then_kill_9_in_the_second_stage_then_rerun_equals_a_clean_ingest(
        corpus: tuple[Path, list[Article]], clean: dict[str, object], tmp_path: Path) -> None:
    """`--no-wait` stores and stops: answerable at once; a later ingest embeds (killed
    half-way here), and its re-run finishes."""
    path, articles = corpus
    data = tmp_path / "data"
    env = rag_env(data)
    stored = run_rag("ingest", "--no-wait", str(path), env=env)
    assert stored.returncode == 0, stored.stderr
    assert "waiting for their vectors" in stored.stdout
    first = probe_store(data)
    assert first["pending"] == first["catalog"]  # every passage waits; none has a vector
    _kill_when(path, env, lambda w: w.progress("embedding") >= 64)
    _probe_is_consistent(data)
    _rerun_equals_clean(path, data, env, articles, clean)


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
