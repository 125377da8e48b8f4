"""Large corpora: an ingest embeds through an OpenAI-compatible embeddings server (here
another `rag serve`'s /v1/embeddings) and the collection keeps the model's own name."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from openai import OpenAI

from index.embedder import MINILM_NAME, MiniLMEmbedder
from tests.helpers import SAMPLE_DIR, RagServe, open_store, rag_env, run_rag


def test_ingest_through_an_embeddings_server_is_searchable_with_the_local_model(
        tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    server = RagServe(tmp_path / "embedding-box", tmp_path / "serve.log").start()
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        got = client.embeddings.create(model=MINILM_NAME, input=["a heron", "a crane"])
        assert got.model == MINILM_NAME and len(got.data[0].embedding) == 384
        bad = httpx.post(f"{server.url}/v1/embeddings", json={"input": []}, timeout=30)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"

        remote = rag_env(tmp_path / "data", RAG_EMBEDDER="openai", RAG_EMBED_MODEL=MINILM_NAME,
                         RAG_EMBED_BASE_URL=f"{server.url}/v1")
        ingested = run_rag("ingest", "-q", str(SAMPLE_DIR), env=remote)
        assert ingested.returncode == 0, ingested.stderr
    finally:
        server.stop()
    assert "POST /v1/embeddings" in server.log.read_text()
    # Built through the server, searched with the local model: the same name, same vectors.
    store = open_store(tmp_path / "data")
    assert store.pending_count() == 0 and store.embedded_count() > 0
    asked = run_rag("ask", "--json", "Who called the Security Council meeting about Aleppo?",
                    env=rag_env(tmp_path / "data"))
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout.splitlines()[-1])
    assert not answer["abstained"] and "Britain" in answer["answer"]
