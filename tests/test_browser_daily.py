"""The chat and the API docs as a daily user meets them, in Debian's chromium (Playwright).

Each test saves a screenshot under its tmp path (printed), of what it asserts: the docs
listing the operations, several conversations, the collection picker and header, a clicked
citation, a date refused next to its box, a Markdown upload shown as text, examples from the
collection, the Articles table at 1366 px, and the sources on a phone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from index.embedder import MiniLMEmbedder
from tests.browser_helpers import ask, launch_chromium, open_page, wait_until_ready
from tests.server_fixtures import (
    API_KEY,
    SAMPLE_ARTICLES,
    SAMPLE_QUESTION,
    LiveServer,
    serve_components,
    settings_for,
)
from ui.service import ArticleService
from ui.wiring import build

pytestmark = pytest.mark.browser

BEES = ("Bees return to Varsa's rooftops\n\nThe beekeepers' guild of Varsa said on Tuesday that "
        "forty hives now stand on the city's rooftops, twice as many as last year. Guild "
        "chair Ilse Marren said the bees pollinate the parks along the river.")
MARKDOWN = """# Ferry news from Port Elmwood

## Timetable

The **harbour master** of Port Elmwood said the *new ferry* to Grey Island will start \
sailing on Monday after two years of delays.

* Each ferry will carry 300 passengers a day, [the harbour office](https://example.org) added.
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def two_collections(tmp_path_factory: pytest.TempPathFactory,
                    embedder: MiniLMEmbedder) -> Iterator[LiveServer]:
    """A server whose store holds the sample article ('articles') and a bees story
    ('bees')."""
    data = tmp_path_factory.mktemp("daily") / "data"
    settings = settings_for(data)
    service = ArticleService(build(settings, embedder=embedder))
    service.ingest_files([(p.name, p) for p in SAMPLE_ARTICLES.iterdir()])
    service.ingest_records([{"id": "bees", "title": "Bees return to Varsa's rooftops",
                             "text": BEES, "source": "varsa.example",
                             "published": "2024-05-02"}], collection="bees")
    server = serve_components(settings, embedder)
    yield server
    server.stop()


def shot(page: Page, tmp_path: Path, name: str, full: bool = True) -> None:
    page.wait_for_timeout(500)  # let the last update settle before the picture
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full)
    print(f"screenshot: {path}")


# 1 -------------------------------------------------------------------------------------------

def test_docs_render_openapi_31_and_list_the_operations(browser: Browser, tmp_path: Path,
                                                        secured_server: LiveServer) -> None:
    """Swagger UI 5 from the package renders FastAPI's 3.1 schema, offline, behind the key
    (given as the password of the browser's login prompt)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900},
                                  http_credentials={"username": "me", "password": API_KEY})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(secured_server.url)
            else outside.append(r.url))
    page.goto(secured_server.url + "/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=30_000)
    shown = set(operations.all_inner_texts())
    assert {"/api/query", "/api/query/stream", "/api/articles", "/api/health",
            "/v1/chat/completions"} <= {s.replace("\u200b", "") for s in shown}
    expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    expect(page.locator(".version-stamp, .version")).not_to_have_count(0)
    shot(page, tmp_path, "docs.png", full=False)
    assert outside == []
    context.close()


# 2 -------------------------------------------------------------------------------------------

def test_several_conversations_new_switch_rename_delete_and_kept(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, outside = open_page(browser, two_collections.url)
    chats = page.locator("#rag-chats")
    ask(page, SAMPLE_QUESTION)
    expect(page.locator("#rag-chatbot")).to_contain_text("barbarism", timeout=60_000)
    expect(chats).to_contain_text(SAMPLE_QUESTION[:40])

    page.locator("#rag-new-chat").click()
    expect(page.locator("#rag-chatbot")).not_to_contain_text("barbarism")
    ask(page, "Who brokered the ceasefire?")
    expect(page.locator("#rag-chatbot")).to_contain_text("Moscow and Washington",
                                                         timeout=60_000)
    expect(chats.locator("label")).to_have_count(2)

    chats.get_by_text(SAMPLE_QUESTION[:30]).click()  # back to the first conversation
    expect(page.locator("#rag-chatbot")).to_contain_text("barbarism")
    expect(page.locator("#rag-chatbot")).not_to_contain_text("Moscow and Washington")
    page.locator("#rag-chat-title textarea, #rag-chat-title input").first.fill("Aleppo, UN")
    page.locator("#rag-rename").click()
    expect(chats).to_contain_text("Aleppo, UN")

    page.reload()  # kept in the browser
    wait_until_ready(page)
    expect(chats).to_contain_text("Aleppo, UN", timeout=30_000)
    expect(chats.locator("label")).to_have_count(2)
    expect(page.locator("#rag-chatbot")).to_contain_text("barbarism")
    shot(page, tmp_path, "conversations.png")

    page.locator("#rag-delete").click()
    expect(chats.locator("label")).to_have_count(1)
    expect(chats).not_to_contain_text("Aleppo, UN")
    expect(page.locator("#rag-chatbot")).to_contain_text("Moscow and Washington")
    assert outside == []
    page.close()


# 3, 7 ----------------------------------------------------------------------------------------

def test_collection_picker_header_and_examples_from_the_collection(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, outside = open_page(browser, two_collections.url)
    header = page.locator("#rag-header")
    expect(header).to_contain_text("Collection: articles")
    expect(header).to_contain_text("1 article")
    expect(header).to_contain_text("extractive (offline)")
    expect(header).to_contain_text("all-MiniLM-L6-v2")
    examples = page.locator("#rag-examples")
    expect(examples).to_contain_text("Syria: UN pressures Russia")

    page.locator("#rag-collection input").click()
    page.get_by_role("option", name="bees").click()
    expect(header).to_contain_text("Collection: bees", timeout=20_000)
    expect(examples).to_contain_text("Bees return to Varsa")
    expect(examples).not_to_contain_text("Syria")
    examples.get_by_text("Bees return to Varsa").click()  # an example fills the box
    box = page.locator("#rag-question textarea")
    expect(box).to_have_value("What happened in “Bees return to Varsa's rooftops”?")
    ask(page, "Who chairs the beekeepers' guild of Varsa?")
    expect(page.locator("#rag-chatbot")).to_contain_text("Ilse Marren", timeout=60_000)
    expect(page.locator("#rag-sources")).to_contain_text("varsa.example")
    shot(page, tmp_path, "collections.png")
    assert outside == []
    page.close()


# 4 -------------------------------------------------------------------------------------------

def test_clicking_a_citation_selects_its_source_and_shows_the_sentence(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, _ = open_page(browser, two_collections.url, height=700)
    ask(page, "Who brokered the ceasefire?")
    chat = page.locator("#rag-chatbot")
    expect(chat).to_contain_text("Moscow and Washington", timeout=60_000)
    expect(chat.locator("strong").first).to_contain_text("Moscow and Washington")  # short
    ask(page, "Who won the 2018 FIFA World Cup?")  # an abstention says why
    expect(chat).to_contain_text("Why:", timeout=60_000)
    expect(page.locator("#rag-sources")).not_to_contain_text("Moscow and Washington")

    chat.locator('a[href^="#rag-cite-1-"]').first.click()  # [1] of the first answer
    selected = page.locator("#rag-sources .rag-source.rag-selected")
    expect(selected).to_have_count(1, timeout=10_000)
    expect(selected).to_contain_text("[1] Syria: UN pressures Russia")
    sentence = selected.locator("mark").first
    expect(sentence).to_contain_text("The ceasefire was brokered")
    expect(sentence).to_be_in_viewport()
    shot(page, tmp_path, "citation-click.png", full=False)
    page.close()


# 5 -------------------------------------------------------------------------------------------

def test_an_impossible_date_is_refused_next_to_its_box(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, _ = open_page(browser, two_collections.url)
    page.locator("#rag-filter-from input, #rag-filter-from textarea").first.fill("2025-13-45")
    message = page.locator("#rag-filter-error")
    expect(message).to_contain_text("not a date on the calendar", timeout=10_000)
    expect(message).to_contain_text("Published from")
    page.locator("#rag-question textarea").fill(SAMPLE_QUESTION)
    page.locator("#rag-ask").click()
    page.wait_for_timeout(2000)
    expect(page.locator("#rag-chatbot .message")).to_have_count(0)  # not asked, no abstention
    expect(page.locator("#rag-question textarea")).to_have_value(SAMPLE_QUESTION)
    box, shown = (page.locator("#rag-filter-from").bounding_box(), message.bounding_box())
    assert box and shown and 0 <= shown["y"] - (box["y"] + box["height"]) < 150  # beside it
    shot(page, tmp_path, "filter-date.png")
    page.locator("#rag-filter-from input, #rag-filter-from textarea").first.fill("2016-01-01")
    expect(message).not_to_contain_text("not a date")
    page.close()


# 6, 9 ----------------------------------------------------------------------------------------

def test_markdown_upload_is_text_its_source_a_file_name_and_the_table_fits(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, outside = open_page(browser, two_collections.url)
    article = tmp_path / "ferry.md"
    article.write_text(MARKDOWN, encoding="utf-8")
    page.get_by_role("tab", name="Articles").click()
    page.locator("#rag-upload input[type=file]").set_input_files(str(article))
    page.locator("#rag-add").click()
    expect(page.locator("#rag-upload-outcome")).to_contain_text("1 added", timeout=90_000)
    table = page.locator("#rag-articles")
    expect(table).to_contain_text("Ferry news from Port Elmwood")
    expect(table).to_contain_text("ferry.md")
    expect(table).not_to_contain_text(str(tmp_path))
    for name in ("id", "title", "source", "published", "passages"):  # every column shows
        head = table.locator("th", has_text=name).first
        expect(head).to_be_in_viewport()
        right = head.bounding_box()
        assert right and right["x"] + right["width"] <= 1366, name
    shot(page, tmp_path, "articles-1366.png", full=False)

    page.get_by_role("tab", name="Chat").click()
    page.locator("#rag-filter-sources input").click()
    expect(page.get_by_role("option", name="ferry.md")).to_be_visible(timeout=10_000)
    page.keyboard.press("Escape")
    ask(page, "When will the new ferry of Port Elmwood start sailing?")
    expect(page.locator("#rag-chatbot")).to_contain_text("Monday", timeout=60_000)
    source = page.locator("#rag-sources .rag-source").first
    expect(source).to_contain_text("ferry.md")
    passage = source.locator(".rag-passage").inner_text()
    assert "harbour master" in passage and "new ferry" in passage
    assert "#" not in passage and "*" not in passage and "](" not in passage, passage
    shot(page, tmp_path, "markdown-as-text.png")
    assert outside == []
    page.close()


def test_on_a_phone_the_sources_come_right_after_the_question(
        browser: Browser, two_collections: LiveServer, tmp_path: Path) -> None:
    page, _ = open_page(browser, two_collections.url, width=390, height=844)
    expect(page.locator("#rag-sidebar.open")).to_have_count(0, timeout=20_000)  # not over it
    ask(page, SAMPLE_QUESTION)
    expect(page.locator("#rag-chatbot")).to_contain_text("barbarism", timeout=60_000)
    boxes = {name: page.locator(f"#{name}").bounding_box()
             for name in ("rag-chatbot", "rag-question", "rag-sources", "rag-filters")}
    assert all(boxes.values()), boxes
    chat, sources, filters = boxes["rag-chatbot"], boxes["rag-sources"], boxes["rag-filters"]
    assert chat and sources and filters
    assert sources["y"] < filters["y"]  # before the filter row and the examples
    # Reachable in about one screen of scrolling past the chat's own height.
    assert sources["y"] - (chat["y"] + chat["height"]) < 844 * 0.6, boxes
    page.locator('#rag-chatbot a[href^="#rag-cite-1-"]').first.click()  # or by its [1]
    expect(page.locator("#rag-sources .rag-selected mark").first).to_be_in_viewport(
        timeout=10_000)
    shot(page, tmp_path, "phone.png")
    page.close()
