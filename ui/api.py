"""The HTTP API: JSON under /api, the OpenAI-compatible /v1 (ui.openai_api), docs at /docs.

Handlers are thin: they validate, run the shared service in a thread pool (retrieval and
embedding are CPU-bound) and serialise. Every failure has the one JSON shape of ui.api_base.
"""

from __future__ import annotations

import hmac
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from index.store import StoreUnavailable
from rag.answerers import Turn
from rag.filters import Filters
from rag.llm import LLMUnavailable
from rag.result import Answer
from ui.api_base import (
    COLLECTION_PATTERN,
    ApiError,
    BodyLimit,
    Collection,
    CollectionQuery,
    ErrorBody,
    ErrorResponse,
    chain,
    check_question,
    first_event,
    install_error_handlers,
)
from ui.openai_api import openai_routes
from ui.service import ArticleService, UploadReport, safe_filename

log = logging.getLogger(__name__)

_UPLOAD_PATH = "/api/articles"


# -- request and response models -------------------------------------------------------------

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
    as_of: date | None = Field(None, description="The day the question is asked about "
                               "(YYYY-MM-DD): articles published shortly before it are "
                               "favoured, later ones demoted.")
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


# -- the app ---------------------------------------------------------------------------------


def create_api(service: ArticleService) -> FastAPI:
    """The FastAPI app with every route; the chat is mounted onto it by ui.server."""
    settings = service.settings
    app = FastAPI(title="rag-articles", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Ask questions about your articles; every answer sentence cites "
                  "the passage that supports it. Errors: `{\"error\": {status, code, message, "
                  "details}}`.")
    app.state.service = service
    install_error_handlers(app)
    upload_limit = int(settings.max_file_mb * 1_000_000) * settings.max_upload_files + 1_000_000
    app.add_middleware(BodyLimit, json_bytes=settings.max_request_kb * 1024,
                       upload_bytes=upload_limit, upload_path=_UPLOAD_PATH)
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
    openai_routes(v1, service)
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


def _turns(history: list[HistoryTurn]) -> list[Turn]:
    return [Turn(t.role, t.content) for t in history]


def _query_routes(api: APIRouter, service: ArticleService) -> None:
    @api.post("/query", response_model=Answer)
    async def query(body: QueryRequest) -> Answer:
        """Answer a question; the result contract of the README."""
        question = check_question(service, body.question)
        return await run_in_threadpool(service.ask, question, body.top_k, body.filters,
                                       _turns(body.history), body.collection, body.as_of)

    @api.post("/query/stream", response_class=StreamingResponse, responses={200: {
        "content": {"text/event-stream": {}},
        "description": "`text` events ({\"text\": chunk}), then one `answer` event "
                       "(the result contract) or one `error` event."}})
    async def query_stream(body: QueryRequest) -> Response:
        """Server-Sent Events: the answer's text as produced, then the checked answer once."""
        question = check_question(service, body.question)
        events = service.ask_stream(question, body.top_k, body.filters, _turns(body.history),
                                    body.collection, body.as_of)
        first = await run_in_threadpool(first_event, events)  # store errors still get a status
        return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})


async def _sse(first: str | Answer | None, rest: Iterator[str | Answer]) -> AsyncIterator[str]:
    def event(name: str, data: str) -> str:
        return f"event: {name}\ndata: {data}\n\n"

    try:
        async for item in chain([first] if first is not None else [], rest):
            if isinstance(item, Answer):
                yield event("answer", item.model_dump_json())
            else:
                yield event("text", json.dumps({"text": item}, ensure_ascii=False))
    except Exception as exc:  # headers are sent: the failure can only be an event now
        log.exception("stream failed")
        status = 503 if isinstance(exc, StoreUnavailable | LLMUnavailable) else 500
        body = ErrorBody(status=status, code="stream_failed", message=str(exc))
        yield event("error", ErrorResponse(error=body).model_dump_json())


def _article_routes(api: APIRouter, service: ArticleService) -> None:
    upload_doc: dict[str, Any] = {"requestBody": {"content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            # An upload needs 1..RAG_MAX_UPLOAD_FILES files: say so, so clients can know.
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "minItems": 1, "maxItems": service.settings.max_upload_files},
            "collection": {"type": "string", "pattern": COLLECTION_PATTERN}},
            "required": ["files"]}},
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

