"""`rag serve` as a user starts it, the README's examples against it, and a store that
goes away."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import RagServe
from tests.server_fixtures import ROOT, serve_components, settings_for, upload
from ui.service import ArticleService
from ui.wiring import build

README = (ROOT / "README.md").read_text(encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


@pytest.fixture(scope="module")
def rag_serve(sample_dir: Path) -> Iterator[str]:
    """`rag serve` in its own process, on the sample data."""
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(sample_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.cli", "-q", "serve", "--host", "127.0.0.1",
         "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/api/health", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def readme_block(language: str, containing: str) -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", README, flags=re.S):
        if containing in block:
            return block
    raise AssertionError(f"no {language} block with {containing!r} in the README")


def test_rag_serve_serves_chat_api_and_docs(rag_serve: str) -> None:
    assert httpx.get(f"{rag_serve}/api/health").json()["status"] == "ok"
    page = httpx.get(f"{rag_serve}/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
    assert httpx.get(f"{rag_serve}/docs").status_code == 200


def test_readme_curl_examples_work_as_written(rag_serve: str) -> None:
    script = readme_block("sh", "curl -s http://127.0.0.1:8000/api/query")
    script = script.replace("http://127.0.0.1:8000", rag_serve)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    answer, end = json.JSONDecoder().raw_decode(out)  # curl adds no newline after a body
    assert answer["citations"]
    events, _, upload = out[end:].rpartition("\n\n")
    assert events.count("event: answer") == 1
    assert json.loads(upload)["result"]["files"][0]["status"] == "ok"


def test_readme_openai_example_works_as_written(rag_serve: str) -> None:
    code = readme_block("python", "OpenAI(base_url").replace("http://127.0.0.1:8000",
                                                             rag_serve)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "[1]" in out and "barbarism" in out
    assert "cited: [1" in out


def test_collections_share_the_one_embedder(sample_dir: Path, embedder) -> None:
    service = ArticleService(build(settings_for(sample_dir), embedder=embedder))
    other = service.components("another-collection", create=True)
    assert other.embedder is embedder and other.store.collection_name == "another-collection"
    assert service.components("another-collection") is other


@pytest.mark.server
def test_store_going_away_is_503_in_the_error_shape(tmp_path: Path, embedder) -> None:
    port = free_port()
    chroma = subprocess.Popen(
        [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(tmp_path / "db"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        wait_until_up(f"http://127.0.0.1:{port}/api/v2/heartbeat", chroma)
        settings = settings_for(tmp_path / "data", chroma_url=f"http://127.0.0.1:{port}")
        server = serve_components(settings, embedder)
        assert httpx.get(f"{server.url}/api/health").json()["store"]["reachable"]
        chroma.terminate()
        chroma.wait(timeout=30)
        for method, path, body in [("POST", "/api/query", {"question": "Who?"}),
                                   ("GET", "/api/articles", None),
                                   ("GET", "/api/health", None)]:
            r = httpx.request(method, server.url + path, json=body, timeout=60)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_unavailable"
    finally:
        if server:
            server.stop()
        if chroma.poll() is None:
            chroma.kill()
            chroma.wait()


def _long_article(n: int = 2000) -> dict[str, str]:
    """An article of many distinct passages: embedding it takes the background embedder
    several seconds."""
    text = "\n\n".join(f"Harbour report {i}: the port of Town{i} counted {1000 + 7 * i} ships "
                       f"in week {i % 52 + 1}, and its pilots named the tug Vessel{i}."
                       for i in range(n))
    return {"title": "Harbour reports", "text": text}


def test_server_shutdown_stops_the_service_threads(tmp_path: Path, embedder) -> None:
    """Stopping the server stops its background embedder and writer, even mid-batch: a
    thread left inside the model or the store as the process exits can crash the exit."""
    server = serve_components(settings_for(tmp_path / "data"), embedder)
    service = server.server.config.app.state.service
    try:
        upload(server.url, json={"records": [_long_article()]})
        assert service.background is not None
        threads = [service.background._thread, service.writes._thread]
        assert all(t is not None and t.is_alive() for t in threads)
        waiting = httpx.get(f"{server.url}/api/health").json()["store"]["waiting"]
        assert waiting > 0  # the embedder is still at work when the server stops
    finally:
        server.stop()
    assert not any(t.is_alive() for t in threads), [t.name for t in threads if t.is_alive()]
    assert not server.thread.is_alive()


def test_rag_serve_stops_cleanly_while_embedding(tmp_path: Path) -> None:
    """SIGTERM while the background embedder works: a clean shutdown (uvicorn ends by
    re-raising the signal), no traceback; a restart embeds what was left."""
    server = RagServe(tmp_path / "data", tmp_path / "serve.log").start()
    try:
        upload(server.url, json={"records": [_long_article()]})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first batch is in: embedding is on
            store = httpx.get(f"{server.url}/api/health").json()["store"]
            if store["embedded"]:
                break
            time.sleep(0.1)
        assert 0 < store["embedded"] < store["passages"], store
    finally:
        assert server.process is not None
        server.process.terminate()
        code = server.process.wait(timeout=60)
    log = server.log.read_text()
    assert code in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log, log[-2000:]
    assert "stopping: finishing the embedding batch under way" in log, log[-2000:]
    assert "Traceback" not in log and "Segmentation" not in log, log[-2000:]
    again = RagServe(tmp_path / "data", tmp_path / "serve2.log").start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            store = httpx.get(f"{again.url}/api/health").json()["store"]
            if store["waiting"] == 0:
                break
            time.sleep(1)
        assert store["waiting"] == 0 and store["embedded"] == store["passages"] > 0, store
    finally:
        again.stop()
