"""Web pages and PDFs by URL, from a real HTTP server on 127.0.0.1: what is read, the
limits (size, time, redirects, content type) and the guard against server-side request
forgery, with its setting off (loopback refused) and on."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.fetch import FetchOptions
from index.types import Article, ReadFailure
from index.web import read_url
from tests.helpers import rag_env, run_rag
from tests.web_site import Site, article_site, make_docx

OPEN = FetchOptions(allow_private=True, timeout=10, max_bytes=2_000_000)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    server = article_site(tmp_path_factory.mktemp("site"))
    yield server
    server.stop()


def failure(result: Article | ReadFailure) -> str:
    assert isinstance(result, ReadFailure), result
    return result.reason


def test_a_page_gives_its_text_metadata_and_canonical_url(site: Site) -> None:
    article = read_url(f"{site.base}/news/bridge?utm_source=mail#top", OPEN)
    assert isinstance(article, Article), article
    assert article.title == "Varsa opens its new bridge"
    assert "412 metres long" in article.text and "Home | Sport" not in article.text
    assert article.published == "2024-05-14" and "Ana Kovač" in article.authors
    assert article.source == "Varsa Daily"
    assert article.url == f"{site.base}/news/bridge"  # canonical: no tracking, no fragment
    again = read_url(f"{site.base}/hop/3", OPEN)  # three redirects end at the same page
    assert isinstance(again, Article) and again.id == article.id and again.url == article.url


def test_a_pdf_by_url_keeps_its_pages(site: Site) -> None:
    article = read_url(f"{site.base}/papers/harbour.pdf", OPEN)
    assert isinstance(article, Article), article
    assert article.title == "Harbour report" and len(article.pages) == 2
    assert article.url == f"{site.base}/papers/harbour.pdf" and article.source == "127.0.0.1"


def test_loopback_is_refused_by_default_in_every_spelling(site: Site) -> None:
    before = len(site.requests)
    for host in ("127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001",
                 "[::ffff:127.0.0.1]", "[::1]", "localhost."):
        reason = failure(read_url(f"http://{host}:{site.port}/news/bridge", FetchOptions()))
        assert "loopback" in reason and "RAG_FETCH_ALLOW_PRIVATE=1" in reason, (host, reason)
    assert len(site.requests) == before  # refused before any connection was made


def test_private_link_local_and_metadata_addresses_are_refused_before_connecting() -> None:
    for url, what in (("http://169.254.169.254/latest/meta-data/", "link-local"),
                      ("http://[fe80::1]/", "link-local"),
                      ("http://10.1.2.3:8080/", "private"),
                      ("http://192.168.0.1/", "private"),
                      ("http://[fd00:ec2::254]/", "private"),
                      ("http://100.100.100.200/latest/meta-data/", "not a public"),
                      ("http://0.0.0.0:8080/", "not a public"),
                      ("http://[64:ff9b::7f00:1]/", "loopback")):
        started = time.monotonic()
        reason = failure(read_url(url, FetchOptions()))
        assert what in reason, (url, reason)
        assert time.monotonic() - started < 1  # no connection was attempted


def test_other_schemes_ports_and_credentials_are_refused(site: Site) -> None:
    for url, words in (("file:///etc/passwd", "only http and https"),
                       ("ftp://127.0.0.1/x", "only http and https"),
                       ("gopher://127.0.0.1:70/_x", "only http and https"),
                       ("http://127.0.0.1:22/", "not a web port"),
                       ("http://127.0.0.1:6379:80/", "not a valid URL"),
                       (f"http://me:pw@127.0.0.1:{site.port}/news/bridge", "user name")):
        assert words in failure(read_url(url, OPEN)), url


def test_every_redirect_is_checked_again(site: Site) -> None:
    guarded = FetchOptions(allow_private=True, timeout=10,
                           refuse=(ipaddress.ip_network("127.0.0.2/32"),))
    to_refused = f"{site.base}/to/http://127.0.0.2:{site.port}/news/bridge"
    reason = failure(read_url(to_refused, guarded))
    assert "127.0.0.2" in reason and "refused" in reason
    assert "only http and https" in failure(read_url(f"{site.base}/to/file:///etc/passwd",
                                                     OPEN))
    assert "more than 5 redirects" in failure(read_url(f"{site.base}/hop/6", OPEN))
    # the same address written as IPv4-mapped IPv6 is the same refused network, directly
    # and by redirect
    mapped = f"http://[::ffff:127.0.0.2]:{site.port}/news/bridge"
    for url in (mapped, f"{site.base}/to/{mapped}"):
        reason = failure(read_url(url, guarded))
        assert "a refused network" in reason and "127.0.0.2" in reason, (url, reason)


def test_size_limits_hold_with_or_without_a_length_and_for_compressed_bodies(
        site: Site) -> None:
    small = FetchOptions(allow_private=True, timeout=20, max_bytes=1_000_000)
    for path in ("/big", "/endless", "/gzip-bomb"):
        started = time.monotonic()
        reason = failure(read_url(site.base + path, small))
        assert "over the 1 MB limit" in reason and "RAG_MAX_FILE_MB" in reason, path
        assert time.monotonic() - started < 10, path


def test_a_slow_or_trickling_page_fails_at_the_time_limit(site: Site) -> None:
    quick = FetchOptions(allow_private=True, timeout=1.5)
    for path in ("/slow", "/trickle"):
        started = time.monotonic()
        reason = failure(read_url(site.base + path, quick))
        took = time.monotonic() - started
        assert "timed out" in reason and "RAG_FETCH_TIMEOUT" in reason, path
        assert took < 3, (path, took)


def test_only_pages_and_pdfs_are_read(site: Site) -> None:
    assert "image/png" in failure(read_url(f"{site.base}/image.png", OPEN))
    assert "HTTP 404" in failure(read_url(f"{site.base}/missing", OPEN))


def test_rag_ingest_takes_urls_and_files_together_and_adds_a_page_once(
        site: Site, tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data", RAG_FETCH_ALLOW_PRIVATE="1", RAG_FETCH_TIMEOUT="2")
    docx = make_docx(tmp_path / "minutes.docx", "Council minutes",
                     ["The council of Varsa approved the tram budget on Monday."])
    urls = [f"{site.base}/news/bridge", f"{site.base}/papers/harbour.pdf",
            f"{site.base}/slow"]
    first = run_rag("ingest", urls[0], str(docx), urls[1], urls[2], env=env)
    assert first.returncode == 1, first.stderr
    assert "3 added" in first.stdout and "1 failed" in first.stdout
    assert f"rag: failed: {site.base}/slow: timed out" in first.stderr
    assert "fetching" in first.stderr  # the progress bar
    again = run_rag("-q", "ingest", f"{site.base}/hop/2", urls[1], env=env)
    assert again.returncode == 0, again.stderr
    assert "0 added, 2 unchanged" in again.stdout
    listed = json.loads(run_rag("list", "--json", env=env).stdout)
    assert f"{site.base}/news/bridge" in {a["url"] for a in listed} and len(listed) == 3
    question = "How many metres long is the new bridge over the Lenna river?"
    answer = json.loads(run_rag("ask", "--json", question, env=env).stdout)
    assert answer["citations"][0]["url"] == f"{site.base}/news/bridge"
    assert "412" in answer["answer"]


def test_rag_ingest_refuses_loopback_unless_allowed(site: Site, tmp_path: Path) -> None:
    refused = run_rag("-q", "ingest", f"{site.base}/news/bridge", "file:///etc/passwd",
                      env=rag_env(tmp_path / "data"))
    assert refused.returncode == 1
    assert "loopback address: refused" in refused.stderr
    assert "RAG_FETCH_ALLOW_PRIVATE=1" in refused.stderr
    assert "file:///etc/passwd: only http and https" in refused.stderr
    assert "0 added" in refused.stdout
