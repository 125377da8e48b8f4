"""The Gradio chat: conversations kept in the browser, streamed and cited answers, the sources
panel, a collection picker, and the Articles tab.

Formatting only: every question, upload and listing goes through
:class:`ui.service.ArticleService`; how answers and sources look is ``ui.chat_format``, the
conversations ``ui.chat_state``. What a browser sends is never trusted: the collection must
be one the store has, the filter row is checked where it is typed, uploads are ingested only
for the browser that uploaded them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rag.result import Answer

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import gradio as gr

from ui import chat_state
from ui.chat_format import (
    CSS,
    HEAD,
    answer_markdown,
    chat_messages,
    escape_markdown,
    last_sources,
    sources_html,
    turn_sources,
)
from ui.errors import (
    CollectionEmpty,
    CollectionNotFound,
    InvalidInput,
    StoreError,
    first_problem,
)
from ui.guard import client_cookie
from ui.service import ArticleService, Filters, Turn, valid_collection_name
from ui.uploads import UploadRegistry, safe_filename

__all__ = ["CSS", "EMPTY_STORE", "HEAD", "NOT_UPLOADED", "answer_markdown", "build_chat",
           "chat_filters", "sources_html"]

log = logging.getLogger(__name__)

EMPTY_STORE = ("Nothing has been ingested yet: add articles in the **Articles** tab "
               "(or run `rag ingest PATH`), then ask again.")
# Several people may chat at once; Gradio would otherwise run one answer at a time.
CHAT_CONCURRENCY = 4
HISTORY_TURNS = 10
SAVED_TURNS = chat_state.MAX_TURNS
_PROGRESS = gr.Progress()
# The same words for a path this browser never uploaded and for one that is gone: a client
# must not learn which files exist on the server.
NOT_UPLOADED = "this upload is no longer on the server; add the file again"
ARTICLE_HEADERS = ["id", "title", "source", "published", "passages"]


class _Reply(Exception):
    """A message for the user instead of an answer."""


class FilterError(Exception):
    """The filter row holds something that cannot be used; shown next to the boxes."""


# -- the filter row ---------------------------------------------------------------------------


def chat_filters(sources: list[str] | None, published_from: str | None,
                 published_to: str | None) -> Filters | None:
    """The filter row as Filters (None when empty); an impossible date is a FilterError
    naming the box."""
    low = (published_from or "").strip() or None
    high = (published_to or "").strip() or None
    for label, value in (("Published from", low), ("Published to", high)):
        try:
            Filters(published_from=value)
        except ValidationError:
            raise FilterError(f"{label}: {value!r} is not a date on the calendar; write "
                              "YYYY-MM-DD, e.g. 2022-06-30.") from None
    try:
        filters = Filters(sources=list(sources or []), published_from=low, published_to=high)
    except ValidationError as exc:  # a range that ends before it starts
        raise FilterError(f"Published from/to: {first_problem(exc)}.") from None
    return None if filters.is_empty() else filters


def filter_message(published_from: str | None, published_to: str | None) -> str:
    """What the page shows next to the date boxes as they are typed ('' when fine)."""
    try:
        chat_filters(None, published_from, published_to)
    except FilterError as exc:
        return f"⚠ {escape_markdown(str(exc))}"
    return ""


FilterRow = tuple[list[str] | None, str | None, str | None]


# -- answering ------------------------------------------------------------------------------


def _respond(service: ArticleService, text: str, state: dict[str, Any] | None,
             row: FilterRow = (None, None, None), collection: str | None = None,
             ) -> Iterator[tuple[Any, ...]]:
    """Stream one answer in one conversation (``state``: its turns): show chunks as they
    come, then the checked answer and its sources. Yields (messages, sources, state,
    question box, filter message)."""
    state = {"turns": list((state or {}).get("turns", []))[-SAVED_TURNS:]}
    text = (text or "").strip()[:service.settings.max_question_chars]
    if not text:
        yield chat_messages(state), last_sources(state), state, "", ""
        return
    try:
        filters = chat_filters(*row)
    except FilterError as exc:  # said next to the boxes; the question stays to be sent again
        yield chat_messages(state), last_sources(state), state, text, f"⚠ {exc}"
        return
    history = [Turn(t["role"], t["content"]) for t in state["turns"][-2 * HISTORY_TURNS:]]
    state["turns"].append({"role": "user", "content": text})
    shown = chat_messages(state)
    yield [*shown, {"role": "assistant", "content": "…"}], last_sources(state), state, "", ""
    answer: Answer | None = None
    streamed = ""
    try:
        for item in service.ask_stream(text, history=history, filters=filters,
                                       collection=collection):
            if isinstance(item, Answer):
                answer = item
            else:
                streamed += item
                yield ([*shown, {"role": "assistant", "content": escape_markdown(streamed)}],
                       last_sources(state), state, "", "")
    except InvalidInput as exc:  # e.g. a source the collection does not have
        state["turns"].pop()
        problem = f"⚠ {escape_markdown(str(exc))}"
        yield chat_messages(state), last_sources(state), state, text, problem
        return
    except CollectionEmpty:
        _notice(state, EMPTY_STORE)
    except StoreError as exc:
        log.warning("chat: %s", exc)
        _notice(state, f"Sorry, the store cannot be used right now: {escape_markdown(str(exc))}")
    if answer is not None:
        state["turns"].append({
            "role": "assistant", "content": answer.answer, "removed": answer.removed_sentences,
            "short": answer.short_answer, "reason": answer.abstain_reason,
            "asked_as": answer.condensed_question if answer.condensed_question != text
            else None,
            "citations": [c.model_dump() for c in answer.citations]})
    yield chat_messages(state), last_sources(state), state, "", ""


def _notice(state: dict[str, Any], text: str) -> None:
    state["turns"].append({"role": "assistant", "content": text, "citations": [],
                           "notice": True})


# -- what the page lists ----------------------------------------------------------------------


def chosen_collection(service: ArticleService, name: str | None) -> str:
    """The collection a browser picked, if the store has it; else the server's default.
    A browser can neither create a collection nor reach one by a name that is not listed."""
    if name and valid_collection_name(name) and name in _collections(service):
        return name
    return service.default_collection


def _collections(service: ArticleService) -> list[str]:
    try:
        names = service.collections()
    except StoreError:
        names = []
    return sorted({service.default_collection, *names})


def _articles(service: ArticleService, collection: str | None = None) -> tuple[Any, Any, Any]:
    """The articles table, the remove picker, and the sources for the chat's filter row."""
    try:
        found = service.articles(collection)
    except StoreError:
        found = []
    rows = [[a.id, a.title, a.source, a.published, a.passages] for a in found]
    table = {"headers": ARTICLE_HEADERS, "data": rows}
    choices = [(f"{a.title[:60]} ({a.id})", a.id) for a in found]
    sources = sorted({a.source for a in found if a.source})
    return table, gr.Dropdown(choices=choices, value=None), gr.Dropdown(choices=sources,
                                                                        value=None)


def header(service: ArticleService, collection: str | None = None) -> str:
    """The page's header: the collection, its size, and who answers."""
    try:
        about = service.describe(collection)
    except StoreError as exc:
        return f"**The store cannot be used:** {escape_markdown(str(exc))}"
    count = about["articles"]
    text = (f"**Collection:** {escape_markdown(about['collection'])} · {count} "
            f"article{'s' if count != 1 else ''} · **Answers:** "
            f"{escape_markdown(about['answerer'])} · **Embeddings:** "
            f"{escape_markdown(about['embedder'])}")
    waiting = about["waiting"]
    if waiting:
        total = about["passages"]
        text += (f"\n\n{waiting} of {total} passage{'s' if total != 1 else ''} "
                 f"{'is' if waiting == 1 else 'are'} waiting for vectors: until then "
                 f"{'it is' if waiting == 1 else 'they are'} found by words only.")
    return text + (f"\n\n{EMPTY_STORE}" if count == 0 else "")


def examples(service: ArticleService, collection: str | None = None) -> Any:
    """Example questions from the collection's own recent articles."""
    try:
        found = service.example_questions(collection)
    except StoreError:
        found = []
    return gr.Dataset(samples=[[q] for q in found], visible=bool(found))


# -- the app ---------------------------------------------------------------------------------


def build_chat(service: ArticleService, uploads: UploadRegistry | None = None) -> gr.Blocks:
    """The chat page; ui.server mounts it at '/' beside the API. ``uploads`` records which
    browser uploaded which file (ui.guard.UploadTracker fills it): only those are ingested."""
    uploads = uploads or UploadRegistry()
    budget = service.settings.max_request_kb * 1024 // 2  # the saved chats, in each request
    with gr.Blocks(title="Ask the articles", analytics_enabled=False) as demo:
        saved = gr.BrowserState(chat_state.empty(), storage_key="rag-chats")
        with gr.Sidebar(label="Chats", elem_id="rag-sidebar", open=True):
            collection = gr.Dropdown(label="Collection", choices=[], elem_id="rag-collection",
                                     info="Asked and added to")
            new_chat = gr.Button("New chat", variant="primary", elem_id="rag-new-chat")
            chats = gr.Radio(label="Conversations", choices=[], elem_id="rag-chats")
            title = gr.Textbox(label="Name of this chat", max_length=chat_state.MAX_TITLE,
                               elem_id="rag-chat-title")
            with gr.Row():
                rename = gr.Button("Rename", size="sm", elem_id="rag-rename")
                delete = gr.Button("Delete", size="sm", variant="stop", elem_id="rag-delete")
        status = gr.Markdown(elem_id="rag-header")
        with gr.Tab("Chat"), gr.Row(elem_id="rag-main-row"):
            with gr.Column(scale=3, elem_id="rag-chat-col"):
                # No share button: it would post the chat to an outside service.
                chatbot = gr.Chatbot(label="Answers", height=520, latex_delimiters=[],
                                     buttons=["copy", "copy_all"],
                                     sanitize_html=True, elem_id="rag-chatbot",
                                     placeholder="Ask a question about your articles.")
                question = gr.Textbox(placeholder="Ask a question and press Enter",
                                      show_label=False, elem_id="rag-question",
                                      max_length=service.settings.max_question_chars)
                with gr.Row(elem_id="rag-buttons"):
                    ask = gr.Button("Ask", variant="primary", elem_id="rag-ask")
                with gr.Row(equal_height=True, elem_id="rag-filters"):
                    pick_sources = gr.Dropdown(label="Only from sources", choices=[],
                                               multiselect=True, scale=2,
                                               elem_id="rag-filter-sources")
                    since = gr.Textbox(label="Published from", placeholder="YYYY-MM-DD",
                                       max_length=10, scale=1, elem_id="rag-filter-from")
                    until = gr.Textbox(label="Published to", placeholder="YYYY-MM-DD",
                                       max_length=10, scale=1, elem_id="rag-filter-to")
                filter_error = gr.Markdown(elem_id="rag-filter-error")
                suggestions = gr.Dataset(components=[question], samples=[],
                                         label="Examples from this collection",
                                         elem_id="rag-examples")
            with gr.Column(scale=2, elem_id="rag-sources-col"):
                gr.Markdown("### Sources")
                sources = gr.HTML(sources_html([]), elem_id="rag-sources")
        with gr.Tab("Articles"):
            files = gr.File(label="Add articles (.txt .md .html .json .jsonl .pdf .docx)",
                            file_count="multiple", type="filepath",
                            file_types=[".txt", ".md", ".markdown", ".html", ".htm", ".json",
                                        ".jsonl", ".pdf", ".docx"], elem_id="rag-upload")
            add = gr.Button("Add to the collection", variant="primary", elem_id="rag-add")
            outcome = gr.Markdown(elem_id="rag-upload-outcome")
            table = gr.Dataframe(headers=ARTICLE_HEADERS, interactive=False, wrap=True,
                                 column_widths=["16%", "40%", "20%", "13%", "11%"],
                                 elem_id="rag-articles")
            with gr.Row():
                picked = gr.Dropdown(label="Article", choices=[], elem_id="rag-pick")
                remove = gr.Button("Remove", variant="stop", elem_id="rag-remove")
            from ui.chat_sources import add_sources_section, feed_rows

            lists = [table, picked, pick_sources]
            feeds = add_sources_section(service, [*lists, status, suggestions], collection,
                                        lambda name: _page(service, name))

        def page_for(state: Any, name: str | None) -> tuple[Any, ...]:
            """Everything that depends on the conversation and the collection."""
            chosen = chosen_collection(service, name)
            loaded = chat_state.load(state)
            conversation = chat_state.current(loaded)
            return (loaded, chat_messages(conversation), last_sources(conversation),
                    gr.Radio(choices=chat_state.choices(loaded), value=loaded["current"]),
                    conversation["title"],
                    gr.Dropdown(choices=_collections(service), value=chosen),
                    *_page(service, chosen), feed_rows(service))

        def respond(text: str, state: Any, chosen: list[str] | None, low: str | None,
                    high: str | None, name: str | None) -> Iterator[tuple[Any, ...]]:
            loaded = chat_state.load(state)
            conversation = chat_state.current(loaded)
            target = chosen_collection(service, name)
            for messages, panel, turns, box, problem in _respond(
                    service, text, conversation, (chosen, low, high), target):
                loaded = chat_state.save_turns(loaded, turns["turns"], budget)
                yield (messages, panel, loaded, box, problem,
                       gr.Radio(choices=chat_state.choices(loaded), value=loaded["current"]),
                       chat_state.current(loaded)["title"])

        def select(state: Any, evt: gr.SelectData) -> str:
            index = evt.index[0] if isinstance(evt.index, list) else evt.index
            conversation = chat_state.current(chat_state.load(state))
            return turn_sources(conversation, index if isinstance(index, int) else -1)

        def conversation_view(loaded: dict[str, Any]) -> tuple[Any, ...]:
            conversation = chat_state.current(loaded)
            return (loaded, chat_messages(conversation), last_sources(conversation),
                    gr.Radio(choices=chat_state.choices(loaded), value=loaded["current"]),
                    conversation["title"])

        def ingest(paths: list[str] | None, name: str | None, request: gr.Request,
                   progress: gr.Progress = _PROGRESS) -> tuple[Any, ...]:
            chosen = chosen_collection(service, name)
            if not paths:
                return ("Choose files first.", None, *_page(service, chosen))
            client = client_cookie(request.headers.get("cookie", ""))
            text = _ingest_uploads(service, uploads, demo, paths, client, progress, chosen)
            return (text, None, *_page(service, chosen))

        def drop(article_id: str | None, name: str | None) -> tuple[Any, ...]:
            chosen = chosen_collection(service, name)
            if not article_id:
                return ("Pick an article first.", *_page(service, chosen))
            try:
                done = service.remove(article_id, chosen)
            except CollectionNotFound:
                done = False
            text = "Removed." if done else "That article was already gone."
            return (text, *_page(service, chosen))

        view = [saved, chatbot, sources, chats, title]
        page = [*lists, status, suggestions]
        chat_out = [chatbot, sources, saved, question, filter_error, chats, title]
        for event in (question.submit, ask.click):
            event(respond, [question, saved, pick_sources, since, until, collection],
                  chat_out, concurrency_limit=CHAT_CONCURRENCY)
        for box in (since, until):
            box.change(filter_message, [since, until], [filter_error], show_progress="hidden")
        chatbot.select(select, [saved], [sources])
        new_chat.click(lambda s: conversation_view(chat_state.new(chat_state.load(s))),
                       [saved], view)
        chats.input(lambda s, c: conversation_view(chat_state.switch(chat_state.load(s), c)),
                    [saved, chats], view)
        rename.click(lambda s, t: conversation_view(chat_state.rename(chat_state.load(s), t)),
                     [saved, title], view)
        delete.click(lambda s: conversation_view(chat_state.delete(chat_state.load(s))),
                     [saved], view)
        collection.input(lambda name: _page(service, chosen_collection(service, name)),
                         [collection], page)
        suggestions.click(lambda sample: sample[0] if sample else "", [suggestions],
                          [question])
        add.click(ingest, [files, collection], [outcome, files, *page])
        remove.click(drop, [picked, collection], [outcome, *page])
        demo.load(page_for, [saved, collection], [*view, collection, *page, feeds])
    blocks: gr.Blocks = demo
    return blocks


def _page(service: ArticleService, collection: str) -> tuple[Any, ...]:
    """The lists, header and examples of a collection."""
    return (*_articles(service, collection), header(service, collection),
            examples(service, collection))


def _ingest_uploads(service: ArticleService, uploads: UploadRegistry, demo: gr.Blocks,
                    paths: list[str], client: str | None, progress: gr.Progress,
                    collection: str | None = None) -> str:
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

    job = service.submit_files([(Path(p).name, Path(p)) for p in mine], collection,
                               cleanup=forget)
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
