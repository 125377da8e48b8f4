"""Two `rag serve` processes and one `chroma run`, in a tenant and database of their own
behind a token gate (as in Chroma Cloud): what one stores, the other answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chroma_gate import ChromaTokenGate
from tests.helpers import ChromaServer, RagServe, news_records, rag_env, run_rag

TENANT, DATABASE, TOKEN = "acme-news", "newsroom", "chroma-token-0123456789"
HERONS = {"id": "herons-varsa", "title": "Herons return to Lake Varsa",
          "source": "lakes.example", "published": "2024-05-02",
          "text": "Ornithologists counted 412 grey herons nesting at Lake Varsa this spring, "
                  "the most since 1990, said Ilse Marner of the Varsa Bird Trust.\n\n"
                  "The birds had left the lake after a drought dried its reed beds. Volunteers "
                  "replanted the reeds over three winters, and the herons came back in March."}
QUESTION = "How many grey herons nested at Lake Varsa this spring?"


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaTokenGate]:
    """A real Chroma server with a non-default tenant and database, behind a token gate."""
    import chromadb
    from chromadb.config import Settings

    chroma = ChromaServer(tmp_path_factory.mktemp("chroma"))
    chroma.start()
    admin = chromadb.AdminClient(Settings(chroma_api_impl="chromadb.api.fastapi.FastAPI",
                                          chroma_server_host="127.0.0.1",
                                          chroma_server_http_port=chroma.port,
                                          anonymized_telemetry=False))
    admin.create_tenant(TENANT)
    admin.create_database(DATABASE, TENANT)
    gate = ChromaTokenGate(chroma.url, TOKEN).start()
    yield gate
    gate.stop()
    chroma.stop()


def _settings(gate: ChromaTokenGate, **extra: str) -> dict[str, str]:
    return {"RAG_CHROMA_URL": gate.url, "RAG_CHROMA_TENANT": TENANT,
            "RAG_CHROMA_DATABASE": DATABASE, "RAG_CHROMA_TOKEN": TOKEN,
            "RAG_COLLECTION": "news", **extra}


@pytest.fixture(scope="module")
def servers(gate: ChromaTokenGate,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RagServe, RagServe]]:
    """Two app servers of one machine: one data folder (BM25 index, locks), one store."""
    data = tmp_path_factory.mktemp("app-data")
    logs = tmp_path_factory.mktemp("logs")
    first = RagServe(data, logs / "a.log", **_settings(gate)).start()
    second = RagServe(data, logs / "b.log", **_settings(gate)).start()
    yield first, second
    first.stop()
    second.stop()


def _ask(server: RagServe, question: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/query", json={"question": question}, timeout=60)


def _wait_embedded(server: RagServe, timeout: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = httpx.get(f"{server.url}/api/health", timeout=30).json()["store"]
        if store["waiting"] == 0:
            return dict(store)
        time.sleep(0.5)
    raise AssertionError("the passages were never all embedded")


def test_an_upload_through_one_server_is_answered_by_the_other(
        servers: tuple[RagServe, RagServe], gate: ChromaTokenGate) -> None:
    first, second = servers
    stored = httpx.post(f"{first.url}/api/articles", params={"wait": 60},
                        json={"records": [HERONS]}, timeout=90)
    assert stored.status_code == 200, stored.text
    assert stored.json()["result"]["added"] == 1
    answer: dict[str, object] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a bound on the wait, not a timing assertion
        got = _ask(second, QUESTION)
        assert got.status_code == 200, got.text
        answer = got.json()
        if any(c["article_id"] == HERONS["id"] for c in answer["citations"]):  # type: ignore[attr-defined]
            break
        time.sleep(0.2)
    assert "412" in str(answer["answer"]), answer
    # The first server answers from the BM25 index the second one built and saved.
    assert "412" in _ask(first, QUESTION).json()["answer"]
    assert "bm25: indexed" in second.log.read_text()
    assert "bm25: indexed" not in first.log.read_text()
    store = _wait_embedded(second)
    assert store["embedded"] == store["passages"] and store["articles"] == 1
    assert gate.refused == 0


def test_ingest_in_one_server_while_the_other_answers_gives_no_errors(
        servers: tuple[RagServe, RagServe]) -> None:
    first, second = servers
    records = news_records(24)
    job = httpx.post(f"{first.url}/api/articles", json={"records": records}, timeout=60)
    assert job.status_code == 202, job.text
    questions = [json.dumps(r["title"]) for r in records[:6]] + [QUESTION]
    answers, errors, duplicates = 0, 0, 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for server in (second, first):
            got = _ask(server, questions[answers % len(questions)])
            answers += 1
            if got.status_code != 200:
                errors += 1
                continue
            ids = [p["passage_id"] for p in got.json()["passages"]]
            duplicates += len(ids) - len(set(ids))
        health = httpx.get(f"{first.url}/api/health", timeout=30).json()["store"]
        state = httpx.get(f"{first.url}/api/jobs/{job.json()['id']}", timeout=30).json()
        if state["status"] in ("done", "failed") and health["waiting"] == 0:
            break
    assert state["status"] == "done", state
    assert (errors, duplicates) == (0, 0) and answers > 0
    store = _wait_embedded(second)
    assert store["articles"] == 1 + len(records)


def test_a_wrong_token_or_database_is_named_in_the_error(gate: ChromaTokenGate,
                                                         tmp_path: Path) -> None:
    wrong_token = run_rag("list", env=rag_env(tmp_path, **_settings(
        gate, RAG_CHROMA_TOKEN="not-the-token-0000")))
    assert wrong_token.returncode == 2 and "RAG_CHROMA_TOKEN" in wrong_token.stderr
    wrong_database = run_rag("list", env=rag_env(tmp_path, **_settings(
        gate, RAG_CHROMA_DATABASE="no-such-db")))
    assert wrong_database.returncode == 2, wrong_database.stderr
    assert "RAG_CHROMA_DATABASE" in wrong_database.stderr
    assert TOKEN not in wrong_token.stderr + wrong_database.stderr
