"""The composition root: components built from Settings (embedder, store, retriever,
answerer, assistant). The application service (ui.service) asks for them here; the front
ends never build anything themselves."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from index.embedder import Embedder, MiniLMEmbedder, OpenAIEmbedder
from index.feeds import FeedRegistry
from index.fetch import FetchOptions
from index.ingest import SplitOptions
from index.lexical import LexicalIndex
from index.lock import WriteLock
from index.store import ChromaAccess, PassageStore, corpora, open_client
from rag.answerers import Answerer, ExtractiveAnswerer, ExtractiveOptions
from rag.assistant import Assistant
from rag.citations import CheckThresholds, CitationChecker
from rag.condense import Condenser, LLMCondenser, RuleCondenser
from rag.gate import AnswerGate
from rag.llm import ChatModel, Generation, LlamaCppChatModel, OpenAIChatModel
from rag.llm_answerer import LLMAnswerer
from rag.nlp import Language
from rag.retrieve import FusionOptions, HybridRetriever, Retriever
from ui.settings import Settings

log = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        key = settings.embed_api_key or os.environ.get("OPENAI_API_KEY")
        return OpenAIEmbedder(settings.embed_model, settings.embed_base_url, key)
    return MiniLMEmbedder(threads=settings.embed_threads, runtime=settings.embed_runtime,
                          max_tokens=settings.embed_max_tokens)


def embedder_name(settings: Settings) -> str:
    """The embedder's name without loading it (for opening a store cheaply)."""
    from index.embedder import MINILM_NAME

    if settings.embedder == "openai" and settings.embed_model != MINILM_NAME:
        return f"openai:{settings.embed_model}"
    return MINILM_NAME


def build_store(settings: Settings, create: bool = True) -> PassageStore:
    """The store of ``settings.collection``; without ``create`` a missing one is an error."""
    client = open_client(settings.data_dir, settings.chroma_url, chroma_access(settings))
    where = settings.chroma_url or str(settings.data_dir)
    return PassageStore(client, settings.collection, embedder_name(settings), where=where,
                        create=create, data_dir=local_data_dir(settings))


def local_data_dir(settings: Settings) -> Path | None:
    """The folder Chroma writes into, when it is embedded (a server keeps its own)."""
    return None if settings.chroma_url else settings.data_dir


def collection_names(settings: Settings) -> list[str]:
    """The collections of the store the settings name, without opening (or creating) any."""
    client = open_client(settings.data_dir, settings.chroma_url, chroma_access(settings))
    return corpora(client)


def chroma_access(settings: Settings) -> ChromaAccess:
    """The tenant, database and token of the Chroma server (RAG_CHROMA_*)."""
    token = settings.chroma_token.get_secret_value() if settings.chroma_token else None
    return ChromaAccess(settings.chroma_tenant, settings.chroma_database, token)


def write_lock(settings: Settings, on_wait: Callable[[str], None] | None = None) -> WriteLock:
    """The lock every writer of the data folder (ingest, remove, uploads) holds while writing."""
    return WriteLock(settings.data_dir, settings.lock_timeout, on_wait=on_wait)


EMBED_LOCK = "embed.lock"


def embed_lease(settings: Settings, timeout: float | None = None,
                on_wait: Callable[[str], None] | None = None) -> WriteLock:
    """One process per data folder embeds pending passages at a time: `rag serve`'s
    background embedder tries it without waiting, `rag ingest` waits ``lock_timeout``."""
    return WriteLock(settings.data_dir, settings.lock_timeout if timeout is None else timeout,
                     on_wait=on_wait, name=EMBED_LOCK)


def fetch_options(settings: Settings) -> FetchOptions:
    """Limits of fetching pages and feeds: the file size limit, the fetch time limit, and
    whether private addresses may be fetched."""
    return FetchOptions(timeout=settings.fetch_timeout,
                        max_bytes=int(settings.max_file_mb * 1_000_000),
                        allow_private=settings.fetch_allow_private,
                        refuse=tuple(ipaddress.ip_network(n, strict=False)
                                     for n in settings.fetch_refuse))


def feed_registry(settings: Settings) -> FeedRegistry:
    """The followed feeds of the data folder."""
    return FeedRegistry(settings.data_dir / "feeds.json")


def split_options(settings: Settings) -> SplitOptions:
    return SplitOptions(max_words=settings.passage_words, overlap_words=settings.overlap_words,
                        clean_boilerplate=settings.clean_boilerplate)


def fusion_options(settings: Settings) -> FusionOptions:
    return FusionOptions(k=settings.fusion_k, dense_weight=settings.dense_weight,
                         bm25_weight=settings.bm25_weight, candidates=settings.candidates,
                         dedupe_threshold=settings.dedupe_threshold,
                         article_weight=settings.article_weight,
                         per_article=settings.per_article,
                         recency_weight=settings.recency_weight)


def citation_options(settings: Settings) -> CheckThresholds:
    return CheckThresholds(lexical=settings.citation_lexical,
                           lexical_floor=settings.citation_lexical_floor,
                           semantic=settings.citation_semantic,
                           lexical_semantic=settings.citation_lexical_semantic,
                           window_sentences=settings.citation_window_sentences)


def extractive_options(settings: Settings) -> ExtractiveOptions:
    return ExtractiveOptions(min_score=settings.answer_min_score,
                             meaning_weight=settings.answer_meaning_weight,
                             words_weight=settings.answer_words_weight,
                             focus_weight=settings.answer_focus_weight)


def generation(settings: Settings) -> Generation:
    return Generation(settings.llm_max_tokens, settings.llm_temperature)


def build_retriever(settings: Settings, store: PassageStore, embedder: Embedder) -> Retriever:
    """Hybrid by default; the BM25 index lives beside the Chroma data, per collection."""
    lexical = LexicalIndex(store, settings.data_dir / "bm25" / settings.collection)
    return HybridRetriever(store, embedder, lexical, fusion_options(settings),
                           mode=settings.retriever)


@dataclass
class Components:
    """Everything one collection's questions and writes use, built once."""

    settings: Settings
    store: PassageStore
    embedder: Embedder
    assistant: Assistant
    answerer_description: str = "extractive"


@dataclass
class Shared:
    """What every collection shares: the embedding model and the answering parts."""

    settings: Settings
    embedder: Embedder
    answerer: Answerer
    condenser: Condenser
    checker: CitationChecker
    gate: AnswerGate
    description: str


def build_shared(settings: Settings, embedder: Embedder | None = None,
                 environ: Mapping[str, str] | None = None) -> Shared:
    """The parts shared by all collections; pass ``embedder`` to share one already loaded."""
    embedder = embedder or build_embedder(settings)
    checker = CitationChecker(embedder, citation_options(settings))
    gate = AnswerGate(shared_language())
    answerer, condenser, description = build_answerer(settings, embedder, gate, environ)
    return Shared(settings, embedder, answerer, condenser, checker, gate, description)


def shared_of(components: Components) -> Shared:
    """The shared parts of components already built."""
    a = components.assistant
    return Shared(components.settings, components.embedder, a.answerer, a.condenser,
                  a.checker, a.gate, components.answerer_description)


def build_collection(base: Components | Shared, collection: str,
                     create: bool = False) -> Components:
    """Components on ``collection``, sharing the loaded embedder and model. Without
    ``create`` a missing collection is an error (reads never create one)."""
    shared = shared_of(base) if isinstance(base, Components) else base
    settings = shared.settings.model_copy(update={"collection": collection})
    store = build_store(settings, create=create)
    assistant = Assistant(build_retriever(settings, store, shared.embedder), shared.answerer,
                          shared.checker, shared.gate, settings.top_k, shared.condenser)
    log.info("answerer: %s; retrieval: %s; collection %r", shared.description,
             assistant.retriever.name, collection)
    return Components(settings, store, shared.embedder, assistant, shared.description)


def build(settings: Settings, embedder: Embedder | None = None,
          environ: Mapping[str, str] | None = None, create: bool = True) -> Components:
    """Everything for ``settings.collection``; pass ``embedder`` to share one already loaded
    (the server does). Without ``create`` a missing collection is an error."""
    return build_collection(build_shared(settings, embedder, environ), settings.collection,
                            create)


def llm_backend(settings: Settings, environ: Mapping[str, str]) -> str:
    """The backend 'auto' resolves to: explicit RAG_LLM_* settings win over OPENAI_API_KEY."""
    if settings.llm_backend != "auto":
        return settings.llm_backend
    if settings.llm_model_path:
        return "llama-cpp"
    if settings.llm_base_url:
        return "openai-compatible"
    return "openai" if environ.get("OPENAI_API_KEY") else "extractive"


def build_chat_model(settings: Settings,
                     environ: Mapping[str, str] | None = None) -> ChatModel | None:
    """The chat model the settings ask for, or None for the extractive answerer."""
    env = os.environ if environ is None else environ
    backend = llm_backend(settings, env)
    sampling = generation(settings)
    if backend == "llama-cpp":
        if settings.llm_model_path is None:
            raise ValueError("RAG_LLM_BACKEND=llama-cpp needs RAG_LLM_MODEL_PATH (a .gguf file)")
        return LlamaCppChatModel(settings.llm_model_path, generation=sampling,
                                 context_window=settings.llm_context_window,
                                 threads=settings.llm_threads)
    if backend == "openai-compatible":
        if not settings.llm_base_url:
            raise ValueError("RAG_LLM_BACKEND=openai-compatible needs RAG_LLM_BASE_URL")
        return OpenAIChatModel(settings.llm_model or "local-model",
                               base_url=settings.llm_base_url,
                               api_key=settings.llm_api_key or "no-key",
                               timeout=settings.llm_timeout,
                               max_retries=settings.llm_max_retries, generation=sampling)
    if backend == "openai":
        key = env.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("RAG_LLM_BACKEND=openai needs OPENAI_API_KEY")
        return OpenAIChatModel(settings.llm_model or "gpt-4o-mini",
                               base_url=env.get("OPENAI_BASE_URL"), api_key=key,
                               timeout=settings.llm_timeout, label="openai",
                               max_retries=settings.llm_max_retries, generation=sampling)
    return None


@lru_cache(maxsize=1)
def shared_language() -> Language:
    """spaCy's pipeline, one per process (it loads on first use, then caches analyses)."""
    return Language()


def build_answerer(settings: Settings, embedder: Embedder, gate: AnswerGate,
                   environ: Mapping[str, str] | None = None
                   ) -> tuple[Answerer, Condenser, str]:
    """The answerer, the follow-up condenser and a one-line description of them."""
    model = build_chat_model(settings, environ)
    if model is None:
        extractive = ExtractiveAnswerer(embedder, gate, extractive_options(settings))
        return extractive, RuleCondenser(gate.language), "extractive (offline)"
    rules = RuleCondenser(gate.language)
    condenser: Condenser = LLMCondenser(model, fallback=rules) if settings.llm_condense \
        else rules
    answerer = LLMAnswerer(model)
    return answerer, condenser, answerer.describe()
