"""URLs and feeds through a real `rag serve`: the API routes, the chat's handlers (real
Gradio queue calls), the interval refresh, and fetching that holds up no question and no
other write. The pages come from a real HTTP server on 127.0.0.1 (so fetching from private
addresses is allowed here; test_attack_fetch.py runs with the guard on)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import SAMPLE_DIR, RagServe, gradio_call, rag_env, run_rag
from tests.web_site import Site, article_site, atom, rss

FEED_MINUTES = 0.03  # the interval refresh: about every 2 seconds


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = article_site(tmp_path_factory.mktemp("site"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServe]:
    root = tmp_path_factory.mktemp("web-serve")
    assert run_rag("-q", "ingest", str(SAMPLE_DIR), env=rag_env(root / "data")).returncode == 0
    server = RagServe(root / "data", root / "serve.log", RAG_FETCH_ALLOW_PRIVATE="1",
                      RAG_FETCH_TIMEOUT="3", RAG_FEED_INTERVAL_MINUTES=str(FEED_MINUTES))
    yield server.start()
    server.stop()


def post(server: RagServe, path: str, body: dict[str, Any], wait: float = 120,
         expect: int = 200) -> dict[str, Any]:
    response = httpx.post(f"{server.url}{path}", params={"wait": wait}, json=body,
                          timeout=wait + 60)
    assert response.status_code == expect, response.text
    found: dict[str, Any] = response.json()
    return found


def outcome(message: dict[str, Any]) -> str:
    output = message["output"]
    assert isinstance(output, dict) and message.get("success"), message
    return str(output["data"][0]).replace("\\", "")


def test_urls_route_gives_each_url_its_own_outcome(served: RagServe, site: Site) -> None:
    urls = [f"{site.base}/news/bridge", f"{site.base}/papers/harbour.pdf",
            f"{site.base}/slow", "file:///etc/passwd", f"{site.base}/image.png"]
    job = post(served, "/api/articles/urls", {"urls": urls, "collection": "web"})
    assert job["status"] == "done"
    result = job["result"]
    statuses = {f["name"]: (f["status"], " ".join(f["errors"])) for f in result["files"]}
    assert statuses[urls[0]][0] == statuses[urls[1]][0] == "ok"
    assert statuses[urls[2]][0] == "failed" and "timed out" in statuses[urls[2]][1]
    assert "only http and https" in statuses[urls[3]][1]
    assert "image/png" in statuses[urls[4]][1]
    assert (result["added"], result["failed"]) == (2, 3)
    again = post(served, "/api/articles/urls", {"urls": [f"{site.base}/hop/2"],
                                                "collection": "web"})["result"]
    assert (again["added"], again["unchanged"]) == (0, 1)  # the same page, by its identity
    answer = httpx.post(f"{served.url}/api/query", timeout=60, json={
        "question": "Who is the new harbour master of Port Elmwood?",
        "collection": "web"}).json()
    [citation] = answer["citations"]
    assert citation["page"] == 2 and citation["url"] == urls[1]


def test_a_slow_site_holds_up_neither_questions_nor_other_writes(served: RagServe,
                                                                 site: Site) -> None:
    slow = post(served, "/api/articles/urls", {"urls": [f"{site.base}/slow"],
                                               "collection": "slow"}, wait=0, expect=202)
    assert "fetching" in slow["note"] or slow["status"] == "queued"
    started = time.monotonic()
    record = post(served, "/api/articles", {"collection": "slow", "records": [
        {"id": "quick", "text": "The Varsa library opens on Sundays from June."}]}, wait=60)
    upload_seconds = time.monotonic() - started
    question_started = time.monotonic()
    asked = httpx.post(f"{served.url}/api/query", json={"question": "Who called the Security "
                       "Council meeting about Aleppo?"}, timeout=60)
    question_seconds = time.monotonic() - question_started
    assert asked.status_code == 200 and asked.json()["citations"]
    fetched = httpx.get(f"{served.url}{slow['url']}", timeout=10).json()
    print(f"\nupload behind a slow fetch: {upload_seconds:.2f} s; question "
          f"{question_seconds:.2f} s")
    assert record["status"] == "done" and fetched["status"] in ("queued", "running")
    while fetched["status"] not in ("done", "failed"):
        time.sleep(0.2)
        fetched = httpx.get(f"{served.url}{slow['url']}", timeout=10).json()
    assert fetched["finished_at"] > record["finished_at"]  # the later write finished first
    assert "timed out" in fetched["result"]["files"][0]["errors"][0]


def test_a_feed_is_followed_then_refreshed_on_the_interval(served: RagServe,
                                                           site: Site) -> None:
    site.pages["/server.rss"] = ("application/rss+xml", rss(site.base, [
        ("bridge", "/news/bridge", "Varsa opens its new bridge")]))
    job = post(served, "/api/feeds", {"url": f"{site.base}/server.rss", "collection": "feeds"})
    [feed] = job["result"]["feeds"]
    assert (feed["status"], feed["articles"], job["result"]["added"]) == ("ok", 1, 1)
    site.pages["/server.rss"] = ("application/rss+xml", rss(site.base, [
        ("tram", "/news/tram", "Night trams return"),
        ("bridge", "/news/bridge", "Varsa opens its new bridge")]))
    deadline = time.monotonic() + 90
    slowest = 0.0
    while True:  # the interval refresh picks the new entry up; questions stay quick
        started = time.monotonic()
        assert httpx.post(f"{served.url}/api/query", timeout=60,
                          json={"question": "When do night trams return?"}).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        listed = httpx.get(f"{served.url}/api/feeds", params={"collection": "feeds"},
                           timeout=10).json()["feeds"]
        if listed[0]["articles"] == 2:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.5)
    print(f"\nslowest question while feeds refreshed: {slowest:.2f} s")
    assert listed[0]["status"] == "ok" and listed[0]["last_checked"]
    answer = httpx.post(f"{served.url}/api/query", timeout=60, json={
        "question": "When do night trams return to Varsa?", "collection": "feeds"}).json()
    assert answer["citations"][0]["url"] == f"{site.base}/news/tram"
    gone = httpx.delete(f"{served.url}/api/feeds", timeout=60, params={
        "url": f"{site.base}/server.rss", "collection": "feeds"})
    assert gone.status_code == 200 and gone.json()["removed"] is True
    again = httpx.delete(f"{served.url}/api/feeds", timeout=60, params={
        "url": f"{site.base}/server.rss", "collection": "feeds"})
    assert again.status_code == 404


def test_a_page_that_is_no_feed_is_refused_by_the_api(served: RagServe, site: Site) -> None:
    refused = post(served, "/api/feeds", {"url": f"{site.base}/news/bridge"}, expect=422)
    assert refused["error"]["code"] == "not_a_feed"
    assert f"{site.base}/news/bridge" in refused["error"]["message"]
    feeds = httpx.get(f"{served.url}/api/feeds", timeout=10).json()["feeds"]
    assert f"{site.base}/news/bridge" not in {f["url"] for f in feeds}


def test_the_chat_adds_by_url_and_follows_and_refreshes_feeds(served: RagServe,
                                                              site: Site) -> None:
    shown = outcome(gradio_call(served.url, "fetch_urls", [
        f"{site.base}/news/tram\n{site.base}/missing\n", None]))
    assert "1 added" in shown and "HTTP 404" in shown
    assert f"`{site.base}/news/tram`: ok" in shown
    site.pages["/chat.atom"] = ("application/atom+xml", atom(site.base, [
        ("urn:chat:1", "Ferry", "<p>" + "The ferry sails at noon every day. " * 40 + "</p>")]))
    followed = outcome(gradio_call(served.url, "follow_feed", [f"{site.base}/chat.atom", None]))
    assert "1 added" in followed and "feed ok" in followed
    refreshed = outcome(gradio_call(served.url, "refresh_all", [None]))
    assert "feed ok" in refreshed
    empty = outcome(gradio_call(served.url, "fetch_urls", ["", None]))
    assert "Give one or more URLs" in empty


def test_web_sources_leave_the_data_folder_tidy(served: RagServe) -> None:
    data = Path(served.env["RAG_DATA_DIR"])
    assert (data / "feeds.json").is_file()
    assert not list(data.glob(".feeds-*"))  # no half-written feed lists left behind
