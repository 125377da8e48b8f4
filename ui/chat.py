"""The Gradio chat: questions with streamed, cited answers; a sources panel; article upload.

Formatting only: every question and upload goes through :class:`ui.service.ArticleService`.
Article text is untrusted, so everything taken from it is escaped before it is shown: the
chat's Markdown is backslash-escaped and the sources panel is built with ``html.escape``.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from index.store import StoreError
from rag.answerers import Turn
from rag.filters import Filters
from rag.result import Answer

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr

from ui.guard import client_cookie
from ui.service import ArticleService
from ui.uploads import UploadRegistry, safe_filename

log = logging.getLogger(__name__)

EXAMPLES = [
    "What did the US ambassador to the UN say Russia was doing in Syria?",
    "Who called the Security Council meeting about Aleppo?",
    "How many civilians have died in the shelling of Aleppo?",
]
EMPTY_STORE = ("Nothing has been ingested yet: add articles in the **Articles** tab "
               "(or run `rag ingest PATH`), then ask again.")
# Several people may chat at once; Gradio would otherwise run one answer at a time.
CHAT_CONCURRENCY = 4
HISTORY_TURNS = 10
SAVED_TURNS = 40
_PROGRESS = gr.Progress()
# The same words for a path this browser never uploaded and for one that is gone: a client
# must not learn which files exist on the server.
NOT_UPLOADED = "this upload is no longer on the server; add the file again"

CSS = """
.rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
              padding: 8px 10px; margin-bottom: 8px; }
.rag-source-head { font-weight: 600; }
.rag-source-meta { color: var(--body-text-color-subdued); font-size: 0.85em; }
.rag-passage { white-space: pre-wrap; margin: 6px 0 0 0; font-size: 0.92em; }
.rag-passage mark { background: #fde68a; color: inherit; }
"""

_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~&$=^\"'])")


def escape_markdown(text: str) -> str:
    """Text shown literally by the Markdown renderer: no links, images, HTML or emphasis."""
    return _MD_SPECIAL.sub(r"\\\1", text)


# -- formatting ------------------------------------------------------------------------------


def sources_html(citations: list[dict[str, Any]]) -> str:
    """The sources panel: per citation, title (linked when there is a url), source, date and
    the passage with its supporting sentences marked."""
    if not citations:
        return "<p class='rag-source-meta'>Sources of the selected answer appear here.</p>"
    return "\n".join(_source_html(c) for c in citations)


def _source_html(c: dict[str, Any]) -> str:
    title = html.escape(str(c.get("title") or "(untitled)"))
    url = str(c.get("url") or "")
    if url.startswith(("http://", "https://")):
        title = (f"<a href=\"{html.escape(url, quote=True)}\" target=\"_blank\" "
                 f"rel=\"noopener noreferrer nofollow\">{title}</a>")
    page = f"page {int(c['page'])}" if c.get("page") else ""
    meta = " · ".join(html.escape(str(x)) for x in (c.get("source"), c.get("published"), page)
                      if x)
    marker = int(c.get("marker", 0))
    return (f"<div class='rag-source' id='rag-source-{marker}'>"
            f"<div class='rag-source-head'>[{marker}] {title}</div>"
            f"<div class='rag-source-meta'>{meta}</div>"
            f"<blockquote class='rag-passage'>{_marked_passage(c)}</blockquote></div>")


def _marked_passage(c: dict[str, Any]) -> str:
    """The passage, escaped, with the highlight spans (article offsets) wrapped in <mark>."""
    text = str(c.get("text", ""))
    base = int(c.get("start", 0))
    spans = sorted((max(0, int(a) - base), min(len(text), int(b) - base))
                   for a, b in c.get("highlights", []))
    out, pos = [], 0
    for a, b in spans:
        if b <= pos or a >= len(text):
            continue
        a = max(a, pos)
        out += [html.escape(text[pos:a]), "<mark>", html.escape(text[a:b]), "</mark>"]
        pos = b
    out.append(html.escape(text[pos:]))
    return _BLANK_LINES.sub("\n\n", "".join(out))


def answer_markdown(turn: dict[str, Any]) -> str:
    """An assistant turn for the chat: the short answer in bold, the answer, why it
    abstained, a removal note, the cited titles."""
    text = escape_markdown(turn["content"])
    short = str(turn.get("short") or "")
    if short and turn["content"].startswith(short):  # the lead, in bold
        text = f"**{escape_markdown(short)}**{text[len(escape_markdown(short)):]}"
    elif short:
        text = f"**{escape_markdown(short)}** — {text}"
    parts = [text]
    if turn.get("asked_as"):
        parts.insert(0, f"*Asked as: {escape_markdown(str(turn['asked_as']))}*")
    if turn.get("reason"):
        parts.append(f"*Why: {escape_markdown(str(turn['reason']))}.*")
    if turn.get("removed"):
        n = turn["removed"]
        parts.append(f"*{n} unsupported sentence{'s' if n != 1 else ''} removed by the "
                     "citation check.*")
    cited = [f"\\[{c['marker']}\\] {escape_markdown(str(c.get('title', '')))}"
             for c in turn.get("citations", [])]
    if cited:
        parts.append("Sources: " + " · ".join(cited))
    return "\n\n".join(parts)


def chat_messages(saved: dict[str, Any] | None) -> list[dict[str, str]]:
    """The Chatbot's messages from the saved turns (raw text is kept; display is derived)."""
    shown = []
    for turn in (saved or {}).get("turns", []):
        if turn.get("notice"):  # our own text, not the articles'
            content = turn["content"]
        elif turn["role"] == "assistant":
            content = answer_markdown(turn)
        else:
            content = escape_markdown(turn["content"])
        shown.append({"role": turn["role"], "content": content})
    return shown


def last_sources(saved: dict[str, Any] | None) -> str:
    for turn in reversed((saved or {}).get("turns", [])):
        if turn["role"] == "assistant":
            return sources_html(turn.get("citations", []))
    return sources_html([])


# -- the app ---------------------------------------------------------------------------------


def build_chat(service: ArticleService, uploads: UploadRegistry | None = None) -> gr.Blocks:
    """The chat page; ui.server mounts it at '/' beside the API. ``uploads`` records which
    browser uploaded which file (ui.guard.UploadTracker fills it): only those are ingested."""
    uploads = uploads or UploadRegistry()
    with gr.Blocks(title="Ask the articles", analytics_enabled=False) as demo:
        saved = gr.BrowserState({"turns": []}, storage_key="rag-chat-history")
        status = gr.Markdown()
        with gr.Tab("Chat"), gr.Row():
            with gr.Column(scale=3):
                # No share button: it would post the chat to an outside service.
                chatbot = gr.Chatbot(label="Answers", height=520, latex_delimiters=[],
                                     buttons=["copy", "copy_all"],
                                     sanitize_html=True, elem_id="rag-chatbot",
                                     placeholder="Ask a question about your articles.")
                question = gr.Textbox(placeholder="Ask a question and press Enter",
                                      show_label=False, elem_id="rag-question",
                                      max_length=service.settings.max_question_chars)
                with gr.Row():
                    ask = gr.Button("Ask", variant="primary", elem_id="rag-ask")
                    clear = gr.Button("New chat", elem_id="rag-clear")
                with gr.Row(equal_height=True):
                    pick_sources = gr.Dropdown(label="Only from sources", choices=[],
                                               multiselect=True, scale=2,
                                               elem_id="rag-filter-sources")
                    since = gr.Textbox(label="Published from", placeholder="YYYY-MM-DD",
                                       max_length=10, scale=1, elem_id="rag-filter-from")
                    until = gr.Textbox(label="Published to", placeholder="YYYY-MM-DD",
                                       max_length=10, scale=1, elem_id="rag-filter-to")
                gr.Examples([[q] for q in EXAMPLES], inputs=[question],
                            label="Examples (the sample article)")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html([]), elem_id="rag-sources")
        with gr.Tab("Articles"):
            files = gr.File(label="Add articles (.txt .md .html .json .jsonl .pdf .docx)",
                            file_count="multiple", type="filepath",
                            file_types=[".txt", ".md", ".markdown", ".html", ".htm", ".json",
                                        ".jsonl", ".pdf", ".docx"], elem_id="rag-upload")
            add = gr.Button("Add to the collection", variant="primary", elem_id="rag-add")
            outcome = gr.Markdown(elem_id="rag-upload-outcome")
            table = gr.Dataframe(headers=["id", "title", "source", "published", "passages"],
                                 interactive=False, elem_id="rag-articles")
            with gr.Row():
                picked = gr.Dropdown(label="Article", choices=[], elem_id="rag-pick")
                remove = gr.Button("Remove", variant="stop", elem_id="rag-remove")
            from ui.chat_sources import add_sources_section, feed_rows

            feeds = add_sources_section(service, [table, picked, pick_sources, status],
                                        lambda: (*_articles(service), _status(service)))

        def respond(text: str, state: dict[str, Any] | None, chosen: list[str] | None,
                    low: str | None, high: str | None) -> Iterator[tuple[Any, ...]]:
            yield from _respond(service, text, state, (chosen, low, high))

        def select(state: dict[str, Any] | None, evt: gr.SelectData) -> str:
            index = evt.index[0] if isinstance(evt.index, list) else evt.index
            turns = (state or {}).get("turns", [])
            if isinstance(index, int) and 0 <= index < len(turns):
                return sources_html(turns[index].get("citations", []))
            return last_sources(state)

        def ingest(paths: list[str] | None, request: gr.Request,
                   progress: gr.Progress = _PROGRESS) -> tuple[Any, ...]:
            if not paths:
                return ("Choose files first.", None, *_articles(service), _status(service))
            client = client_cookie(request.headers.get("cookie", ""))
            text = _ingest_uploads(service, uploads, demo, paths, client, progress)
            return (text, None, *_articles(service), _status(service))

        def drop(article_id: str | None) -> tuple[Any, ...]:
            if not article_id:
                return ("Pick an article first.", *_articles(service), _status(service))
            done = service.remove(article_id)
            text = "Removed." if done else "That article was already gone."
            return (text, *_articles(service), _status(service))

        chat_out = [chatbot, sources, saved, question]
        for event in (question.submit, ask.click):
            event(respond, [question, saved, pick_sources, since, until], chat_out,
                  concurrency_limit=CHAT_CONCURRENCY)
        clear.click(lambda: ([], sources_html([]), {"turns": []}, ""), None, chat_out)
        chatbot.select(select, [saved], [sources])
        lists = [table, picked, pick_sources]
        add.click(ingest, [files], [outcome, files, *lists, status])
        remove.click(drop, [picked], [outcome, *lists, status])
        demo.load(lambda s: (chat_messages(s), last_sources(s), *_articles(service),
                             _status(service), feed_rows(service)), [saved],
                  [chatbot, sources, *lists, status, feeds])
    blocks: gr.Blocks = demo
    return blocks


def _ingest_uploads(service: ArticleService, uploads: UploadRegistry, demo: gr.Blocks,
                    paths: list[str], client: str | None, progress: gr.Progress) -> str:
    """Ingest the files this browser uploaded (others are refused as gone), following the
    queued job's progress; Gradio's copies are deleted once the job is over."""
    mine = [p for p in paths if uploads.claim(client, p) and Path(p).is_file()]
    refused = [f"- {escape_markdown(safe_filename(Path(p).name))}: failed\n  - "
               f"{NOT_UPLOADED}" for p in paths if p not in mine]
    if not mine:
        return "\n".join(["Nothing was added.", *refused])

    def forget() -> None:
        for path in mine:
            demo.upload_file_set.discard(path)
            Path(path).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # Gradio's folder per upload, if now empty
                Path(path).parent.rmdir()

    job = service.submit_files([(Path(p).name, Path(p)) for p in mine], cleanup=forget)
    while not job.wait(0.25):
        done, total = job.progress
        progress((done, total) if total else 0, desc=job.note or "embedding",
                 unit="passages")
    if job.error is not None:
        return f"**Nothing was added:** {escape_markdown(str(job.error))}"
    assert job.result is not None
    result = job.result
    lines = [f"- {escape_markdown(f['name'])}: {f['status']}, {f['articles']} article(s)"
             + "".join(f"\n  - {escape_markdown(e)}" for e in f["errors"])
             for f in result["files"]]
    summary = (f"articles: {result['added']} added, {result['unchanged']} unchanged, "
               f"{result['replaced']} replaced, {result['failed'] + len(refused)} failed; "
               f"passages written: {result['passages']}")
    return "\n".join([summary, *lines, *refused])


def chat_filters(sources: list[str] | None, published_from: str | None,
                 published_to: str | None) -> Filters | None:
    """The filter row as Filters (None when empty); a malformed date is a message to the user."""
    try:
        filters = Filters(sources=list(sources or []),
                          published_from=(published_from or "").strip() or None,
                          published_to=(published_to or "").strip() or None)
    except ValidationError:
        raise _Reply("Dates in the filter row are written YYYY-MM-DD, e.g. 2022-06-30.") from None
    return None if filters.is_empty() else filters


FilterRow = tuple[list[str] | None, str | None, str | None]


def _respond(service: ArticleService, text: str, state: dict[str, Any] | None,
             row: FilterRow = (None, None, None)) -> Iterator[tuple[Any, ...]]:
    """Stream one answer: show chunks as they come, then the checked answer and sources.
    ``row`` is the filter row: sources, published from, published to."""
    # The saved chat rides in every request: keep the newest turns, so it stays well under
    # the request limit (RAG_MAX_REQUEST_KB).
    state = {"turns": list((state or {}).get("turns", []))[-SAVED_TURNS:]}
    text = (text or "").strip()[:service.settings.max_question_chars]
    if not text:
        yield chat_messages(state), last_sources(state), state, ""
        return
    history = [Turn(t["role"], t["content"]) for t in state["turns"][-2 * HISTORY_TURNS:]]
    state["turns"].append({"role": "user", "content": text})
    shown = chat_messages(state)
    yield [*shown, {"role": "assistant", "content": "…"}], last_sources(state), state, ""
    answer: Answer | None = None
    streamed = ""
    try:
        if service.passage_count() == 0:
            raise _Reply(EMPTY_STORE)
        filters = chat_filters(*row)
        for item in service.ask_stream(text, history=history, filters=filters):
            if isinstance(item, Answer):
                answer = item
            else:
                streamed += item
                yield ([*shown, {"role": "assistant", "content": escape_markdown(streamed)}],
                       last_sources(state), state, "")
    except _Reply as reply:
        state["turns"].append({"role": "assistant", "content": str(reply), "citations": [],
                               "notice": True})
    except StoreError as exc:
        log.warning("chat: %s", exc)
        state["turns"].append({"role": "assistant", "content": f"Sorry, the store cannot be "
                               f"used right now: {exc}", "citations": []})
    if answer is not None:
        state["turns"].append({
            "role": "assistant", "content": answer.answer, "removed": answer.removed_sentences,
            "short": answer.short_answer, "reason": answer.abstain_reason,
            "asked_as": answer.condensed_question if answer.condensed_question != text
            else None,
            "citations": [c.model_dump() for c in answer.citations]})
    yield chat_messages(state), last_sources(state), state, ""


class _Reply(Exception):
    """A message for the user instead of an answer."""


def _articles(service: ArticleService) -> tuple[Any, Any, Any]:
    """The articles table, the remove picker, and the sources for the chat's filter row."""
    try:
        found = service.articles()
    except StoreError:
        found = []
    rows = [[a.id, a.title, a.source, a.published, a.passages] for a in found]
    table = {"headers": ["id", "title", "source", "published", "passages"], "data": rows}
    choices = [(f"{a.title[:60]} ({a.id})", a.id) for a in found]
    sources = sorted({a.source for a in found if a.source})
    return table, gr.Dropdown(choices=choices, value=None), gr.Dropdown(choices=sources)


def _status(service: ArticleService) -> str:
    try:
        count = service.passage_count()
    except StoreError as exc:
        return f"**The store cannot be used:** {escape_markdown(str(exc))}"
    if count == 0:
        return EMPTY_STORE
    waiting = service.passages_waiting()
    return (f"{waiting} of {count} passages are waiting for their vectors: until then they "
            "are found by their words only." if waiting else "")
