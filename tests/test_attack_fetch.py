"""Attacks on the server's fetching, against a real `rag serve` as most people run it (the
guard on): server-side request forgery through the API, the chat and feeds (loopback,
metadata addresses, redirects, other schemes), and too many or too long URLs. The target is
a real HTTP server on 127.0.0.1 that records every request it gets: a refused URL must
never reach it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import SAMPLE_DIR, RagServe, gradio_call, rag_env, run_rag
from tests.web_site import Site, article_site, rss


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = article_site(tmp_path_factory.mktemp("site"))
    server.pages["/feed.rss"] = ("application/rss+xml", rss(server.base, [
        ("a", "/news/bridge", "Varsa opens its new bridge")]))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServe]:
    """`rag serve` with default settings: fetching from private addresses refused."""
    root = tmp_path_factory.mktemp("attack-fetch")
    assert run_rag("-q", "ingest", str(SAMPLE_DIR), env=rag_env(root / "data")).returncode == 0
    server = RagServe(root / "data", root / "serve.log", RAG_MAX_UPLOAD_FILES="5")
    yield server.start()
    server.stop()


def add_urls(server: RagServe, urls: list[str], **extra: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/api/articles/urls", params={"wait": 60}, timeout=120,
                      json={"urls": urls, "collection": "ssrf"}, **extra)


def test_api_refuses_to_fetch_from_loopback_metadata_and_private_addresses(
        guarded: RagServe, site: Site) -> None:
    before = len(site.requests)
    urls = [f"{site.base}/news/bridge", f"http://localhost:{site.port}/news/bridge",
            f"http://2130706433:{site.port}/news/bridge", f"http://[::1]:{guarded.port}/",
            f"{guarded.url}/api/health",  # the server itself
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/"]
    for start in range(0, len(urls), 5):
        response = add_urls(guarded, urls[start:start + 5])
        assert response.status_code == 200, response.text
        for outcome in response.json()["result"]["files"]:
            assert outcome["status"] == "failed", outcome
            assert "refused" in outcome["errors"][0] and "RAG_FETCH_ALLOW_PRIVATE" in \
                outcome["errors"][0], outcome
    assert len(site.requests) == before  # nothing reached the target
    listed = httpx.get(f"{guarded.url}/api/articles", params={"collection": "ssrf"})
    assert listed.status_code in (200, 404) and not listed.json().get("articles")


def test_other_schemes_and_ports_are_refused(guarded: RagServe) -> None:
    response = add_urls(guarded, ["file:///etc/passwd", "gopher://127.0.0.1:6379/_FLUSHALL",
                                  "dict://127.0.0.1:11211/stats", "http://127.0.0.1:25/",
                                  "ftp://example.org/x"])
    errors = [o["errors"][0] for o in response.json()["result"]["files"]]
    assert all("only http and https" in e or "not a web port" in e for e in errors), errors
    assert not any("root:" in e for e in errors)


def test_a_feed_on_loopback_is_refused_and_not_followed(guarded: RagServe, site: Site) -> None:
    before = len(site.requests)
    refused = httpx.post(f"{guarded.url}/api/feeds", params={"wait": 60}, timeout=90,
                         json={"url": f"{site.base}/feed.rss"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "url_refused"
    scheme = httpx.post(f"{guarded.url}/api/feeds", timeout=30,
                        json={"url": "file:///etc/passwd"})
    assert scheme.status_code == 422 and scheme.json()["error"]["code"] == "url_refused"
    assert httpx.get(f"{guarded.url}/api/feeds", timeout=10).json()["feeds"] == []
    assert len(site.requests) == before


def test_the_chat_refuses_the_same_urls(guarded: RagServe, site: Site) -> None:
    before = len(site.requests)
    message = gradio_call(guarded.url, "fetch_urls", [
        f"{site.base}/news/bridge\nhttp://169.254.169.254/latest/meta-data/", None])
    output = message["output"]
    assert isinstance(output, dict)
    shown = str(output["data"][0]).replace("\\", "")
    assert "0 added" in shown and shown.count("refused") == 2
    feed = gradio_call(guarded.url, "follow_feed", [f"{site.base}/feed.rss", None])
    assert isinstance(feed["output"], dict)
    assert "Nothing was added" in str(feed["output"]["data"][0])
    assert len(site.requests) == before


def test_too_many_or_too_long_urls_and_other_origins_are_refused(guarded: RagServe,
                                                                  site: Site) -> None:
    many = add_urls(guarded, [f"https://example.org/{n}" for n in range(6)])
    assert many.status_code == 422 and "RAG_MAX_UPLOAD_FILES" in many.text
    long = add_urls(guarded, ["https://example.org/" + "a" * 3000])
    assert long.status_code == 422
    empty = add_urls(guarded, [])
    assert empty.status_code == 422
    other = add_urls(guarded, [f"{site.base}/news/bridge"],
                     headers={"Origin": "http://evil.example"})
    assert other.status_code == 403
    refresh = httpx.post(f"{guarded.url}/api/feeds/refresh", timeout=30,
                         headers={"Origin": "http://evil.example"})
    assert refresh.status_code == 403
