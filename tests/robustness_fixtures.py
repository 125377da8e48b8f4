"""Fixtures for the robustness tests; test modules load them with ``pytest_plugins``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder
from tests.helpers import ChromaServer


@pytest.fixture(scope="session")
def minilm(embedder: MiniLMEmbedder) -> MiniLMEmbedder:
    """The real embedding model: the session's one (tests/conftest.py), loaded once."""
    return embedder


@pytest.fixture()
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    """A Chroma server of this test's own (tests here kill it)."""
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.stop()
