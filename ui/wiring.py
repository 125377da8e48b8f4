"""The only place objects are built from Settings: embedder, store, assistant."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from index.embedder import Embedder, MiniLMEmbedder, OpenAIEmbedder
from index.ingest import SplitOptions
from index.lock import WriteLock
from index.store import PassageStore, open_client
from rag.answerers import ExtractiveAnswerer
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.retrieve import DenseRetriever
from ui.settings import Settings

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        key = settings.embed_api_key or os.environ.get("OPENAI_API_KEY")
        return OpenAIEmbedder(settings.embed_model, settings.embed_base_url, key)
    return MiniLMEmbedder(threads=settings.embed_threads)


def embedder_name(settings: Settings) -> str:
    """The embedder's name without loading it (for opening a store cheaply)."""
    if settings.embedder == "openai":
        return f"openai:{settings.embed_model}"
    from index.embedder import MINILM_NAME

    return MINILM_NAME


def build_store(settings: Settings) -> PassageStore:
    client = open_client(settings.data_dir, settings.chroma_url)
    where = settings.chroma_url or str(settings.data_dir)
    return PassageStore(client, settings.collection, embedder_name(settings), where=where)


def write_lock(settings: Settings, on_wait: Callable[[str], None] | None = None) -> WriteLock:
    """The lock every writer of the data folder (ingest, remove, uploads) holds while writing."""
    return WriteLock(settings.data_dir, settings.lock_timeout, on_wait=on_wait)


def split_options(settings: Settings) -> SplitOptions:
    return SplitOptions(max_words=settings.passage_words, overlap_words=settings.overlap_words)


@dataclass
class Components:
    """Everything a command or the server uses, built once."""

    settings: Settings
    store: PassageStore
    embedder: Embedder
    assistant: Assistant


def build(settings: Settings, embedder: Embedder | None = None) -> Components:
    """Build everything; pass ``embedder`` to share one already loaded (the server does)."""
    store = build_store(settings)
    embedder = embedder or build_embedder(settings)
    checker = CitationChecker(embedder)
    answerer = ExtractiveAnswerer(embedder)
    assistant = Assistant(DenseRetriever(store, embedder), answerer, checker, settings.top_k)
    log.info("answerer: %s; retrieval: %s; collection %r", answerer.name,
             assistant.retriever.name, settings.collection)
    return Components(settings, store, embedder, assistant)


def build_collection(base: Components, collection: str) -> Components:
    """The same components on another collection, sharing the already loaded embedder."""
    settings = base.settings.model_copy(update={"collection": collection})
    return build(settings, embedder=base.embedder)
