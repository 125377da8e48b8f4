"""Driving the chat in Debian's chromium through Playwright (never a downloaded browser)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

from playwright.sync_api import Browser, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def launch_chromium() -> Iterator[Browser]:
    """The system chromium, headless; for a module-scoped fixture."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (make browser)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=ARGS)
        yield browser
        browser.close()


def wait_until_ready(page: Page) -> None:
    """The question box is on screen and the page has finished loading its scripts."""
    expect(page.locator("#rag-question textarea")).to_be_visible(timeout=60_000)
    page.wait_for_load_state("networkidle", timeout=60_000)


def open_page(browser: Browser, url: str, width: int = 1366,
              height: int = 900) -> tuple[Page, list[str]]:
    """A page on the chat at ``url``, ready, and the list of every request it makes
    elsewhere (the chat must work offline: tests assert it stays empty)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:"))
            else outside.append(r.url))
    page.goto(url + "/")
    wait_until_ready(page)
    return page, outside


def ask(page: Page, question: str) -> None:
    """Type a question and send it; wait until the chat shows it was taken.

    On a cold page the first Enter can reach the app before its input is wired to the
    textbox (the chat then receives an empty question); sending once more is what a person
    would do, and the test still fails if the question never appears.
    """
    box = page.locator("#rag-question textarea")
    chat = page.locator("#rag-chatbot")
    for attempt in range(2):
        box.fill(question)
        box.press("Enter")
        try:
            expect(chat).to_contain_text(question[:40], timeout=20_000)
            return
        except (AssertionError, PlaywrightTimeout):
            if attempt:
                raise
