"""What the /api and /v1 routes share: the one error shape, the body limit, checks.

Every failure is rendered as::

    {"error": {"status": 422, "code": "validation_error", "message": "...", "details": [...]}}
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.embedder import EmbedderError
from index.lock import LockTimeout
from index.store import EmbeddingModelMismatch, StoreError, StoreUnavailable
from rag.llm import LLMError, LLMUnavailable
from rag.result import Answer
from ui.service import ArticleService

log = logging.getLogger(__name__)

COLLECTION_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,60}[a-zA-Z0-9]$"


# -- the one error shape ---------------------------------------------------------------------


class ApiError(Exception):
    """A failure the client can act on; rendered as the JSON error body."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers


class ErrorBody(BaseModel):
    status: int = Field(description="The HTTP status, repeated for clients that lose it.")
    code: str = Field(description="Stable machine-readable reason, e.g. 'validation_error'.")
    message: str = Field(description="What is wrong, for a person.")
    details: list[Any] = Field(default_factory=list, description="Per-field problems.")


class ErrorResponse(BaseModel):
    error: ErrorBody


def error_response(status: int, code: str, message: str, details: list[Any] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(status=status, code=code, message=message,
                                         details=details or []))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
                 422: "validation_error", 429: "too_many_requests", 503: "unavailable"}


def install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail),
                              headers=dict(exc.headers or {}))

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError | ValidationError)
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                    "type": e.get("type", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"] if x != "body") or "request"
        return error_response(422, "validation_error", f"{where}: {first['msg']}", details)

    async def store_error(_: Request, exc: Exception) -> Response:
        if isinstance(exc, StoreUnavailable):
            return error_response(503, "store_unavailable", str(exc))
        if isinstance(exc, EmbeddingModelMismatch):
            return error_response(409, "embedding_model_mismatch", str(exc))
        return error_response(400, "store_error", str(exc))

    async def lock_timeout(_: Request, exc: Exception) -> Response:
        return error_response(503, "busy", str(exc), headers={"Retry-After": "30"})

    async def embedder_error(_: Request, exc: Exception) -> Response:
        return error_response(503, "embedder_unavailable", str(exc))

    async def llm_error(_: Request, exc: Exception) -> Response:
        # The model server is another service: down or timing out is 503, a refusal 502.
        status = 503 if isinstance(exc, LLMUnavailable) else 502
        return error_response(status, "llm_unavailable" if status == 503 else "llm_error",
                              str(exc))

    async def internal_error(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the server log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(EmbedderError, embedder_error)
    app.add_exception_handler(LLMError, llm_error)
    app.add_exception_handler(LockTimeout, lock_timeout)
    app.add_exception_handler(Exception, internal_error)


# -- request body limit ----------------------------------------------------------------------


class BodyLimit:
    """Refuse /api and /v1 bodies over a limit, by Content-Length and while streaming.

    Starlette has no body limit of its own; without one a client could make us buffer
    gigabytes before validation runs.
    """

    def __init__(self, app: ASGIApp, json_bytes: int, upload_bytes: int,
                 upload_path: str) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes
        self.upload_path = upload_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/api/", "/v1/")):
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if path.rstrip("/") == self.upload_path else self.json_bytes
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        if limit == self.upload_bytes:
            await self.app(scope, _counting(receive, limit), send)
            return
        # JSON bodies are small: read them here, so an oversized one is refused before
        # FastAPI's parser (which would turn any read error into a generic 400).
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await _too_large(limit)(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _counting(receive: Receive, limit: int) -> Receive:
    """A receive that raises once more than ``limit`` body bytes have come in."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise ApiError(413, "too_large", _too_large_text(limit))
        return message

    return counted


def _too_large_text(limit: int) -> str:
    return f"request body is over the {limit / 1e6:.2f} MB limit"


def _too_large(limit: int) -> JSONResponse:
    return error_response(413, "too_large", _too_large_text(limit))


# -- shared by the routes ------------------------------------------------------------------

Collection = Annotated[str | None, Field(
    None, pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION).")]
CollectionQuery = Annotated[str | None, Query(
    pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION).")]


def check_question(service: ArticleService, question: str) -> str:
    limit = service.settings.max_question_chars
    if not question.strip():
        raise ApiError(422, "validation_error", "question: must not be empty")
    if len(question) > limit:
        raise ApiError(422, "validation_error", f"question: {len(question)} characters, over "
                       f"the {limit} character limit")
    return question


def first_event(events: Iterator[str | Answer]) -> str | Answer | None:
    return next(events, None)


async def chain(head: list[str | Answer],
                 rest: Iterator[str | Answer]) -> AsyncIterator[str | Answer]:
    for item in head:
        yield item
    async for item in iterate_in_threadpool(rest):
        yield item
