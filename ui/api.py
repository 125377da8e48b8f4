"""The HTTP API: JSON under /api, the OpenAI-compatible /v1 (ui.openai_api), docs at /docs.

Routes are module-level functions: each takes the service from the app (``ServiceDep``),
validates, calls it (in a thread pool: retrieval and embedding are CPU-bound) and
serialises. Writes (uploads, removals) are queued jobs (ui.jobs): the route answers 202
with the job, or waits for it without holding a thread when asked to. Every failure has
the one JSON shape of ui.api_base.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from rag.result import Answer
from ui.api_base import (
    MAX_TURN_CHARS,
    Collection,
    CollectionQuery,
    ErrorBody,
    ErrorResponse,
    chain,
    check_question,
    error_parts,
    first_event,
    install_error_handlers,
    known_query_only,
)
from ui.errors import ApiError, LLMUnavailable, QueueFull, StoreUnavailable
from ui.jobs import Job
from ui.service import COLLECTION_PATTERN, ArticleService, Filters, Turn
from ui.uploads import read_multipart, safe_filename, upload_folder

log = logging.getLogger(__name__)


def get_service(request: Request) -> ArticleService:
    service: ArticleService = request.app.state.service
    return service


ServiceDep = Annotated[ArticleService, Depends(get_service)]
_bearer = HTTPBearer(auto_error=False, description="RAG_API_KEY, when the server has one.")


async def require_key(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """With RAG_API_KEY set, every /api and /v1 route needs it as a bearer token."""
    if not key_matches(get_service(request), credentials.credentials if credentials else None):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token "
                       "(send 'Authorization: Bearer <RAG_API_KEY>')",
                       headers={"WWW-Authenticate": "Bearer"})


def key_matches(service: ArticleService, given: str | None) -> bool:
    """True when the server has no key, or ``given`` is it (compared in constant time)."""
    key = service.settings.api_key
    if key is None:
        return True
    return given is not None and hmac.compare_digest(given.strip().encode(),
                                                     key.get_secret_value().encode())


def authorized(service: ArticleService, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return key_matches(service, token if scheme.lower() == "bearer" else None)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse}
    for code in (400, 401, 403, 404, 409, 413, 422, 429, 503, 507)}
api = APIRouter(prefix="/api", tags=["api"], responses=ERRORS,
                dependencies=[Depends(require_key), Depends(known_query_only)])
public = APIRouter(tags=["api"], responses=ERRORS, dependencies=[Depends(known_query_only)])


# -- request and response models -------------------------------------------------------------

class HistoryTurn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_TURN_CHARS)


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


class CollectionList(BaseModel):
    default: str = Field(description="The collection used when a request names none.")
    collections: list[str]


class FileOutcomeOut(BaseModel):
    name: str
    status: Literal["ok", "partial", "failed"]
    articles: int = Field(description="Articles read from the file.")
    errors: list[str]


class FeedOut(BaseModel):
    """A followed feed and how its last refresh went."""

    url: str
    collection: str
    title: str
    added_at: float
    last_checked: float | None = None
    status: Literal["new", "ok", "partial", "failed"] = Field(
        description="'partial': some new entries failed; 'failed': the feed itself did.")
    error: str = Field(description="What went wrong last time ('' when nothing did).")
    articles: int = Field(description="Entries ingested so far.")
    entries_seen: int


class UploadOut(BaseModel):
    collection: str
    files: list[FileOutcomeOut] = Field(description="One per file, URL or feed entry.")
    added: int
    unchanged: int
    replaced: int
    failed: int
    passages: int = Field(description="Passages embedded and written.")
    feeds: list[FeedOut] | None = Field(None, description="Feed jobs: each feed afterwards.")


class RemoveOut(BaseModel):
    collection: str
    id: str
    removed: bool = Field(description="False when no article had that id.")


class Progress(BaseModel):
    done: int = Field(description="Passages embedded so far.")
    total: int = Field(description="Passages to embed (0 until the files are read).")


class JobOut(BaseModel):
    """A queued write: an upload ('ingest') or a removal."""

    id: str
    kind: Literal["ingest", "remove"]
    status: Literal["queued", "running", "done", "failed"]
    collection: str
    url: str = Field(description="Where to ask for its status (GET).")
    note: str = Field("", description="What it is waiting for, e.g. another writer.")
    progress: Progress
    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: UploadOut | RemoveOut | None = Field(None, description="Once done.")
    error: ErrorBody | None = Field(None, description="Once failed.")


class RecordsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(min_length=1, max_length=10_000, description=(
        "Articles as records: 'text' (or 'body') required; optional 'title', 'url', "
        "'source', 'published', 'authors', 'id'."))
    collection: Collection = None


class StoreHealth(BaseModel):
    reachable: bool
    writable: bool | None = None
    problem: str | None = Field(None, description="Why the store cannot be written.")
    passages: int | None = Field(None, description="Stored passages, embedded or not.")
    articles: int | None = None
    embedded: int | None = Field(None, description="Passages with their vector.")
    waiting: int | None = Field(None, description="Passages waiting for their vector (found "
                                "by their words until then; embedded in the background).")


class Health(BaseModel):
    status: str = Field(description="'ok'; 'degraded' when the store cannot be written.")
    collection: str | None = None
    store: StoreHealth | None = None
    embedder: str | None = None
    answerer: str | None = None
    retrieval: str | None = None
    writes_waiting: int | None = None


# -- questions ---------------------------------------------------------------------------------

def _turns(history: list[HistoryTurn]) -> list[Turn]:
    return [Turn(t.role, t.content) for t in history]


@api.post("/query", response_model=Answer)
async def query(body: QueryRequest, service: ServiceDep) -> Answer:
    """Answer a question; the result contract of the README."""
    question = check_question(service, body.question)
    return await run_in_threadpool(service.ask, question, body.top_k, body.filters,
                                   _turns(body.history), body.collection, body.as_of)


@api.post("/query/stream", response_class=StreamingResponse, responses={200: {
    "content": {"text/event-stream": {}},
    "description": "`text` events ({\"text\": chunk}), then one `answer` event "
                   "(the result contract) or one `error` event."}})
async def query_stream(body: QueryRequest, service: ServiceDep) -> Response:
    """Server-Sent Events: the answer's text as produced, then the checked answer once."""
    question = check_question(service, body.question)
    events = await run_in_threadpool(service.ask_stream, question, body.top_k, body.filters,
                                     _turns(body.history), body.collection, body.as_of)
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


# -- articles ----------------------------------------------------------------------------------

_UPLOAD_DOC: dict[str, Any] = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "minItems": 1},
        "collection": {"type": "string", "pattern": COLLECTION_PATTERN}},
        "required": ["files"]}},
    "application/json": {"schema": RecordsRequest.model_json_schema()},
}, "required": True}}
_JOB_DOCS: dict[int | str, dict[str, Any]] = {
    202: {"model": JobOut, "description": "Queued: poll the job's url for its outcome."}}
Wait = Annotated[float, Query(ge=0, le=300, description="Seconds to wait for the write to "
                              "finish before answering 202 (the wait holds no server "
                              "thread).")]


@api.post("/articles", response_model=JobOut, openapi_extra=_UPLOAD_DOC, responses=_JOB_DOCS)
async def add_articles(request: Request, service: ServiceDep, wait: Wait = 0) -> Response:
    """Queue an ingest of uploaded files (multipart field `files`) or JSON records. Answers
    202 with the job (200 when it finished within `wait` seconds); its result is the
    per-file outcome. A full queue answers 503 with Retry-After."""
    if service.writes.waiting() >= service.writes.capacity:  # before reading any body
        raise QueueFull("too many writes are waiting; try again shortly")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        job = await _upload(service, request)
    elif kind == "application/json":
        body = RecordsRequest.model_validate_json(await request.body())
        job = service.submit_records(body.records, body.collection)
    else:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with 'files' "
                       "or application/json with 'records'")
    return await _job_answer(job, wait)


async def _upload(service: ArticleService, request: Request) -> Job:
    """Save the upload's files into a folder of their own and queue them; the folder goes
    when the job is over."""
    settings = service.settings
    folder = upload_folder()
    try:
        try:
            form = await read_multipart(request.headers, request.stream(),
                                        max_files=settings.max_upload_files,
                                        max_file_bytes=int(settings.max_file_mb * 1_000_000))
        except MultiPartException as exc:
            raise ApiError(400, "bad_request", f"malformed upload: {exc.message}") from exc
        try:
            collection = form.get("collection")
            if collection is not None and not isinstance(collection, str):
                raise ApiError(422, "validation_error", "collection: must be a text field")
            collection = _valid_collection(collection or None)
            uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not uploads:
                raise ApiError(422, "validation_error", "files: no files in the multipart "
                               "field 'files'")
            saved = [(name, await _save(upload, folder / str(i), name))
                     for i, upload in enumerate(uploads)
                     for name in [safe_filename(upload.filename or "upload")]]
        finally:
            await form.close()
        return service.submit_files(saved, collection,
                                    cleanup=lambda: shutil.rmtree(folder, ignore_errors=True))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _save(upload: UploadFile, into: Path, name: str) -> Path:
    into.mkdir()
    path = into / name
    with path.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)
    return path


def _valid_collection(value: str | None) -> str | None:
    class _Check(BaseModel):
        collection: Collection = None

    return _Check(collection=value).collection


@api.get("/articles", response_model=ArticleList)
async def list_articles(service: ServiceDep, collection: CollectionQuery = None) -> ArticleList:
    """Stored articles with their passage counts."""
    found = await run_in_threadpool(service.articles, collection)
    return ArticleList(collection=collection or service.default_collection,
                       articles=[ArticleOut(**a.as_dict()) for a in found])


@api.delete("/articles/{article_id:path}", response_model=RemoveOut, responses=_JOB_DOCS)
async def remove_article(article_id: str, service: ServiceDep,
                         collection: CollectionQuery = None, wait: Wait = 30) -> Response:
    """Delete an article and its passages (404 when there is none). Queued like every write:
    202 with the job when it has not finished within `wait` seconds."""
    await run_in_threadpool(service.components, collection)  # unknown collection: 404 now
    job = service.submit_remove(article_id, collection)
    if not await _finished(job, wait):
        return _job_json(job, 202)
    if job.error is None and job.result is not None and not job.result["removed"]:
        raise ApiError(404, "not_found", f"no article with id {article_id!r} "
                       "(see GET /api/articles)")
    if job.error is not None:
        raise job.error
    return JSONResponse(RemoveOut(**(job.result or {})).model_dump())


@api.get("/jobs/{job_id}", response_model=JobOut)
async def job_status(job_id: str, service: ServiceDep) -> Response:
    """The state of a queued write: queued, running (with progress), done or failed."""
    job = service.job(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id!r} (jobs are kept while the server "
                       "runs, the newest 1000)")
    return _job_json(job, 200)


@api.get("/collections", response_model=CollectionList)
async def list_collections(service: ServiceDep) -> CollectionList:
    """The collections in the store; uploads into a new name create one."""
    names = await run_in_threadpool(service.collections)
    return CollectionList(default=service.default_collection, collections=names)


async def _finished(job: Job, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while not job.finished and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return job.finished


async def _job_answer(job: Job, wait: float) -> Response:
    """202 with the job; once finished within ``wait``, 200 with it, or its error."""
    if not await _finished(job, wait):
        return _job_json(job, 202)
    if job.error is not None:
        raise job.error
    return _job_json(job, 200)


def _job_json(job: Job, status: int) -> JSONResponse:
    return JSONResponse(job_out(job).model_dump(), status_code=status,
                        headers={"Location": _job_url(job)} if status == 202 else None)


def _job_url(job: Job) -> str:
    return f"/api/jobs/{job.id}"


def job_out(job: Job) -> JobOut:
    """A job as the API shows it."""
    error = None
    if job.error is not None:
        status, code, message, _ = error_parts(job.error)
        error = ErrorBody(status=status, code=code, message=message)
    result: UploadOut | RemoveOut | None = None
    if job.result is not None:
        result = (UploadOut(**job.result) if job.kind == "ingest"
                  else RemoveOut(**job.result))
    return JobOut(id=job.id, kind="remove" if job.kind == "remove" else "ingest",
                  status=job.status, collection=job.collection, url=_job_url(job),
                  note=job.note, progress=Progress(done=job.progress[0],
                                                   total=job.progress[1]),
                  queued_at=job.queued_at, started_at=job.started_at,
                  finished_at=job.finished_at, result=result, error=error)


# -- health, docs ------------------------------------------------------------------------------

@public.get("/api/health", response_model=Health, response_model_exclude_none=True)
async def health(request: Request, service: ServiceDep,
                 collection: CollectionQuery = None) -> Any:
    """Store reachable and writable, passage count, embedder and answerer; without the
    token (when one is set) only the status. Never creates a collection."""
    allowed = authorized(service, request)
    try:
        found = await run_in_threadpool(service.health, collection)
    except StoreUnavailable as exc:
        message = str(exc) if allowed else "the store is unavailable"
        raise ApiError(503, "store_unavailable", message) from exc
    return found if allowed else {"status": found["status"]}


def _docs_allowed(service: ArticleService, request: Request) -> None:
    """With a key set, the docs need it too: as a bearer token, or as the password of the
    browser's login prompt (HTTP Basic, any user name)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    given = value if scheme.lower() == "bearer" else None
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip()).decode().partition(":")[2]
        except ValueError:
            given = None
    if not key_matches(service, given):
        raise ApiError(401, "unauthorized", "the API docs need RAG_API_KEY (as the password, "
                       "any user name)", headers={"WWW-Authenticate": 'Basic realm="rag"'})


@public.get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request, service: ServiceDep) -> JSONResponse:
    _docs_allowed(service, request)
    schema: dict[str, Any] = request.app.openapi()
    if service.settings.api_key is None:  # no key: the docs show no locks to open
        schema = {**schema, "paths": {path: {method: {k: v for k, v in op.items()
                                                      if k != "security"}
                                             for method, op in ops.items()}
                                      for path, ops in schema.get("paths", {}).items()},
                  "components": {k: v for k, v in schema.get("components", {}).items()
                                 if k != "securitySchemes"}}
    return JSONResponse(schema)


@public.get("/docs", include_in_schema=False)
async def docs(request: Request, service: ServiceDep) -> HTMLResponse:
    """Swagger UI 5 (it reads the OpenAPI 3.1 that FastAPI writes; 4.x shows "Unable to
    render this definition"), served from the files of the installed fastapi-offline
    package: FastAPI's default page loads it from a CDN, and the server must work offline."""
    _docs_allowed(service, request)
    return get_swagger_ui_html(openapi_url="/openapi.json", title="rag-articles API",
                               swagger_js_url="/docs/static/swagger-ui-bundle.js",
                               swagger_css_url="/docs/static/swagger-ui.css",
                               swagger_favicon_url="/docs/static/favicon.png")


async def not_found(request: Request) -> Response:
    """Unknown /api and /v1 paths answer in the error shape (the chat owns the rest)."""
    raise ApiError(404, "not_found", f"no route {request.method} {request.url.path}")


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's files (5.x) inside the fastapi-offline package; found
    without importing it (its import pulls in nothing we use)."""
    import importlib.util

    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fastapi-offline is missing: pip install -e . (it serves /docs)")
    return Path(spec.submodule_search_locations[0]) / "static"


def create_api(service: ArticleService) -> FastAPI:
    """The FastAPI app with every route; the chat is mounted onto it by ui.server."""
    from fastapi.staticfiles import StaticFiles

    from ui.api_sources import sources
    from ui.embeddings_api import embeddings
    from ui.openai_api import v1

    app = FastAPI(title="rag-articles", version="0.1.0", docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Ask questions about your articles; every answer sentence cites "
                  "the passage that supports it. Errors: `{\"error\": {status, code, message, "
                  "details}}`.")
    app.state.service = service
    install_error_handlers(app)
    app.include_router(public)
    app.include_router(api)
    app.include_router(sources)
    app.include_router(v1)
    app.include_router(embeddings)
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_files()), name="swagger-static")
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in ("/api", "/v1"):
        app.add_api_route(prefix + "/{rest:path}", not_found, methods=methods,
                          include_in_schema=False, dependencies=[Depends(require_key)])
    return app
