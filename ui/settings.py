"""One typed settings object: ``RAG_*`` environment variables, optionally a TOML/JSON file.

Created once by the command or server entry point and passed down; nothing deeper reads the
environment. Every field has a description: the README's configuration table lists them.

The settings that tune a component take their defaults from that component's option type
(passages: ``SplitOptions``, fusion: ``FusionOptions``, the citation check:
``CheckThresholds``, the extractive answer: ``ExtractiveOptions``, generation:
``Generation``), so each default is written once, where it is used; ``ui.wiring`` builds the
option types back from the settings.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from index.ingest import SplitOptions
from rag.answerers import ExtractiveOptions
from rag.citations import CheckThresholds
from rag.llm import Generation
from rag.retrieve import FusionOptions

MIN_API_KEY_CHARS = 16


def default(option_type: type[Any], name: str) -> Any:
    """The default of field ``name`` of a dataclass of options: written there, once."""
    return option_type.__dataclass_fields__[name].default


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    data_dir: Path = Field(Path(".rag"), description="Folder for the embedded Chroma store and "
                           "derived indexes.")
    chroma_url: str | None = Field(None, description="Use a Chroma server at this URL "
                                   "(e.g. http://127.0.0.1:8000) instead of the data folder.")
    chroma_tenant: str = Field("default_tenant", description="Tenant of the Chroma server "
                               "(Chroma Cloud: yours; a local `chroma run`: default_tenant).")
    chroma_database: str = Field("default_database", description="Database inside that "
                                 "tenant; it must exist.")
    chroma_token: SecretStr | None = Field(None, description="Token for the Chroma server, "
                                           "sent as the x-chroma-token header (a Chroma "
                                           "Cloud API key); never logged.")
    collection: str = Field("articles", description="Collection (corpus) name inside the store.")
    top_k: int = Field(5, ge=1, le=50, description="Passages retrieved per question.")
    max_file_mb: float = Field(25.0, gt=0, description="Files larger than this are refused at "
                               "ingest.")
    passage_words: int = Field(
        default(SplitOptions, "max_words"), ge=30, le=1000, description="Maximum words per "
        "passage.")
    overlap_words: int = Field(
        default(SplitOptions, "overlap_words"), ge=0, le=200, description="Words of trailing "
        "sentences repeated at the start of the next passage.")
    embedder: Literal["minilm", "openai"] = Field("minilm", description="'minilm': "
                                                  "all-MiniLM-L6-v2 int8 ONNX, offline; "
                                                  "'openai': an OpenAI-compatible embeddings API.")
    embed_model: str = Field("text-embedding-3-small", description="Model name for the "
                             "'openai' embedder.")
    embed_base_url: str | None = Field(None, description="Base URL for the 'openai' embedder "
                                       "(default: OpenAI).")
    embed_api_key: str | None = Field(None, description="API key for the 'openai' embedder "
                                      "(falls back to OPENAI_API_KEY).")
    embed_threads: int = Field(0, ge=0, description="Threads of the embedding runtime "
                               "(0: all cores).")
    embed_runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto", description="Where the MiniLM model runs: 'auto' (OpenVINO when installed and "
        "its vectors match onnxruntime's, else onnxruntime), 'onnxruntime' or 'openvino' "
        "(fails if it cannot be used). Same vectors either way, so the collection's model "
        "name is the same.")
    embed_max_tokens: int = Field(256, ge=16, le=256, description="Tokens of a passage the "
                                  "MiniLM model reads (its limit is 256); fewer is faster. "
                                  "Questions are always shorter.")
    log_level: str = Field("INFO", description="Logging level (DEBUG, INFO, WARNING).")
    api_key: SecretStr | None = Field(None, description="Bearer token required by the HTTP API "
                                      "(/api, /v1, /docs) and as the chat page's password; "
                                      f"unset: open; set: at least {MIN_API_KEY_CHARS} "
                                      "characters.")
    max_question_chars: int = Field(2000, ge=10, le=100_000, description="Longest question the "
                                    "API and chat accept, in characters.")
    max_request_kb: int = Field(1024, ge=1, description="Largest request body any route "
                                "accepts (the API's JSON, the chat's own requests), in KB; "
                                "file uploads are limited by RAG_MAX_UPLOAD_MB instead.")
    max_upload_files: int = Field(20, ge=1, le=1000, description="Most files one upload "
                                  "request may carry.")
    max_upload_mb: float = Field(100.0, gt=0, description="Largest upload request (all its "
                                 "files together), in MB; refused from its Content-Length "
                                 "before anything is read.")
    write_queue: int = Field(16, ge=1, le=10_000, description="Most uploads and removals "
                             "waiting to be written; when full, new ones get 503 with "
                             "Retry-After.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Other web origins (e.g. https://app.example.org) "
        "whose pages may send state-changing requests; the server's own origin is always "
        "allowed. Comma-separated or a JSON list.")
    embeddings_api: bool = Field(True, description="Serve POST /v1/embeddings, which runs "
                                 "the embedding model for any client the server admits "
                                 "(with RAG_API_KEY set: only those holding it); off: 404.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host names (as in the Host header, without the "
        "port) the server answers besides localhost, 127.0.0.1, ::1 and the address it is "
        "bound to: a request for any other name is refused (400), so a web page cannot reach "
        "the server through a name it rebinds to 127.0.0.1 (DNS rebinding). Behind a proxy or "
        "on a LAN, list the names clients use; '*' allows any. Comma-separated or a JSON list.")
    auth_failures_per_minute: int = Field(20, ge=1, description="Failed logins or wrong "
                                          "bearer tokens one client address may make in a "
                                          "minute before it gets 429 for the rest of it.")
    llm_backend: Literal["auto", "extractive", "openai", "openai-compatible", "llama-cpp"] = (
        Field("auto", description="Who writes answers. 'auto': llama-cpp if llm_model_path is "
              "set, else openai-compatible if llm_base_url is set, else openai if "
              "OPENAI_API_KEY is set, else extractive."))
    llm_base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible chat "
                                     "API (vLLM, Ollama, llama.cpp server, LM Studio), e.g. "
                                     "http://127.0.0.1:8080/v1.")
    llm_model: str | None = Field(None, description="Model name sent to the chat API "
                                  "(default 'gpt-4o-mini' for OpenAI, 'local-model' otherwise).")
    llm_api_key: str | None = Field(None, description="API key for llm_base_url (the OpenAI key "
                                    "is never sent to other servers).")
    llm_model_path: Path | None = Field(None, description="A GGUF model file run in-process by "
                                        "llama.cpp (xllamacpp, extra 'local').")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds to wait for the chat API before "
                               "giving up on a request.")
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries, with backoff, on "
                                 "connection errors, 429 and 5xx answers.")
    llm_max_tokens: int = Field(
        default(Generation, "max_tokens"), ge=16, le=8192, description="Most tokens an answer "
        "may have.")
    llm_temperature: float = Field(
        default(Generation, "temperature"), ge=0, le=2, description="Sampling temperature of "
        "answers.")
    llm_context_window: int = Field(4096, ge=512, description="Context size (tokens) of the "
                                    "in-process GGUF model.")
    llm_threads: int = Field(0, ge=0, description="CPU threads of the in-process GGUF model "
                             "(0: llama.cpp's default).")
    llm_condense: bool = Field(True, description="Let the language model rewrite follow-up "
                               "questions (else a simple rule does).")
    retriever: Literal["hybrid", "dense", "bm25"] = Field(
        "hybrid", description="'hybrid': BM25 and embeddings fused by reciprocal rank fusion; "
        "'dense': embeddings only; 'bm25': BM25 only.")
    fusion_k: int = Field(
        default(FusionOptions, "k"), ge=1, description="Reciprocal rank fusion constant k: "
        "larger flattens the difference between ranks.")
    dense_weight: float = Field(
        default(FusionOptions, "dense_weight"), ge=0, description="Weight of the dense ranking "
        "in fusion.")
    bm25_weight: float = Field(
        default(FusionOptions, "bm25_weight"), ge=0, description="Weight of the BM25 ranking in "
        "fusion.")
    candidates: int = Field(
        default(FusionOptions, "candidates"), ge=1, le=1000, description="Passages each ranking "
        "contributes to fusion before dedupe and top-k.")
    dedupe_threshold: float = Field(
        default(FusionOptions, "dedupe_threshold"), ge=0, le=1.01, description="Word-shingle "
        "overlap above which two passages count as the same story (>1 turns dedupe off).")
    article_weight: float = Field(
        default(FusionOptions, "article_weight"), ge=0, description="Weight in fusion of a BM25 "
        "ranking of whole articles (0: off).")
    per_article: int = Field(
        default(FusionOptions, "per_article"), ge=0, description="At most this many passages of "
        "one article among the retrieved passages (0: no limit).")
    recency_weight: float = Field(
        default(FusionOptions, "recency_weight"), ge=0, description="Weight in fusion of a "
        "ranking by closeness of publication to the question's as-of date, used only when a "
        "question has one (0: off).")
    answer_min_score: float = Field(
        default(ExtractiveOptions, "min_score"), ge=-1, le=2, description="The extractive "
        "answerer abstains when its best sentence scores below this (meaning and words, see "
        "docs/answers.md): higher abstains more and answers wrongly less.")
    answer_meaning_weight: float = Field(
        default(ExtractiveOptions, "meaning_weight"), ge=0, description="Weight of a sentence's "
        "embedding similarity to the question in the extractive answerer's score.")
    answer_words_weight: float = Field(
        default(ExtractiveOptions, "words_weight"), ge=0, description="Weight of the share of "
        "the question's words a sentence has (IDF-weighted).")
    answer_focus_weight: float = Field(
        default(ExtractiveOptions, "focus_weight"), ge=0, description="Weight of the share of "
        "the question's words about what happened (not its names or numbers) a sentence has.")
    citation_lexical: float = Field(
        default(CheckThresholds, "lexical"), ge=0, le=1, description="The citation check: "
        "share of a cited sentence's words its passage must hold to count as saying it, given "
        "meaning similarity RAG_CITATION_LEXICAL_SEMANTIC.")
    citation_lexical_semantic: float = Field(
        default(CheckThresholds, "lexical_semantic"), ge=-1, le=1, description="The "
        "citation check: meaning similarity a sentence with enough matching words needs.")
    citation_lexical_floor: float = Field(
        default(CheckThresholds, "lexical_floor"), ge=0, le=1, description="The citation "
        "check: below this share of matching words a sentence is never supported.")
    citation_semantic: float = Field(
        default(CheckThresholds, "semantic"), ge=-1, le=1, description="The citation check: "
        "meaning similarity a paraphrase (words between the floor and "
        "RAG_CITATION_LEXICAL) needs.")
    citation_window_sentences: int = Field(
        default(CheckThresholds, "window_sentences"), ge=1, le=20, description="The "
        "citation check: a sentence's names, numbers and quotes must stand within this many "
        "consecutive passage sentences.")
    clean_boilerplate: bool = Field(
        default(SplitOptions, "clean_boilerplate"), description="Drop web boilerplate lines "
        "(newsletter pitches, ad and share text) at ingest.")
    fetch_timeout: float = Field(30.0, gt=0, le=600, description="Seconds one URL (a page, "
                                 "PDF or feed, redirects included) may take to fetch before "
                                 "it fails.")
    fetch_allow_private: bool = Field(False, description="Let `rag ingest URL`, the API and "
                                      "feeds fetch from loopback, private, link-local and "
                                      "other non-public addresses (off: refused, so the "
                                      "server cannot be made to read its own network).")
    fetch_refuse: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Networks never fetched from, even with "
        "RAG_FETCH_ALLOW_PRIVATE (CIDR, comma-separated, e.g. 10.0.0.0/8,fd00::/8): a "
        "deployment's own deny list.")
    feed_interval_minutes: float = Field(0.0, ge=0, description="`rag serve` refreshes the "
                                         "followed feeds this often (0: never; refresh with "
                                         "`rag feeds refresh`).")
    lock_timeout: float = Field(600.0, ge=0, description="Seconds a writer (ingest, remove, "
                                "upload) waits for another one using the same data folder "
                                "before giving up; 0 fails at once.")


    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        """An empty or short key would leave the server open or guessable: refuse it. Spaces
        around it (a pasted line) are dropped; a character a client cannot send in a header
        (non-ASCII, a control character) would make it impossible to match: refuse it."""
        if key is None:
            return None
        key = SecretStr(key.get_secret_value().strip())
        if any(not (" " <= c <= "~") for c in key.get_secret_value()):
            raise ValueError("must be printable ASCII (clients send it in an HTTP header, "
                             "which cannot carry other characters); make one with: python "
                             "-c \"import secrets; print(secrets.token_urlsafe(24))\"")
        if len(key.get_secret_value()) < MIN_API_KEY_CHARS:
            raise ValueError(
                f"must be at least {MIN_API_KEY_CHARS} characters (it has "
                f"{len(key.get_secret_value())}); make one with: python -c \"import secrets; "
                "print(secrets.token_urlsafe(24))\", or unset it to run without a key")
        return key

    @field_validator("fetch_refuse", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """A comma-separated list of networks; each must parse (a typo is an error)."""
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        items = [str(v).strip() for v in items or [] if str(v).strip()]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not a network (e.g. 10.0.0.0/8)") from None
        return items

    @field_validator("allowed_origins", "allowed_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
            return [str(v).strip().rstrip("/") for v in items if str(v).strip()]
        return value


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a TOML/JSON file (if given), then ``RAG_*`` variables, then overrides.

    The environment wins over the file so a deployment can adjust one value without editing it.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        text = config_file.read_text(encoding="utf-8")
        values = json.loads(text) if config_file.suffix == ".json" else tomllib.loads(text)
        env_set = Settings().model_fields_set
        values = {k: v for k, v in values.items() if k not in env_set}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError("; ".join(
            f"RAG_{'_'.join(str(p) for p in e['loc']).upper()}: "
            f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors())) from None


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names it (RAG_...)."""
