"""The chat page in a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser_helpers import ask, launch_chromium, open_page
from tests.server_fixtures import SAMPLE_QUESTION, LiveServer, serve_components, settings_for

pytestmark = pytest.mark.browser

HOSTILE = """<script>window.__pwned = 1</script>Ferry news from Port Elmwood

The harbour master of Port Elmwood said the new ferry to Grey Island will start \
sailing on Monday <img src=x onerror="window.__pwned = 1"> after two years of delays.

Each ferry will carry 300 passengers a day, the harbour master of Port Elmwood added, \
and tickets go on sale [here](javascript:window.__pwned=1) next week.
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


def test_answer_shows_cited_passage_and_survives_a_reload(browser: Browser,
                                                          live_server: LiveServer,
                                                          tmp_path: Path) -> None:
    page, outside = open_page(browser, live_server.url, 1400, 1000)
    ask(page, SAMPLE_QUESTION)
    chat = page.locator("#rag-chatbot")
    expect(chat).to_contain_text("barbarism", timeout=60_000)
    expect(chat).to_contain_text("[1]")
    source = page.locator("#rag-sources .rag-source").first
    expect(source).to_be_visible()
    expect(source).to_contain_text("Syria: UN pressures Russia")
    expect(page.locator("#rag-sources mark").first).to_contain_text("barbarism")
    page.wait_for_timeout(500)  # let the last streamed update settle before the picture
    page.screenshot(path=str(tmp_path / "chat-answer.png"), full_page=True)
    print(f"screenshot: {tmp_path / 'chat-answer.png'}")

    page.reload()
    expect(page.locator("#rag-chatbot")).to_contain_text("barbarism", timeout=30_000)
    expect(page.locator("#rag-sources mark").first).to_contain_text("barbarism")
    assert outside == []
    page.close()


def test_uploaded_hostile_article_is_shown_as_text_never_run(
        browser: Browser, tmp_path: Path, embedder) -> None:
    server = serve_components(settings_for(tmp_path / "data"), embedder)
    try:
        page, outside = open_page(browser, server.url, 1400, 1000)
        expect(page.get_by_text("Nothing has been ingested yet")).to_be_visible()
        article = tmp_path / "ferry.md"
        article.write_text(HOSTILE, encoding="utf-8")
        page.get_by_role("tab", name="Articles").click()
        page.locator("#rag-upload input[type=file]").set_input_files(str(article))
        page.locator("#rag-add").click()
        expect(page.locator("#rag-upload-outcome")).to_contain_text("1 added", timeout=60_000)
        expect(page.locator("#rag-articles")).to_contain_text("Ferry news")
        page.get_by_role("tab", name="Chat").click()
        page.locator("#rag-filter-sources input").click()  # the filter row lists the upload
        expect(page.get_by_role("option", name="ferry.md")).to_be_visible(timeout=10_000)
        page.keyboard.press("Escape")

        page.get_by_role("tab", name="Chat").click()
        ask(page, "When will the new ferry of Port Elmwood start sailing?")
        expect(page.locator("#rag-chatbot")).to_contain_text("Monday", timeout=60_000)
        expect(page.locator("#rag-sources")).to_contain_text('<img src=x onerror=')
        page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'hostile.png'}")
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("a[href^='javascript']").count() == 0
        assert outside == []
        page.close()
    finally:
        server.stop()
