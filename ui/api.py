"""The HTTP API: JSON under /api, an OpenAI-compatible endpoint under /v1, docs at /docs.

Handlers are thin: they validate, run the shared service in a thread pool (retrieval and
embedding are CPU-bound) and serialise. Every failure has one JSON shape::

    {"error": {"status": 422, "code": "validation_error", "message": "...", "details": [...]}}
"""

from __future__ import annotations

import hmac
import json
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from index.embedder import EmbedderError
from index.store import EmbeddingModelMismatch, StoreError, StoreUnavailable
from rag.answerers import Turn
from rag.filters import Filters
from rag.result import Answer
from ui.service import ArticleService, UploadReport, safe_filename

log = logging.getLogger(__name__)

COLLECTION_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,60}[a-zA-Z0-9]$"
MODEL_ID = "rag-articles"
_UPLOAD_PATH = "/api/articles"


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


def _install_error_handlers(app: FastAPI) -> None:
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

    async def embedder_error(_: Request, exc: Exception) -> Response:
        return error_response(503, "embedder_unavailable", str(exc))

    async def internal_error(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the server log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ValidationError, validation_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(EmbedderError, embedder_error)
    app.add_exception_handler(Exception, internal_error)


# -- request body limit ----------------------------------------------------------------------


class BodyLimit:
    """Refuse /api and /v1 bodies over a limit, by Content-Length and while streaming.

    Starlette has no body limit of its own; without one a client could make us buffer
    gigabytes before validation runs.
    """

    def __init__(self, app: ASGIApp, json_bytes: int, upload_bytes: int) -> None:
        self.app = app
        self.json_bytes = json_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/api/", "/v1/")):
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if path.rstrip("/") == _UPLOAD_PATH else self.json_bytes
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


# -- request and response models -------------------------------------------------------------

Collection = Annotated[str | None, Field(
    None, pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION).")]
CollectionQuery = Annotated[str | None, Query(
    pattern=COLLECTION_PATTERN,
    description="Collection (corpus) to use; default: the server's (RAG_COLLECTION).")]


class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, description="The question; at most RAG_MAX_QUESTION_CHARS "
                          "characters.")
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve "
                              "(default RAG_TOP_K).")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=50,
                                       description="Earlier turns of the conversation, oldest "
                                       "first.")
    filters: Filters | None = None
    collection: Collection = None


class ArticleOut(BaseModel):
    id: str
    title: str
    source: str
    url: str
    published: str
    passages: int


class ArticleList(BaseModel):
    collection: str
    articles: list[ArticleOut]


class FileOutcomeOut(BaseModel):
    name: str
    status: Literal["ok", "partial", "failed"]
    articles: int = Field(description="Articles read from the file.")
    errors: list[str]


class UploadOut(BaseModel):
    collection: str
    files: list[FileOutcomeOut]
    added: int
    unchanged: int
    replaced: int
    failed: int
    passages: int = Field(description="Passages embedded and written.")


class RecordsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(min_length=1, max_length=10_000, description=(
        "Articles as records: 'text' (or 'body') required; optional 'title', 'url', "
        "'source', 'published', 'authors', 'id'."))
    collection: Collection = None


class StoreHealth(BaseModel):
    reachable: bool
    passages: int
    articles: int


class Health(BaseModel):
    status: str
    collection: str | None = None
    store: StoreHealth | None = None
    embedder: str | None = None
    answerer: str | None = None
    retrieval: str | None = None


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(p.get("text", "")) for p in self.content
                            if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat request; sampling options are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50)
    filters: Filters | None = None
    collection: Collection = None


# -- the app ---------------------------------------------------------------------------------


def create_api(service: ArticleService) -> FastAPI:
    """The FastAPI app with every route; the chat is mounted onto it by ui.server."""
    settings = service.settings
    app = FastAPI(title="rag-articles", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Ask questions about your articles; every answer sentence cites "
                  "the passage that supports it. Errors: `{\"error\": {status, code, message, "
                  "details}}`.")
    app.state.service = service
    _install_error_handlers(app)
    upload_limit = int(settings.max_file_mb * 1_000_000) * settings.max_upload_files + 1_000_000
    app.add_middleware(BodyLimit, json_bytes=settings.max_request_kb * 1024,
                       upload_bytes=upload_limit)
    guard = Depends(_bearer_guard(service))
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 422, 503)}
    api = APIRouter(prefix="/api", dependencies=[guard], responses=errors)
    _query_routes(api, service)
    _article_routes(api, service)
    app.get("/api/health", response_model=Health, response_model_exclude_none=True,
            tags=["api"], responses=errors)(_health_route(service))
    app.include_router(api, tags=["api"])
    v1 = APIRouter(prefix="/v1", dependencies=[guard], responses=errors)
    _openai_routes(v1, service)
    app.include_router(v1, tags=["openai"])
    _docs_routes(app)
    _not_found_routes(app, guard)
    return app


def _bearer_guard(service: ArticleService) -> Any:
    key = service.settings.api_key
    bearer = HTTPBearer(auto_error=False, description="RAG_API_KEY, when the server has one.")

    async def require_key(
            credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if key is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token "
                           "(send 'Authorization: Bearer <RAG_API_KEY>')",
                           headers={"WWW-Authenticate": "Bearer"})

    return require_key


def authorized(service: ArticleService, request: Request) -> bool:
    key = service.settings.api_key
    if key is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), key.get_secret_value().encode())


def _check_question(service: ArticleService, question: str) -> str:
    limit = service.settings.max_question_chars
    if not question.strip():
        raise ApiError(422, "validation_error", "question: must not be empty")
    if len(question) > limit:
        raise ApiError(422, "validation_error", f"question: {len(question)} characters, over "
                       f"the {limit} character limit")
    return question


def _turns(history: list[HistoryTurn]) -> list[Turn]:
    return [Turn(t.role, t.content) for t in history]


def _query_routes(api: APIRouter, service: ArticleService) -> None:
    @api.post("/query", response_model=Answer)
    async def query(body: QueryRequest) -> Answer:
        """Answer a question; the result contract of the README."""
        question = _check_question(service, body.question)
        return await run_in_threadpool(service.ask, question, body.top_k, body.filters,
                                       _turns(body.history), body.collection)

    @api.post("/query/stream", response_class=StreamingResponse, responses={200: {
        "content": {"text/event-stream": {}},
        "description": "`text` events ({\"text\": chunk}), then one `answer` event "
                       "(the result contract) or one `error` event."}})
    async def query_stream(body: QueryRequest) -> Response:
        """Server-Sent Events: the answer's text as produced, then the checked answer once."""
        question = _check_question(service, body.question)
        events = service.ask_stream(question, body.top_k, body.filters, _turns(body.history),
                                    body.collection)
        first = await run_in_threadpool(_first, events)  # store errors still get a status
        return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def _first(events: Iterator[str | Answer]) -> str | Answer | None:
    return next(events, None)


async def _sse(first: str | Answer | None, rest: Iterator[str | Answer]) -> AsyncIterator[str]:
    def event(name: str, data: str) -> str:
        return f"event: {name}\ndata: {data}\n\n"

    async def all_events() -> AsyncIterator[str | Answer]:
        if first is not None:
            yield first
        async for item in iterate_in_threadpool(rest):
            yield item

    try:
        async for item in all_events():
            if isinstance(item, Answer):
                yield event("answer", item.model_dump_json())
            else:
                yield event("text", json.dumps({"text": item}, ensure_ascii=False))
    except Exception as exc:  # headers are sent: the failure can only be an event now
        log.exception("stream failed")
        status = 503 if isinstance(exc, StoreUnavailable) else 500
        body = ErrorBody(status=status, code="stream_failed", message=str(exc))
        yield event("error", ErrorResponse(error=body).model_dump_json())


def _article_routes(api: APIRouter, service: ArticleService) -> None:
    upload_doc: dict[str, Any] = {"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "collection": {"type": "string"}}, "required": ["files"]}},
        "application/json": {"schema": RecordsRequest.model_json_schema()},
    }, "required": True}}

    @api.post("/articles", response_model=UploadOut, openapi_extra=upload_doc)
    async def add_articles(request: Request) -> UploadOut:
        """Ingest uploaded files (multipart field `files`) or JSON records; per-file outcome."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return await _upload(service, request)
        if kind == "application/json":
            body = RecordsRequest.model_validate_json(await request.body())
            report = await run_in_threadpool(service.ingest_records, body.records,
                                             body.collection)
            return _upload_out(service, body.collection, report)
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with 'files' "
                       "or application/json with 'records'")

    @api.get("/articles", response_model=ArticleList)
    async def list_articles(collection: CollectionQuery = None) -> ArticleList:
        """Stored articles with their passage counts."""
        found = await run_in_threadpool(service.articles, collection)
        return ArticleList(collection=collection or service.default_collection,
                           articles=[ArticleOut(**a.as_dict()) for a in found])

    @api.delete("/articles/{article_id}")
    async def remove_article(article_id: str,
                             collection: CollectionQuery = None) -> dict[str, Any]:
        """Delete an article and its passages."""
        if not await run_in_threadpool(service.remove, article_id, collection):
            raise ApiError(404, "not_found", f"no article with id {article_id!r} "
                           "(see GET /api/articles)")
        return {"removed": article_id}


async def _upload(service: ArticleService, request: Request) -> UploadOut:
    settings = service.settings
    max_bytes = int(settings.max_file_mb * 1_000_000)
    form = await request.form(max_files=settings.max_upload_files, max_fields=10)
    try:
        collection = form.get("collection")
        if collection is not None and not isinstance(collection, str):
            raise ApiError(422, "validation_error", "collection: must be a text field")
        collection = _valid_collection(collection or None)
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            raise ApiError(422, "validation_error", "files: no files in the multipart field "
                           "'files'")
        with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
            saved: list[tuple[str, Path]] = []
            for i, upload in enumerate(uploads):
                name = safe_filename(upload.filename or "upload")
                path = Path(tmp) / str(i) / name
                path.parent.mkdir()
                await _save(upload, path, max_bytes)
                saved.append((name, path))
            report = await run_in_threadpool(service.ingest_files, saved, collection)
    finally:
        await form.close()
    return _upload_out(service, collection, report)


async def _save(upload: UploadFile, path: Path, max_bytes: int) -> None:
    size = 0
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, "too_large", f"{path.name}: over the "
                               f"{max_bytes / 1e6:.1f} MB per-file limit (RAG_MAX_FILE_MB)")
            out.write(chunk)


def _valid_collection(value: str | None) -> str | None:
    class _Check(BaseModel):
        collection: Collection = None

    return _Check(collection=value).collection


def _upload_out(service: ArticleService, collection: str | None,
                report: UploadReport) -> UploadOut:
    return UploadOut(collection=collection or service.default_collection, **report.as_dict())


def _health_route(service: ArticleService) -> Any:
    async def health(request: Request,
                     collection: CollectionQuery = None) -> Any:
        """Store reachable, passage count, embedder and answerer; without the token (when one
        is set) only the status."""
        try:
            found = await run_in_threadpool(service.health, collection)
        except StoreUnavailable as exc:
            message = str(exc) if authorized(service, request) else "the store is unavailable"
            raise ApiError(503, "store_unavailable", message) from exc
        return found if authorized(service, request) else {"status": found["status"]}

    return health


# -- OpenAI-compatible -----------------------------------------------------------------------


def _openai_routes(v1: APIRouter, service: ArticleService) -> None:
    @v1.get("/models")
    async def models() -> dict[str, Any]:
        """The one model: the articles, answered with citations."""
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                            "owned_by": "rag-articles"}]}

    @v1.post("/chat/completions")
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        """The last user message is the question, earlier ones the history. Citations ride
        in the extra field `citations` (and the full result in `result`), in the response or
        in the final stream chunk."""
        question, history = _conversation(service, body.messages)
        events = service.ask_stream(question, body.top_k, body.filters, history,
                                    body.collection)
        reply_id = f"chatcmpl-{uuid.uuid4().hex}"
        if not body.stream:
            answer = await run_in_threadpool(_final, events)
            return JSONResponse(_completion(reply_id, body.model, answer))
        first = await run_in_threadpool(_first, events)
        return StreamingResponse(_openai_chunks(reply_id, body.model, first, events),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


def _conversation(service: ArticleService,
                  messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    if messages[-1].role != "user":
        raise ApiError(422, "validation_error", "messages: the last message must be the "
                       "user's question")
    question = _check_question(service, messages[-1].text())
    history = [Turn(m.role, m.text()) for m in messages[:-1]
               if m.role in ("user", "assistant") and m.text().strip()]
    return question, history


def _final(events: Iterator[str | Answer]) -> Answer:
    answer = None
    for item in events:
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise RuntimeError("the assistant produced no answer")
    return answer


def _citations(answer: Answer) -> list[dict[str, Any]]:
    return [c.model_dump() for c in answer.citations]


def _completion(reply_id: str, model: str, answer: Answer) -> dict[str, Any]:
    return {"id": reply_id, "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer.answer}}],
            "citations": _citations(answer), "result": answer.model_dump()}


async def _openai_chunks(reply_id: str, model: str, first: str | Answer | None,
                         rest: Iterator[str | Answer]) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {"id": reply_id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta,
                                             "finish_reason": finish}], **extra}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    items: list[str | Answer] = [first] if first is not None else []
    try:
        async for item in _chain(items, rest):
            if isinstance(item, Answer):
                # A streamed sentence the check removed cannot be unsent: the final chunk
                # carries the checked text in result.answer.
                yield chunk({}, "stop", citations=_citations(item), result=item.model_dump())
            elif item:
                yield chunk({"content": item})
    except Exception as exc:
        log.exception("stream failed")
        body = ErrorBody(status=500, code="stream_failed", message=str(exc))
        yield f"data: {ErrorResponse(error=body).model_dump_json()}\n\n"
    yield "data: [DONE]\n\n"


async def _chain(head: list[str | Answer],
                 rest: Iterator[str | Answer]) -> AsyncIterator[str | Answer]:
    for item in head:
        yield item
    async for item in iterate_in_threadpool(rest):
        yield item


# -- docs and unknown routes -----------------------------------------------------------------


def _docs_routes(app: FastAPI) -> None:
    """Swagger UI served from the installed swagger-ui-bundle: FastAPI's default loads it
    from a CDN, and the server must work offline."""
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rag-articles API",
                                   swagger_js_url="/docs/static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/static/swagger-ui.css",
                                   swagger_favicon_url="/docs/static/favicon-32x32.png")


def _not_found_routes(app: FastAPI, guard: Any) -> None:
    """Unknown /api and /v1 paths answer in the error shape (the chat owns every other path)."""

    async def not_found(request: Request) -> Response:
        raise ApiError(404, "not_found", f"no route {request.method} {request.url.path}")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in ("/api", "/v1"):
        app.add_api_route(prefix + "/{rest:path}", not_found, methods=methods,
                          include_in_schema=False, dependencies=[guard])

