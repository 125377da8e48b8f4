"""A hostile article in the real chat: no HTML from it renders, no script runs, and its fake
[n] markers do not become citations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from index.embedder import MiniLMEmbedder
from tests.browser_helpers import ask, launch_chromium, wait_until_ready
from tests.server_fixtures import serve_components, settings_for
from tests.test_hostile_articles import HOSTILE, QUESTION

pytestmark = pytest.mark.browser

# The planted text also tries to run script through the page's own globals.
SCRIPTED = HOSTILE.replace('document.title = "owned"', "window.__pwned = 1").replace(
    'onerror="alert(1)"', 'onerror="window.__pwned = 1"')


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Browser]:
    """Debian's chromium, never a downloaded one."""
    yield from launch_chromium()


def test_hostile_article_renders_no_html_runs_no_script_and_fakes_no_citation(
        chromium_browser: Browser, tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    assert SCRIPTED.count("window.__pwned") == 2
    server = serve_components(settings_for(tmp_path / "data"), embedder)
    page = chromium_browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(server.url + "/")
        wait_until_ready(page)
        article = tmp_path / "harbour.txt"
        article.write_text(SCRIPTED, encoding="utf-8")
        page.get_by_role("tab", name="Articles").click()
        page.locator("#rag-upload input[type=file]").set_input_files(str(article))
        page.locator("#rag-add").click()
        expect(page.locator("#rag-upload-outcome")).to_contain_text("1 added", timeout=90_000)

        page.get_by_role("tab", name="Chat").click()
        ask(page, QUESTION)
        chat = page.locator("#rag-chatbot")
        expect(chat).to_contain_text("breakwater", timeout=90_000)
        expect(page.locator("#rag-sources .rag-source").first).to_be_visible()
        page.wait_for_timeout(1000)  # let the last streamed update settle

        # Planted HTML is shown as text and never becomes elements; nothing ran.
        expect(page.locator("#rag-sources")).to_contain_text("<script>")
        assert page.evaluate("window.__pwned") is None
        assert page.title() != "owned"
        assert dialogs == []
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("#rag-chatbot b, #rag-sources b").count() == 0
        assert page.locator("script:has-text('__pwned')").count() == 0

        # Each [n] in the answer is a listed source; the article's [2], [3], [4], [9] are not.
        answer = chat.locator(".message").last.inner_text()
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer)}
        shown = page.locator("#rag-sources .rag-source").count()
        assert markers and markers == set(range(1, shown + 1)), (answer, shown)
        page.screenshot(path=str(tmp_path / "hostile-chat.png"), full_page=True)
    finally:
        page.close()
        server.stop()
