"""The chat's Articles tab, the web part: add pages and PDFs by URL, follow and refresh feeds,
see each feed's status. Formatting only: the work is the service's queued jobs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from ui.chat_format import escape_markdown
from ui.errors import SOURCE_ERRORS, QueueFull
from ui.jobs import Job
from ui.service import ArticleService

FEED_HEADERS = ["feed", "title", "collection", "status", "last checked", "articles",
                "last error"]
_PROGRESS = gr.Progress()
MAX_URLS_SHOWN = 300


def follow(job: Job, progress: gr.Progress) -> None:
    """Wait for a job, showing what it is doing (fetching, waiting, embedding)."""
    while not job.wait(0.25):
        done, total = job.progress
        progress((done, total) if total else 0, desc=job.note[:80] or "embedding",
                 unit="passages")


def result_markdown(result: dict[str, Any], refused: Sequence[str] = ()) -> str:
    """A finished ingest as the page shows it: the totals, then each file, URL or entry
    with its errors (every text from outside escaped)."""
    lines = [f"- {shown_name(f['name'])}: {f['status']}, {f['articles']} article(s)"
             + "".join(f"\n  - {escape_markdown(_reason(e, f['name']))}" for e in f["errors"])
             for f in result["files"]]
    lines += [f"- {shown_name(f['url'])}: feed {f['status']}"
              + (f"\n  - {escape_markdown(f['error'])}" if f["error"] else "")
              for f in result.get("feeds") or []]
    summary = (f"articles: {result['added']} added, {result['unchanged']} unchanged, "
               f"{result['replaced']} replaced, {result['failed'] + len(refused)} failed; "
               f"passages written: {result['passages']}")
    return "\n".join([summary, *lines, *refused])


def shown_name(name: str) -> str:
    """A file name as escaped text; a URL as code (Markdown would make escaped text a
    link with the escapes in it)."""
    if "://" in name:
        return "`" + name.replace("`", "%60").replace("\n", " ") + "`"
    return escape_markdown(name)


def _reason(error: str, name: str) -> str:
    """An error without the name it starts with (the line above shows the name)."""
    return error.removeprefix(f"{name}: ")


def _outcome(submit: Callable[[], Job], progress: gr.Progress) -> str:
    try:
        job = submit()
    except (QueueFull, *SOURCE_ERRORS) as exc:
        return f"**Nothing was added:** {escape_markdown(str(exc))}"
    follow(job, progress)
    if job.error is not None:
        return f"**Nothing was added:** {escape_markdown(str(job.error))}"
    assert job.result is not None
    return result_markdown(job.result)


def feed_rows(service: ArticleService) -> dict[str, Any]:
    """The followed feeds as a table (every collection: feeds belong to one each)."""
    rows = []
    for feed in service.feeds():
        checked = (time.strftime("%Y-%m-%d %H:%M", time.localtime(feed.last_checked))
                   if feed.last_checked else "never")
        rows.append([feed.url, feed.title, feed.collection, feed.status, checked,
                     feed.articles, feed.error])
    return {"headers": FEED_HEADERS, "data": rows}


def _urls(text: str | None) -> list[str]:
    return list(dict.fromkeys(u.strip() for u in (text or "").split() if u.strip()))


def add_sources_section(service: ArticleService, outputs: list[Any], collection: Any,
                        refresh: Callable[[str], tuple[Any, ...]]) -> gr.Dataframe:
    """Build the URL box and the feeds list inside the Articles tab; returns the feeds
    table (for the page's load). Pages and feeds go into the picked ``collection`` (a
    component); ``outputs`` are the page's lists, which ``refresh(collection)`` recomputes
    after a change."""
    from ui.chat import chosen_collection

    gr.Markdown("### Add by URL")
    urls = gr.Textbox(label="Web pages or PDFs, one URL per line", lines=2, max_lines=8,
                      placeholder="https://…", elem_id="rag-urls",
                      max_length=MAX_URLS_SHOWN * 50)
    fetch = gr.Button("Fetch and add", variant="primary", elem_id="rag-add-urls")
    url_outcome = gr.Markdown(elem_id="rag-url-outcome")
    gr.Markdown("### Feeds")
    feeds = gr.Dataframe(headers=FEED_HEADERS, interactive=False, elem_id="rag-feeds",
                         wrap=True)
    with gr.Row(equal_height=True):
        feed_url = gr.Textbox(label="Follow an RSS or Atom feed", placeholder="https://…/feed",
                              scale=3, elem_id="rag-feed-url", max_length=2048)
        add_feed = gr.Button("Follow", scale=1, elem_id="rag-follow")
        refresh_feeds = gr.Button("Refresh feeds now", scale=1, elem_id="rag-refresh-feeds")
    feed_outcome = gr.Markdown(elem_id="rag-feed-outcome")

    def fetch_urls(text: str | None, name: str | None = None,
                   progress: gr.Progress = _PROGRESS) -> tuple[Any, ...]:
        chosen = chosen_collection(service, name)
        found = _urls(text)
        limit = service.settings.max_upload_files
        if not found:
            message = "Give one or more URLs first."
        elif len(found) > limit:
            message = f"At most {limit} URLs at a time (RAG_MAX_UPLOAD_FILES)."
        else:
            message = _outcome(lambda: service.submit_urls(found, chosen), progress)
        return (message, "" if found else text, feed_rows(service), *refresh(chosen))

    def follow_feed(url: str | None, name: str | None = None,
                    progress: gr.Progress = _PROGRESS) -> tuple[Any, ...]:
        chosen = chosen_collection(service, name)
        if not (url or "").strip():
            return ("Give the feed's URL first.", url, feed_rows(service), *refresh(chosen))
        message = _outcome(lambda: service.submit_feed_add((url or "").strip(), chosen),
                           progress)
        return (message, "", feed_rows(service), *refresh(chosen))

    def refresh_all(name: str | None = None,
                    progress: gr.Progress = _PROGRESS) -> tuple[Any, ...]:
        chosen = chosen_collection(service, name)
        if not service.feeds():
            return ("No feeds are followed yet.", feed_rows(service), *refresh(chosen))
        message = _outcome(lambda: service.submit_feed_refresh(), progress)
        return (message, feed_rows(service), *refresh(chosen))

    fetch.click(fetch_urls, [urls, collection], [url_outcome, urls, feeds, *outputs])
    add_feed.click(follow_feed, [feed_url, collection],
                   [feed_outcome, feed_url, feeds, *outputs])
    refresh_feeds.click(refresh_all, [collection], [feed_outcome, feeds, *outputs])
    return feeds
