"""The chat's Articles tab in a real browser: adding a web page and a PDF by URL, following a
feed and seeing its status, and a PDF answer whose source names its page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from index.embedder import MiniLMEmbedder
from tests.browser_helpers import ask, launch_chromium, wait_until_ready
from tests.server_fixtures import serve_components, settings_for
from tests.web_site import Site, article_site, rss

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    server = article_site(tmp_path)
    yield server
    server.stop()


def test_urls_and_feeds_from_the_articles_tab(browser: Browser, site: Site, tmp_path: Path,
                                              embedder: MiniLMEmbedder) -> None:
    site.pages["/feed.rss"] = ("application/rss+xml", rss(site.base, [
        ("tram", "/news/tram", "Night trams return to Varsa")]))
    server = serve_components(settings_for(tmp_path / "data", fetch_allow_private=True,
                                           fetch_timeout=5), embedder)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(
            (server.url, "data:", "blob:")) else outside.append(r.url))
        page.goto(server.url + "/")
        wait_until_ready(page)
        page.get_by_role("tab", name="Articles").click()

        page.locator("#rag-urls textarea").fill(
            f"{site.base}/news/bridge\n{site.base}/papers/harbour.pdf\n{site.base}/missing")
        page.locator("#rag-add-urls").click()
        shown = page.locator("#rag-url-outcome")
        expect(shown).to_contain_text("2 added", timeout=120_000)
        expect(shown).to_contain_text("HTTP 404")
        expect(shown).to_contain_text(f"{site.base}/missing: failed")  # shown as typed
        expect(page.locator("#rag-articles")).to_contain_text("Varsa opens its new bridge")
        expect(page.locator("#rag-articles")).to_contain_text("Harbour report")

        page.locator("#rag-feed-url textarea, #rag-feed-url input").first.fill(
            f"{site.base}/feed.rss")
        page.locator("#rag-follow").click()
        expect(page.locator("#rag-feed-outcome")).to_contain_text("1 added", timeout=120_000)
        feeds = page.locator("#rag-feeds")
        expect(feeds).to_contain_text(f"{site.base}/feed.rss")
        expect(feeds).to_contain_text("Varsa Daily")
        expect(feeds).to_contain_text("ok")
        page.screenshot(path=str(tmp_path / "articles-tab.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'articles-tab.png'}")

        page.get_by_role("tab", name="Chat").click()
        ask(page, "Who is the new harbour master of Port Elmwood?")
        expect(page.locator("#rag-chatbot")).to_contain_text("Oona Reyes", timeout=60_000)
        source = page.locator("#rag-sources .rag-source").first
        expect(source).to_contain_text("Harbour report")
        expect(source).to_contain_text("page 2")
        expect(source.locator("a")).to_have_attribute("href", f"{site.base}/papers/harbour.pdf")
        page.wait_for_timeout(500)
        page.screenshot(path=str(tmp_path / "pdf-answer.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'pdf-answer.png'}")
        assert outside == []
        page.close()
    finally:
        server.stop()
