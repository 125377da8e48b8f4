"""Fixtures that start real things: the embedding model, Chroma stores, a `chroma run` server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from index.store import PassageStore, open_client

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = ROOT / "examples" / "articles"
BIN = Path(sys.executable).parent
MAX_BYTES = 25_000_000

# Real servers on loopback (our API and chat) live in their own module.
pytest_plugins = ["tests.server_fixtures"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def open_store(data_dir: Path, collection: str = "articles",
               model: str = MiniLMEmbedder.name) -> PassageStore:
    return PassageStore(open_client(data_dir, None), collection, model, where=str(data_dir))


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


def rag_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running the `rag` command against one data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({"RAG_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False"})
    env.update(extra)
    return env


def run_rag(*args: str, env: dict[str, str], timeout: float = 300,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the installed `rag` console script."""
    return subprocess.run([str(BIN / "rag"), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


class ChromaServer:
    """A real `chroma run` process on a loopback port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "chroma"), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.process.returncode}")
            time.sleep(0.2)
        raise RuntimeError("chroma run did not answer within 60 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    server.start()
    yield server
    server.stop()
