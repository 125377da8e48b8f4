"""Chat-model backends: any OpenAI-compatible HTTP API, or a GGUF file run in-process
(llama.cpp, prebuilt in the xllamacpp wheel).

Both speak the same small interface (``ChatModel``) so answering and condensing do not care
where the model runs. Library errors are translated here, once, into ``LLMError`` subclasses
whose messages say what to do; the CLI prints them as one line, the API as a JSON error.
"""

from __future__ import annotations

import logging
import queue
import secrets
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, cast

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

log = logging.getLogger(__name__)

LOCAL_EXTRA_HINT = "install the local-model extra: pip install 'rag-articles[local]'"


class Message(TypedDict):
    """One chat message in the OpenAI wire format."""

    role: str
    content: str


class LLMError(RuntimeError):
    """The language model could not produce an answer; the message says why."""


class LLMUnavailable(LLMError):
    """The model server cannot be reached, or timed out."""


class LLMAuthError(LLMError):
    """The server refused the API key."""


@dataclass(frozen=True)
class Generation:
    """Sampling options shared by every backend."""

    max_tokens: int = 512
    temperature: float = 0.1


class ChatModel(Protocol):
    """A chat model that streams text for a list of messages."""

    @property
    def name(self) -> str: ...

    def describe(self) -> str:
        """Which model, where: for the log and the health endpoint."""
        ...

    def stream(self, messages: Sequence[Message], generation: Generation | None = None
               ) -> Iterator[str]: ...

    def complete(self, messages: Sequence[Message], generation: Generation | None = None
                 ) -> str: ...


class OpenAIChatModel:
    """OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio).

    The openai SDK already retries connection errors, 408/409/429 and 5xx with exponential
    backoff (honouring Retry-After), so retries are its ``max_retries``, not a loop of ours.
    """

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str = "no-key",
                 timeout: float = 60.0, max_retries: int = 2, label: str = "openai-compatible",
                 generation: Generation | None = None) -> None:
        import openai

        self.model = model
        self.label = label
        self.generation = generation or Generation()
        # base_url None means api.openai.com; pass it explicitly so the SDK never falls back
        # to environment variables behind the caller's back.
        self.base_url = base_url or "https://api.openai.com/v1"
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key or "no-key",
                                     timeout=timeout, max_retries=max_retries)
        self.timeout = timeout

    @property
    def name(self) -> str:
        return f"{self.label}:{self.model}"

    def describe(self) -> str:
        return f"{self.name} at {self.base_url} (timeout {self.timeout:g}s)"

    def stream(self, messages: Sequence[Message], generation: Generation | None = None
               ) -> Iterator[str]:
        g = generation or self.generation
        with self._errors():
            chunks = self._client.chat.completions.create(
                model=self.model, messages=_wire(messages),
                max_tokens=g.max_tokens, temperature=g.temperature, stream=True)
            with chunks:  # closes the connection if the caller stops reading early
                for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content

    def complete(self, messages: Sequence[Message], generation: Generation | None = None
                 ) -> str:
        g = generation or self.generation
        with self._errors():
            response = self._client.chat.completions.create(
                model=self.model, messages=_wire(messages),
                max_tokens=g.max_tokens, temperature=g.temperature)
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate openai SDK exceptions into LLMError with an actionable message."""
        import openai

        where = f"{self.label} model {self.model!r} at {self.base_url}"
        try:
            yield
        except openai.APITimeoutError as exc:
            raise LLMUnavailable(f"{where} did not answer within {self.timeout:g}s "
                                 "(raise RAG_LLM_TIMEOUT, or check the server)") from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach {where}: is the server running? "
                                 "(check RAG_LLM_BASE_URL)") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMAuthError(f"{where} refused the API key (HTTP {exc.status_code}): "
                               "check RAG_LLM_API_KEY or OPENAI_API_KEY") from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"{where} answered HTTP {exc.status_code}: "
                           f"{_short(exc.message)}") from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"{where} failed: {_short(str(exc))}") from exc


class LlamaCppChatModel:
    """A GGUF model run in-process by llama.cpp (the prebuilt ``xllamacpp`` wheel): no
    compiler, no server to start, no network.

    llama.cpp's server object always opens a listener; it is a Unix socket in a private
    folder, behind a random key, so nothing else reaches the model. Requests go straight
    to the object (``handle_chat_completions``), never through that socket.
    """

    def __init__(self, model_path: Path, *, context_window: int = 4096, threads: int = 0,
                 generation: Generation | None = None) -> None:
        try:
            import xllamacpp
        except ImportError as exc:
            raise ImportError(f"xllamacpp is needed for RAG_LLM_MODEL_PATH: "
                              f"{LOCAL_EXTRA_HINT}") from exc
        if not model_path.is_file():
            raise LLMError(f"model file not found: {model_path} (check RAG_LLM_MODEL_PATH)")
        self.model_path = model_path
        self.generation = generation or Generation()
        self.context_window = context_window
        self._folder = tempfile.mkdtemp(prefix="rag-llm-")  # mode 0700: ours alone
        weakref.finalize(self, shutil.rmtree, self._folder, True)
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        params.n_ctx = context_window
        if threads:
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
        params.hostnames = [str(Path(self._folder) / "llm.sock")]
        params.api_keys = [secrets.token_urlsafe(32)]
        params.no_host = True
        params.verbosity = -1  # llama.cpp's own log lines stay out of the app's output
        try:
            self._server = xllamacpp.Server(params)
            # One token generated: returns once llama.cpp's loop runs. Dropped before that,
            # the server's destructor waited forever for a loop that started after it.
            self._server.handle_chat_completions(
                {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})
        except Exception as exc:  # not a GGUF file, or one this llama.cpp cannot read
            raise LLMError(f"cannot load {model_path} as a GGUF model ({_short(str(exc))}); "
                           "check RAG_LLM_MODEL_PATH") from exc

    @property
    def name(self) -> str:
        return f"llama-cpp:{self.model_path.name}"

    def describe(self) -> str:
        return f"{self.name} in-process (context {self.context_window} tokens)"

    def stream(self, messages: Sequence[Message], generation: Generation | None = None
               ) -> Iterator[str]:
        """llama.cpp calls back with each chunk while generating; a thread runs the request
        so its chunks can be yielded as they come."""
        g = generation or self.generation
        request = {"messages": [dict(m) for m in messages], "max_tokens": g.max_tokens,
                   "temperature": g.temperature, "stream": True}
        chunks: queue.Queue[Any] = queue.Queue()
        done = object()

        def run() -> None:
            try:
                self._server.handle_chat_completions(request, chunks.put)
            except Exception as exc:  # bad input: handed to the caller below
                chunks.put(exc)
            finally:
                chunks.put(done)

        threading.Thread(target=run, name="rag-llama-cpp", daemon=True).start()
        while (chunk := chunks.get()) is not done:
            if isinstance(chunk, Exception):
                raise LLMError(f"{self.name}: {_short(str(chunk))}") from chunk
            if "error" in chunk:  # e.g. the prompt does not fit the context window
                error = chunk["error"]
                message = error.get("message", error) if isinstance(error, dict) else error
                raise LLMError(f"{self.name}: {_short(str(message))}")
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield str(content)

    def complete(self, messages: Sequence[Message], generation: Generation | None = None
                 ) -> str:
        return "".join(self.stream(messages, generation))


def _wire(messages: Sequence[Message]) -> list[ChatCompletionMessageParam]:
    return cast("list[ChatCompletionMessageParam]", [dict(m) for m in messages])


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
