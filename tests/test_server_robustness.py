"""The served API under a bearer token, under concurrent load, and with its store gone."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from tests.helpers import ChromaServer, free_port, news_records
from tests.server_fixtures import (
    ROOT,
    SAMPLE_ARTICLES,
    SAMPLE_QUESTION,
    LiveServer,
    serve_components,
    settings_for,
    upload,
)
from ui.wiring import build_store

pytest_plugins = ["tests.robustness_fixtures"]

_MARKER = re.compile(r"\[(\d+)\]")


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body


def assert_cited(answer: dict[str, Any]) -> None:
    """An answer that is not an abstention cites, and every [n] in it is one of its citations."""
    assert not answer["abstained"], answer["answer"]
    markers = {int(n) for n in _MARKER.findall(answer["answer"])}
    assert markers and markers == {c["marker"] for c in answer["citations"]}


def request_for(method: str, path: str) -> dict[str, Any]:
    """A plausible request for an operation: what a client that forgot the token would send."""
    if path == "/api/articles" and method == "POST":
        return {"json": {"records": [{"title": "t", "text": "Some article text here."}]}}
    if method == "POST":
        return {"json": {"question": SAMPLE_QUESTION,
                         "messages": [{"role": "user", "content": SAMPLE_QUESTION}],
                         "model": "rag-articles"}}
    return {}


# -- auth --------------------------------------------------------------------------------


@pytest.fixture()
def secured_serve(sample_dir: Path, tmp_path: Path) -> Any:
    """`rag serve` with RAG_API_KEY and DEBUG logging, its output kept in a file."""
    token = "tok-" + secrets.token_hex(16)
    port = free_port()
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "RAG_DATA_DIR": str(sample_dir), "RAG_API_KEY": token,
           "RAG_LOG_LEVEL": "DEBUG", "GRADIO_ANALYTICS_ENABLED": "False",
           "NO_PROXY": "127.0.0.1,localhost",
           "RAG_AUTH_FAILURES_PER_MINUTE": "1000"}  # wrong tokens on purpose, many
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{url}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "rag serve did not start"
                time.sleep(0.3)
        yield url, token, process, log_path
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def test_every_route_refuses_without_the_token_which_is_never_logged(secured_serve: Any,
                                                                      tmp_path: Path) -> None:
    url, token, process, log_path = secured_serve
    schema = httpx.get(f"{url}/openapi.json", timeout=30,
                       headers={"Authorization": f"Bearer {token}"}).json()
    operations = [(method.upper(), path) for path, ops in schema["paths"].items()
                  for method in ops]
    assert len(operations) >= 8
    for method, path in operations:
        target = url + path.replace("{article_id}", "some-id")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token},
                        {"Authorization": f"Basic {token}"}):
            response = httpx.request(method, target, headers=headers, timeout=60,
                                     **request_for(method, path))
            if path == "/api/health":  # open, but says nothing beyond "ok"
                assert response.status_code == 200 and response.json() == {"status": "ok"}
            else:
                assert_error(response, 401, "unauthorized")
    upload = httpx.post(f"{url}/api/articles", timeout=60,
                        files={"files": ("a.txt", b"Some text of an article.", "text/plain")})
    assert_error(upload, 401, "unauthorized")

    auth = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{url}/api/query", json={"question": SAMPLE_QUESTION}, headers=auth,
                        timeout=120)
    assert answer.status_code == 200
    assert_cited(answer.json())
    health = httpx.get(f"{url}/api/health", headers=auth, timeout=60).json()
    assert health["store"]["reachable"] is True
    assert token not in str(health)

    process.terminate()
    process.wait(timeout=30)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert "/api/query" in log  # the access log was written, at DEBUG level
    assert token not in log and token[4:20] not in log


# -- concurrent use ----------------------------------------------------------------------


@pytest.fixture()
def busy_server(tmp_path: Path, embedder: MiniLMEmbedder) -> Any:
    """A server of its own over the sample article (the concurrent ingest adds to it)."""
    settings = settings_for(tmp_path / "data")
    ingest_paths([SAMPLE_ARTICLES], build_store(settings), embedder, max_bytes=10**6,
                 progress=False)
    server = serve_components(settings, embedder)
    yield server
    server.stop()


def test_twenty_clients_query_while_an_ingest_runs(busy_server: LiveServer) -> None:
    clients, per_client = 20, 3
    records = news_records(60)[40:52]
    spans: dict[str, tuple[float, float]] = {}
    query_spans: list[tuple[float, float]] = []
    statuses: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()

    def ingest() -> dict[str, Any]:
        started = time.monotonic()
        result = upload(busy_server.url, json={"records": records})
        # The upload returns once stored; its vectors are computed in the background after.
        while httpx.get(f"{busy_server.url}/api/health",
                        timeout=60).json()["store"]["waiting"]:
            time.sleep(0.1)
        spans["ingest"] = (started, time.monotonic())
        return result

    def client(number: int) -> None:
        with httpx.Client(base_url=busy_server.url, timeout=240) as http:
            for _ in range(per_client):
                started = time.monotonic()
                try:
                    response = http.post("/api/query", json={"question": SAMPLE_QUESTION})
                    with lock:
                        statuses.append(response.status_code)
                    assert response.status_code == 200, response.text
                    assert_cited(response.json())
                except Exception as exc:  # collected: every client's failure is reported
                    with lock:
                        failures.append(f"client {number}: {type(exc).__name__}: {exc}")
                with lock:
                    query_spans.append((started, time.monotonic()))

    with ThreadPoolExecutor(max_workers=clients + 1) as pool:
        uploaded = pool.submit(ingest)
        time.sleep(0.2)  # the ingest is under way when the questions arrive
        for f in [pool.submit(client, n) for n in range(clients)]:
            f.result(timeout=300)
        report = uploaded.result(timeout=300)

    print(f"\nconcurrency: {len(statuses)} queries from {clients} clients during an ingest of "
          f"{len(records)} articles; statuses {sorted(set(statuses))}; failures {len(failures)}")
    assert failures == []
    assert statuses == [200] * clients * per_client
    assert report["added"] == len(records) and report["failed"] == 0
    ingest_start, ingest_end = spans["ingest"]
    during = sum(start < ingest_end and end > ingest_start for start, end in query_spans)
    print(f"concurrency: {during} queries in flight while the ingest ran "
          f"({ingest_end - ingest_start:.1f} s)")
    assert during > 0, "no query overlapped the ingest"


# -- store unavailable -------------------------------------------------------------------


def test_store_down_is_503_and_the_server_recovers_when_it_returns(
        chroma: ChromaServer, tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    settings = settings_for(tmp_path / "data", chroma_url=chroma.url)
    ingest_paths([SAMPLE_ARTICLES], build_store(settings), embedder, max_bytes=10**6,
                 progress=False)
    server = serve_components(settings, embedder)
    try:
        ask = {"question": SAMPLE_QUESTION}
        ok = httpx.post(f"{server.url}/api/query", json=ask, timeout=120)
        assert ok.status_code == 200
        assert_cited(ok.json())

        chroma.kill()
        for method, path, body in [("POST", "/api/query", ask), ("GET", "/api/health", None),
                                   ("GET", "/api/articles", None),
                                   ("POST", "/api/query/stream", ask)]:
            response = httpx.request(method, server.url + path, json=body, timeout=120)
            assert_error(response, 503, "store_unavailable")
            assert chroma.url in response.json()["error"]["message"]

        chroma.start()  # same folder, same port
        back = httpx.post(f"{server.url}/api/query", json=ask, timeout=120)
        assert back.status_code == 200, back.text
        assert_cited(back.json())
        health = httpx.get(f"{server.url}/api/health", timeout=60)
        assert health.status_code == 200 and health.json()["store"]["passages"] > 0
    finally:
        server.stop()
