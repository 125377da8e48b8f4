"""The application's errors, and what each means at an edge (an HTTP status, a CLI exit code).

The lower layers raise their own exceptions (the store, the lock, the fetcher, the model);
this module names them for the front ends, which import only ``ui`` modules and the result
contract, and classifies each once: the API renders the classification as its JSON error,
the CLI as one ``rag: error: ...`` line and exit 2, a queued job as its ``error``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from index.embedder import EmbedderError
from index.feeds import FeedError
from index.fetch import FetchError, FetchRefused
from index.lock import LockTimeout
from index.store import (
    CollectionNotFound,
    EmbeddingModelMismatch,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from rag.llm import LLMError, LLMUnavailable
from ui.jobs import QueueFull
from ui.uploads import UploadTooLarge

__all__ = ["DOMAIN_ERRORS", "SOURCE_ERRORS", "ApiError", "CollectionEmpty",
           "CollectionNotFound", "EmbedderError", "FeedError", "FetchError", "InvalidInput",
           "LLMError", "LLMUnavailable", "LockTimeout", "Problem", "QueueFull", "StoreError",
           "StoreFull", "StoreUnavailable", "UploadTooLarge", "classify", "first_problem"]


def first_problem(exc: ValidationError) -> str:
    """The first problem pydantic found, in the words it was raised with."""
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")


class ApiError(Exception):
    """A failure the client can act on, with its HTTP status and code."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[object] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers


class InvalidInput(ApiError, ValueError):
    """A request field with a value that cannot be used (a date not on the calendar, a
    source no article has); the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, "validation_error", f"{field}: {message}",
                         details=[{"loc": field.split("."), "msg": message,
                                   "type": "value_error"}])
        self.field = field


class CollectionEmpty(StoreError):
    """A question to a collection that holds no passages yet: say how to add some."""


# A URL or feed that could not be read: the front ends report it as that source's failure.
SOURCE_ERRORS = (FetchError, FeedError)
DOMAIN_ERRORS = (ApiError, StoreError, LockTimeout, QueueFull, UploadTooLarge, EmbedderError,
                 LLMError, FetchError, FeedError)


@dataclass(frozen=True)
class Problem:
    """What a failure means for a client: HTTP status, stable code, message, headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str] | None = None


def classify(exc: BaseException) -> Problem:
    """The one mapping of domain errors to statuses and codes (unknown ones are internal)."""
    message = str(exc)
    if isinstance(exc, ApiError):
        return Problem(exc.status, exc.code, exc.message, exc.headers)
    for kind, status, code in _TABLE:
        if isinstance(exc, kind):
            headers = _HEADERS.get(code)
            return Problem(status, code, message, dict(headers) if headers else None)
    return Problem(500, "internal_error", "internal error; see the server log")


# First match wins: subclasses before their bases.
_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (StoreUnavailable, 503, "store_unavailable"),
    (StoreFull, 507, "store_full"),
    (CollectionNotFound, 404, "collection_not_found"),
    (CollectionEmpty, 409, "collection_empty"),
    (EmbeddingModelMismatch, 409, "embedding_model_mismatch"),
    (StoreError, 400, "store_error"),
    (LockTimeout, 503, "busy"),
    (QueueFull, 503, "busy"),
    (UploadTooLarge, 413, "too_large"),
    (EmbedderError, 503, "embedder_unavailable"),
    (FetchRefused, 422, "url_refused"),
    (FeedError, 422, "not_a_feed"),
    (FetchError, 502, "fetch_failed"),
    # The model server is another service: down or timing out is 503, a refusal 502.
    (LLMUnavailable, 503, "llm_unavailable"),
    (LLMError, 502, "llm_error"),
)
_HEADERS = {"busy": {"Retry-After": "30"}, "too_large": {"Connection": "close"}}
