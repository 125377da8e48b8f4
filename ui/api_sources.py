"""The API's routes for articles from the web: pages and PDFs by URL, and followed feeds.

Like uploads, each is a queued job (202, or 200 when it finished within ``wait``); fetching
happens on a fetcher thread before the job reaches the writer, so no request and no other
write waits for a slow site. The guard against server-side request forgery is in the
fetcher (index.fetch): these routes add count and length limits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ui.api import (
    _JOB_DOCS,
    ERRORS,
    FeedOut,
    JobOut,
    RemoveOut,
    ServiceDep,
    Wait,
    _finished,
    _job_answer,
    _job_json,
    require_key,
)
from ui.api_base import Collection, CollectionQuery, known_query_only
from ui.errors import ApiError, QueueFull
from ui.service import ArticleService

MAX_URL_CHARS = 2048
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS,
                           description="An http(s) address.")]

sources = APIRouter(prefix="/api", tags=["api"], responses=ERRORS,
                    dependencies=[Depends(require_key), Depends(known_query_only)])


class UrlsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[Url] = Field(min_length=1, max_length=1000, description=(
        "Web pages or PDFs to fetch and ingest; at most RAG_MAX_UPLOAD_FILES per request."))
    collection: Collection = None


class FeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    collection: Collection = None


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[Url] = Field(default_factory=list, max_length=1000, description=(
        "Only these feeds (their URLs as listed); default: every followed feed."))


class FeedList(BaseModel):
    feeds: list[FeedOut]


def _room(service: ArticleService) -> None:
    if service.writes.waiting() >= service.writes.capacity:
        raise QueueFull("too many writes are waiting; try again shortly")


@sources.post("/articles/urls", response_model=JobOut, responses=_JOB_DOCS)
async def add_urls(body: UrlsRequest, service: ServiceDep, wait: Wait = 0) -> Response:
    """Queue fetching web pages or PDFs by URL and ingesting them. The result has one
    outcome per URL (`name` is the URL); one that fails never stops the others. Loopback
    and private addresses are refused unless RAG_FETCH_ALLOW_PRIVATE is set."""
    limit = service.settings.max_upload_files
    if len(body.urls) > limit:
        raise ApiError(422, "validation_error", f"urls: {len(body.urls)} URLs, more than the "
                       f"{limit} one request may carry (RAG_MAX_UPLOAD_FILES)")
    _room(service)
    urls = list(dict.fromkeys(u.strip() for u in body.urls))
    return await _job_answer(service.submit_urls(urls, body.collection), wait)


@sources.get("/feeds", response_model=FeedList)
async def list_feeds(service: ServiceDep, collection: CollectionQuery = None) -> FeedList:
    """The followed feeds with their last status and error."""
    found = await run_in_threadpool(service.feeds, collection)
    return FeedList(feeds=[FeedOut(**f.summary()) for f in found])


@sources.post("/feeds", response_model=JobOut, responses=_JOB_DOCS)
async def add_feed(body: FeedRequest, service: ServiceDep, wait: Wait = 0) -> Response:
    """Queue following an RSS or Atom feed: it is fetched first (a page that is not a feed
    fails the job and is not followed), then its entries are ingested."""
    _room(service)
    return await _job_answer(service.submit_feed_add(body.url.strip(), body.collection), wait)


@sources.post("/feeds/refresh", response_model=JobOut, responses=_JOB_DOCS)
async def refresh_feeds(service: ServiceDep, body: RefreshRequest | None = None,
                        wait: Wait = 0) -> Response:
    """Queue a refresh: the new entries of every followed feed (or of those named) are
    ingested; each feed's status and error are in the result's `feeds`."""
    _room(service)
    urls = body.urls if body is not None else []
    return await _job_answer(service.submit_feed_refresh(urls), wait)


@sources.delete("/feeds", response_model=RemoveOut, responses=_JOB_DOCS)
async def remove_feed(service: ServiceDep, url: Annotated[str, Query(
        min_length=1, max_length=MAX_URL_CHARS, description="The feed's URL as listed.")],
        collection: CollectionQuery = None, wait: Wait = 30) -> Response:
    """Stop following a feed (404 when it is not followed); its articles stay."""
    job = service.submit_feed_remove(url, collection)
    if not await _finished(job, wait):
        return _job_json(job, 202)
    if job.error is not None:
        raise job.error
    result = job.result or {}
    if not result.get("removed"):
        raise ApiError(404, "not_found", f"no followed feed {url!r} in collection "
                       f"{result.get('collection')!r} (see GET /api/feeds)")
    return JSONResponse(RemoveOut(**result).model_dump())
