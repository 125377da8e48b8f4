"""What the /api and /v1 routes share: the one error shape, collection names, checks.

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
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from starlette.concurrency import iterate_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.result import Answer
from ui.errors import DOMAIN_ERRORS, ApiError, classify
from ui.service import COLLECTION_PATTERN, COLLECTION_RULE, ArticleService, valid_collection_name

log = logging.getLogger(__name__)


# -- the one error shape ---------------------------------------------------------------------


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


def error_parts(exc: BaseException) -> tuple[int, str, str, dict[str, str] | None]:
    """(status, code, message, headers) for a domain error, the same for a request and for
    a queued job that failed (ui.errors.classify)."""
    problem = classify(exc)
    return problem.status, problem.code, problem.message, problem.headers


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> Response:
        status, code, message, headers = error_parts(exc)
        details = exc.details if isinstance(exc, ApiError) else None
        return error_response(status, code, message, details, headers=headers)

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

    async def internal_error(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the server log")

    for kind in DOMAIN_ERRORS:
        app.add_exception_handler(kind, domain_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(Exception, internal_error)


# -- shared by the routes ------------------------------------------------------------------

def _collection_name(name: str | None) -> str | None:
    if name is not None and not valid_collection_name(name):
        raise ValueError(f"{name!r} is not a valid collection name: {COLLECTION_RULE}")
    return name


Collection = Annotated[str | None, Field(
    None, pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION)."),
    AfterValidator(_collection_name)]
CollectionQuery = Annotated[str | None, Query(
    pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION)."),
    AfterValidator(_collection_name)]


MAX_TURN_CHARS = 20_000  # one earlier message of a conversation (history)


async def known_query_only(request: Request) -> None:
    """A query parameter the route does not take is an error, not silently ignored (a
    misspelt ``?colection=`` would otherwise answer from the default collection)."""
    route = request.scope.get("route")
    known = _query_names(getattr(route, "dependant", None))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiError(422, "validation_error", f"{unknown[0]}: unknown query parameter"
                       + (f" (this route takes {', '.join(sorted(known))})" if known else ""))


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route and its dependencies declare."""
    if dependant is None:
        return set()
    names = {str(p.alias) for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


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
