"""The chat-model backends against real servers: llama.cpp's, and tiny loopback servers
that misbehave the way real ones do (slow, rate-limited)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from rag.llm import (
    Generation,
    LlamaCppChatModel,
    LLMAuthError,
    LLMError,
    LLMUnavailable,
    Message,
    OpenAIChatModel,
)
from tests.llm.conftest import LLMServer, free_port, smollm2_path

pytestmark = pytest.mark.llm

HELLO: list[Message] = [{"role": "user", "content": "Say hello in one short sentence."}]
SHORT = Generation(max_tokens=16, temperature=0.0)


def test_server_backend_answers_without_streaming(llm_server: LLMServer) -> None:
    text = llm_server.chat_model().complete(HELLO, SHORT)
    assert isinstance(text, str) and text.strip()


def test_server_backend_streams_text_in_pieces(llm_server: LLMServer) -> None:
    chunks = list(llm_server.chat_model().stream(HELLO, SHORT))
    assert len(chunks) >= 2
    assert "".join(chunks).strip()


def test_wrong_api_key_is_a_clear_auth_error(llm_server: LLMServer) -> None:
    model = llm_server.chat_model(api_key="wrong-key")
    with pytest.raises(LLMAuthError, match="refused the API key"):
        model.complete(HELLO, SHORT)


def test_unreachable_server_fails_fast_with_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    model = OpenAIChatModel("local-model", base_url=url, timeout=5, max_retries=1)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="cannot reach") as info:
        list(model.stream(HELLO, SHORT))
    assert url in str(info.value)
    assert time.monotonic() - started < 5


class _Scripted(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions from a script of (delay, status) steps."""

    script: ClassVar[list[tuple[float, int]]] = []
    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append(self.path)
        delay, status = self.script[min(len(self.seen), len(self.script)) - 1]
        time.sleep(delay)
        if status == 200:
            body = {"id": "c1", "object": "chat.completion", "created": 0,
                    "model": "local-model",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "Hello there."}}]}
        else:
            body = {"error": {"message": "slow down", "type": "rate_limit", "code": status}}
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("retry-after-ms", "20")
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: that is what the timeout test wants

    def log_message(self, *args: object) -> None:
        pass


def _serve(script: list[tuple[float, int]]) -> Iterator[tuple[str, list[str]]]:
    handler = type("Handler", (_Scripted,), {"script": script, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def slow_server() -> Iterator[tuple[str, list[str]]]:
    yield from _serve([(3.0, 200)])


@pytest.fixture
def rate_limited_server() -> Iterator[tuple[str, list[str]]]:
    yield from _serve([(0.0, 429), (0.0, 503), (0.0, 200)])


def test_slow_server_hits_the_timeout(slow_server: tuple[str, list[str]]) -> None:
    url, _ = slow_server
    model = OpenAIChatModel("local-model", base_url=url, timeout=0.5, max_retries=0)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match=r"did not answer within 0\.5s"):
        model.complete(HELLO, SHORT)
    assert time.monotonic() - started < 2.5


def test_rate_limits_and_server_errors_are_retried(
        rate_limited_server: tuple[str, list[str]]) -> None:
    url, seen = rate_limited_server
    model = OpenAIChatModel("local-model", base_url=url, timeout=5, max_retries=2)
    assert model.complete(HELLO, SHORT) == "Hello there."
    assert seen == ["/v1/chat/completions"] * 3


def test_rate_limit_beyond_the_retries_is_a_clear_error(
        rate_limited_server: tuple[str, list[str]]) -> None:
    url, _ = rate_limited_server
    model = OpenAIChatModel("local-model", base_url=url, timeout=5, max_retries=0)
    with pytest.raises(LLMError, match="HTTP 429"):
        model.complete(HELLO, SHORT)


@pytest.fixture(scope="module")
def local_model() -> LlamaCppChatModel:
    return LlamaCppChatModel(smollm2_path(), context_window=2048, threads=1, generation=SHORT)


def test_in_process_gguf_backend_streams(local_model: LlamaCppChatModel) -> None:
    chunks = list(local_model.stream(HELLO))
    assert len(chunks) >= 2 and "".join(chunks).strip()
    assert local_model.name == "llama-cpp:SmolLM2-135M-Instruct.Q4_1.gguf"


def test_in_process_gguf_backend_completes(local_model: LlamaCppChatModel) -> None:
    assert local_model.complete(HELLO).strip()


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="model file not found"):
        LlamaCppChatModel(tmp_path / "absent.gguf")


def test_a_file_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model", encoding="utf-8")
    with pytest.raises(LLMError, match=r"cannot load .*notes.gguf as a GGUF model"):
        LlamaCppChatModel(bad)


def test_models_dropped_right_after_loading_are_freed() -> None:
    """llama.cpp's server object, dropped as soon as it was built, once waited forever for
    its own loop: the backend now waits for the loop before it returns."""
    for _ in range(3):
        LlamaCppChatModel(smollm2_path(), context_window=512, threads=1)


def test_prompt_longer_than_the_context_is_a_clear_error(
        local_model: LlamaCppChatModel) -> None:
    long: list[Message] = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(LLMError, match="llama-cpp"):
        local_model.complete(long)
