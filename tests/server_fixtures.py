"""Real servers on loopback for the API, OpenAI and browser tests.

The embedding model (the `embedder` fixture of conftest.py) is loaded once per test session
and shared by every app, as the server shares it between collections.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from ui.server import create_app
from ui.settings import Settings
from ui.wiring import Components, build, build_store

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ARTICLES = ROOT / "examples" / "articles"
SAMPLE_QUESTION = "What did the US ambassador to the UN say Russia was doing in Syria?"
API_KEY = "test-secret-key-0123"


@dataclass
class LiveServer:
    """A uvicorn server running an app in a thread on a free loopback port."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    settings: Settings

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_server(app: Any, settings: Settings) -> LiveServer:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/health", timeout=2,
                         headers={"Authorization": f"Bearer {API_KEY}"}).status_code < 500:
                return LiveServer(url, server, thread, settings)
        except httpx.TransportError:
            time.sleep(0.2)
    server.should_exit = True
    raise RuntimeError("the test server did not start")


def settings_for(data_dir: Path, **values: Any) -> Settings:
    return Settings(data_dir=data_dir, **values)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory, embedder: MiniLMEmbedder) -> Path:
    """A data folder holding the sample article, ingested once per session."""
    data_dir = tmp_path_factory.mktemp("sample-data")
    store = build_store(settings_for(data_dir))
    report = ingest_paths([SAMPLE_ARTICLES], store, embedder, max_bytes=10_000_000,
                          progress=False)
    assert report.added >= 1
    return data_dir


def serve_components(settings: Settings, embedder: MiniLMEmbedder,
                     components: Components | None = None) -> LiveServer:
    components = components or build(settings, embedder=embedder)
    return start_server(create_app(settings, components), settings)


@pytest.fixture(scope="session")
def live_server(sample_dir: Path, embedder: MiniLMEmbedder) -> Iterator[LiveServer]:
    """The server over the sample article, no API key."""
    server = serve_components(settings_for(sample_dir), embedder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secured_server(sample_dir: Path, embedder: MiniLMEmbedder) -> Iterator[LiveServer]:
    """The same store behind RAG_API_KEY, with small limits to test them cheaply."""
    # Many tests here send wrong tokens on purpose: the brake on guessing is tested apart.
    settings = settings_for(sample_dir, api_key=API_KEY, max_question_chars=200,
                            max_request_kb=4, max_file_mb=0.02, max_upload_files=3,
                            auth_failures_per_minute=10_000)
    server = serve_components(settings, embedder)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scripted_server(sample_dir: Path, embedder: MiniLMEmbedder) -> Iterator[LiveServer]:
    """The server with an answerer that streams many chunks, one sentence unsupported."""
    from tests.scripted_answerer import scripted_components

    settings = settings_for(sample_dir)
    server = serve_components(settings, embedder, scripted_components(settings, embedder))
    yield server
    server.stop()


def upload(url: str, wait: float = 240, **request: Any) -> dict[str, Any]:
    """POST /api/articles (``files=``/``data=`` or ``json=``), wait for the queued ingest and
    return its result: the per-file outcome."""
    response = httpx.post(f"{url}/api/articles", params={"wait": wait}, timeout=wait + 60,
                          **request)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "done", job
    result: dict[str, Any] = job["result"]
    return result
