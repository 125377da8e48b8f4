"""Fixtures that start real things: the embedding model, Chroma stores, a `chroma run` server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from index.store import PassageStore
from tests.helpers import (
    BIN,
    ROOT,
    SAMPLE_DIR,
    ChromaServer,
    free_port,
    open_store,
    rag_env,
    run_rag,
)

# Shared helpers live in tests/helpers.py; re-exported for the modules that import them here.
__all__ = ["BIN", "ROOT", "SAMPLE_DIR", "ChromaServer", "free_port", "open_store", "rag_env",
           "run_rag"]

MAX_BYTES = 25_000_000

# Real servers on loopback (our API and chat) live in their own module.
pytest_plugins = ["tests.server_fixtures"]


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture()
def store(tmp_path: Path) -> PassageStore:
    return open_store(tmp_path / "data")


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory,
                 embedder: MiniLMEmbedder) -> PassageStore:
    """The bundled sample article, ingested once for the whole session (read-only use)."""
    data = tmp_path_factory.mktemp("sample-data")
    store = open_store(data)
    report = ingest_paths([SAMPLE_DIR], store, embedder, max_bytes=MAX_BYTES, progress=False)
    assert report.added == 1 and not report.failures
    return store


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    yield server
    server.stop()
