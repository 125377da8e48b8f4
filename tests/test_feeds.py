"""RSS and Atom feeds from a real HTTP server on 127.0.0.1: following, refreshing (a feed
that gains an entry between two refreshes), seen entries skipped, status and errors kept;
and hostile feeds (XML bombs, external entities, a body that names a local file)."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.feeds import FeedError, FeedRecord, harvest, parse_feed
from index.fetch import FetchOptions
from index.types import Article, ReadFailure
from tests.helpers import rag_env, run_rag
from tests.web_site import FERRY_TEXT, LIGHTHOUSE_TEXT, Site, article_site, atom, rss

OPEN = FetchOptions(allow_private=True, timeout=10)


@pytest.fixture()
def site(tmp_path: Path) -> Iterator[Site]:
    server = article_site(tmp_path)
    yield server
    server.stop()


def test_rss_and_atom_feeds_are_followed_refreshed_and_listed(site: Site,
                                                              tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data", RAG_FETCH_ALLOW_PRIVATE="1")
    site.pages["/feed.rss"] = ("application/rss+xml", rss(site.base, [
        ("bridge-1", "/news/bridge", "Varsa opens its new bridge")]))
    site.pages["/feed.atom"] = ("application/atom+xml", atom(site.base, [
        ("urn:gazette:ferry", "Hourly ferry this summer", FERRY_TEXT)]))
    added = run_rag("feeds", "add", f"{site.base}/feed.rss", env=env)
    assert added.returncode == 0, added.stderr
    assert "1 added" in added.stdout and f"{site.base}/feed.rss: ok" in added.stdout
    added = run_rag("-q", "feeds", "add", f"{site.base}/feed.atom", env=env)
    assert added.returncode == 0 and "1 added" in added.stdout, added.stderr
    assert not any(r.startswith("/atom/") for r in site.requests)  # full text: no fetch

    # Both feeds gain an entry; a refresh ingests only the new ones.
    site.pages["/feed.rss"] = ("application/rss+xml", rss(site.base, [
        ("tram-2", "/news/tram", "Night trams return"),
        ("bridge-1", "/news/bridge", "Varsa opens its new bridge")]))
    site.pages["/feed.atom"] = ("application/atom+xml", atom(site.base, [
        ("urn:gazette:ferry", "Hourly ferry this summer", FERRY_TEXT),
        ("urn:gazette:lighthouse", "Lighthouse repainted", LIGHTHOUSE_TEXT)]))
    bridge_fetches = site.requests.count("/news/bridge")
    refreshed = run_rag("feeds", "refresh", env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    assert "2 added, 0 unchanged" in refreshed.stdout
    assert site.requests.count("/news/bridge") == bridge_fetches  # a seen entry is skipped
    again = run_rag("-q", "feeds", "refresh", env=env)
    assert "0 added, 0 unchanged" in again.stdout

    feeds = {f["url"]: f for f in json.loads(run_rag("feeds", "list", "--json",
                                                     env=env).stdout)}
    rss_feed, atom_feed = feeds[f"{site.base}/feed.rss"], feeds[f"{site.base}/feed.atom"]
    assert rss_feed["title"] == "Varsa Daily" and atom_feed["title"] == "Grey Island Gazette"
    assert (rss_feed["status"], rss_feed["articles"], rss_feed["entries_seen"]) == ("ok", 2, 2)
    assert (atom_feed["status"], atom_feed["articles"]) == ("ok", 2)
    assert rss_feed["last_checked"] and not rss_feed["error"]
    listed = run_rag("feeds", "list", env=env)
    assert "Grey Island Gazette" in listed.stdout and "2 feeds" in listed.stderr

    answer = json.loads(run_rag("ask", "--json", "Who repainted the Grey Island lighthouse?",
                                env=env).stdout)
    assert answer["citations"][0]["title"] == "Lighthouse repainted"
    night = json.loads(run_rag("ask", "--json", "When do night trams return to Varsa?",
                               env=env).stdout)
    assert night["citations"][0]["url"] == f"{site.base}/news/tram"


def test_a_failing_entry_is_recorded_and_tried_again_at_the_next_refresh(
        site: Site, tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data", RAG_FETCH_ALLOW_PRIVATE="1")
    site.pages["/feed.rss"] = ("application/rss+xml", rss(site.base, [
        ("gone", "/news/not-yet", "Coming soon"), ("tram", "/news/tram", "Night trams")]))
    added = run_rag("-q", "feeds", "add", f"{site.base}/feed.rss", env=env)
    assert added.returncode == 1 and "1 added" in added.stdout
    assert f"{site.base}/news/not-yet: the server answered HTTP 404" in added.stderr
    [feed] = json.loads(run_rag("feeds", "list", "--json", env=env).stdout)
    assert feed["status"] == "partial" and "1 of 2 new entries failed" in feed["error"]
    site.pages["/news/not-yet"] = site.pages["/news/tram"][0], site.pages[
        "/news/bridge"][1]
    refreshed = run_rag("-q", "feeds", "refresh", env=env)
    assert refreshed.returncode == 0 and "1 added" in refreshed.stdout, refreshed.stderr
    [feed] = json.loads(run_rag("feeds", "list", "--json", env=env).stdout)
    assert (feed["status"], feed["error"], feed["articles"]) == ("ok", "", 2)


def test_a_page_that_is_no_feed_is_refused_and_not_followed(site: Site,
                                                            tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data", RAG_FETCH_ALLOW_PRIVATE="1")
    refused = run_rag("-q", "feeds", "add", f"{site.base}/news/bridge", env=env)
    assert refused.returncode == 1
    assert "not an RSS or Atom feed" in refused.stderr and "/feed" in refused.stderr
    unreachable = run_rag("-q", "feeds", "add", f"{site.base}/feed.rss",
                          env=rag_env(tmp_path / "data"))  # the guard on: loopback refused
    assert unreachable.returncode == 1 and "loopback address: refused" in unreachable.stderr
    assert json.loads(run_rag("feeds", "list", "--json", env=env).stdout) == []
    removed = run_rag("feeds", "remove", f"{site.base}/feed.rss", env=env)
    assert removed.returncode == 1 and "not following" in removed.stderr
    for command in (["feeds", "--help"], ["feeds", "add", "--help"],
                    ["feeds", "refresh", "--help"], ["feeds", "list", "--help"]):
        assert run_rag(*command, env=env).returncode == 0


# -- hostile feeds ---------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<rss version="2.0"><channel><title>&h;</title><item><title>&h;</title></item></channel></rss>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title><item><title>&secret;</title>
<description>&secret;</description></item></channel></rss>"""


BIG_ENTITY = (b'<?xml version="1.0"?>\n<!-- ' + b"x" * 70_000
              + b' -->\n<!DOCTYPE rss [<!ENTITY big "' + b"A" * 50_000
              + b'">]>\n<rss version="2.0"><channel><title>t</title><item>'
              b"<title>" + b"&big;" * 4000 + b"</title></item></channel></rss>")


def test_feeds_that_declare_entities_are_refused_before_parsing() -> None:
    """Wherever the declaration stands and whatever the encoding: a long comment first, or
    UTF-16 with and without a byte order mark."""
    utf16 = BIG_ENTITY.replace(b'version="1.0"?>', b'version="1.0" encoding="UTF-16"?>')
    for body in (BILLION_LAUGHS, EXTERNAL, EXTERNAL.replace(b"ENTITY", b"entity"), BIG_ENTITY,
                 utf16.decode().encode("utf-16"), utf16.decode().encode("utf-16-le")):
        started = time.monotonic()
        with pytest.raises(FeedError, match="declares XML entities"):
            parse_feed(body)
        assert time.monotonic() - started < 1


def test_a_feed_body_naming_a_local_file_is_not_opened() -> None:
    """feedparser opens a string (or bytes) that names a file: we hand it a stream."""
    for body in (b"/etc/passwd", b"/etc/hostname", b"file:///etc/passwd"):
        with pytest.raises(FeedError, match="not an RSS or Atom feed"):
            parse_feed(body)


def test_entries_are_read_as_text_and_their_links_go_through_the_guard(site: Site) -> None:
    hostile = ("<p>Harbour news: the quay reopens on Friday.</p>"
               "<script>alert(1)</script><img src=x onerror=alert(2)>"
               + "<p>" + "The quay was rebuilt after the storm of last winter. " * 30
               + "</p>")
    site.pages["/feed.atom"] = ("application/atom+xml", atom(site.base, [
        ("urn:x:quay", "Quay reopens", hostile)]))
    site.pages["/feed.rss"] = ("application/rss+xml", rss(site.base, [
        ("a", f"/to/http://127.0.0.2:{site.port}/news/bridge", "Redirected elsewhere")]))
    guarded = FetchOptions(allow_private=True, timeout=10,
                           refuse=(ipaddress.ip_network("127.0.0.2/32"),))
    found = harvest(FeedRecord(url=f"{site.base}/feed.atom", collection="c"), guarded)
    [entry] = found.entries
    assert isinstance(entry.result, Article)
    assert "quay reopens on Friday" in entry.result.text
    assert "<script>" not in entry.result.text and "alert" not in entry.result.text
    found = harvest(FeedRecord(url=f"{site.base}/feed.rss", collection="c"), guarded)
    [entry] = found.entries
    assert isinstance(entry.result, ReadFailure)
    assert "127.0.0.2" in entry.result.reason and "refused" in entry.result.reason


def test_an_oversized_or_unanswering_feed_fails_with_its_reason(site: Site) -> None:
    small = FetchOptions(allow_private=True, timeout=1.5, max_bytes=100_000)
    site.pages["/huge.rss"] = ("application/rss+xml", rss(site.base, [
        (f"id-{n}", f"/news/{n}", "x" * 200) for n in range(2000)]))
    for path, words in (("/huge.rss", "over the 0.1 MB limit"), ("/trickle", "timed out"),
                        ("/gzip-bomb", "over the 0.1 MB limit")):
        found = harvest(FeedRecord(url=site.base + path, collection="c"), small)
        assert words in found.error, (path, found.error)
        assert found.entries == []


def test_a_feed_entry_cannot_take_another_sites_identity(site: Site) -> None:
    """A full-text entry whose link is another site's URL (another host, or the same host on
    another port or scheme) would replace that site's article under its URL and source: it
    keeps an identity of its own instead. An entry of the feed's own site keeps its URL."""
    from index.web import same_site

    options = FetchOptions(allow_private=True, timeout=10)
    other = f"http://127.0.0.1:{site.port + 1}"
    for base, kept in ((other, False), (site.base, True)):
        site.pages["/feed.atom"] = ("application/atom+xml", atom(base, [
            ("urn:x:ferry", "Hourly ferry this summer", FERRY_TEXT)]))
        [entry] = harvest(FeedRecord(url=f"{site.base}/feed.atom", collection="c"),
                          options).entries
        assert isinstance(entry.result, Article)
        if kept:
            assert entry.result.url == f"{site.base}/atom/ferry"
        else:
            assert entry.result.url == "" and entry.result.source == "Grey Island Gazette"
            assert not entry.result.id.startswith("url-")
    assert same_site("https://www.a.test/x", "https://a.test/feed")
    assert not same_site("http://a.test/x", "https://a.test/feed")  # another scheme
    assert not same_site("https://a.test:8443/x", "https://a.test/feed")  # another port
    assert not same_site("https://b.test/x", "https://a.test/feed")
