"""The same ingest and answers through a real `chroma run` server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLE_DIR, ChromaServer, rag_env, run_rag


def test_ingest_and_ask_through_a_chroma_server(chroma_server: ChromaServer,
                                                tmp_path: Path) -> None:
    env = rag_env(tmp_path / "local", RAG_CHROMA_URL=chroma_server.url,
                  RAG_COLLECTION="served")
    ingested = run_rag("ingest", str(SAMPLE_DIR), env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert f"Chroma server at {chroma_server.url}" in ingested.stderr
    assert "1 added" in ingested.stdout
    again = run_rag("ingest", "-q", str(SAMPLE_DIR), env=env)
    assert "0 added, 1 unchanged" in again.stdout
    asked = run_rag("ask", "--json", "Who brokered the ceasefire?",
                    "What did China's ambassador say?", env=env)
    cited, abstained = (json.loads(line) for line in asked.stdout.splitlines())
    assert not cited["abstained"] and "Moscow and Washington" in cited["answer"]
    assert abstained["abstained"]
    assert not (tmp_path / "local" / "chroma").exists(), "nothing stored locally"


def test_server_and_embedded_stores_give_the_same_answer(chroma_server: ChromaServer,
                                                         tmp_path: Path) -> None:
    question = "How many civilians have died in Aleppo?"
    results = []
    for extra in ({"RAG_CHROMA_URL": chroma_server.url, "RAG_COLLECTION": "same"}, {}):
        env = rag_env(tmp_path / "local", **extra)
        run_rag("ingest", "-q", str(SAMPLE_DIR), env=env)
        results.append(json.loads(run_rag("ask", "--json", question, env=env).stdout))
    served, embedded = results
    assert served["answer"] == embedded["answer"] and not served["abstained"]
    assert [c["passage_id"] for c in served["citations"]] == [
        c["passage_id"] for c in embedded["citations"]]
