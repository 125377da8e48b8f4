"""RSS and Atom feeds: the list of followed feeds, and the new entries of one, as articles.

The list lives in ``<data dir>/feeds.json`` (written whole to a temporary file and renamed,
so a crash never leaves half a file), changed only by a writer holding the data folder's
lock. Each feed remembers the entries it has seen, its last status and its last error.
An entry that carries its full text (``content:encoded``, Atom ``content``) is read from
the feed; otherwise its link is fetched like any URL, and gets the same identity, so an
article added by URL and again from a feed is stored once.

Feeds are parsed by feedparser, given a stream (never a string: feedparser would take a
string, or bytes, for a file name or URL and open it). A feed that declares XML entities
is refused before parsing: entities are how XML bombs expand to gigabytes and how external
entities read local files.
"""

from __future__ import annotations

import calendar
import io
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.fetch import FetchError, FetchOptions, fetch
from index.types import Article, ReadFailure, content_hash
from index.web import canonical_url, read_url, same_site, site_of, url_article_id

log = logging.getLogger(__name__)

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/xml",
                        "text/xml", "application/rdf+xml", "application/x-rss+xml",
                        "text/plain", "application/octet-stream", "text/html"})
FULL_TEXT_WORDS = 150  # an entry's own content this long is the article; shorter is a teaser
MAX_ENTRIES = 50  # newest entries looked at per refresh
MAX_SEEN = 5000  # entry keys remembered per feed
_ENTITY = re.compile(rb"<!ENTITY", re.I)
_BLOCKS = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr",
           "section", "article", "pre"}


class FeedError(Exception):
    """A feed that cannot be read; the message says why."""


@dataclass
class FeedRecord:
    """A followed feed and how its last refresh went."""

    url: str
    collection: str
    title: str = ""
    added_at: float = field(default_factory=time.time)
    last_checked: float | None = None
    status: str = "new"  # new, ok, partial (some entries failed), failed
    error: str = ""
    articles: int = 0  # entries ingested so far
    seen: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The feed as listed (without the seen keys)."""
        shown = asdict(self)
        shown.pop("seen")
        shown["entries_seen"] = len(self.seen)
        return shown


class FeedRegistry:
    """The followed feeds of a data folder, in ``feeds.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[FeedRecord]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise FeedError(f"the feed list {self.path} cannot be read ({exc}); fix or "
                            "delete it") from exc
        return [FeedRecord(**{k: v for k, v in row.items()
                              if k in FeedRecord.__dataclass_fields__})
                for row in data.get("feeds", []) if isinstance(row, dict) and "url" in row]

    def save(self, feeds: list[FeedRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"feeds": [asdict(f) for f in feeds]}, ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".feeds-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def find(self, url: str, collection: str) -> FeedRecord | None:
        key = canonical_url(url)
        return next((f for f in self.load() if f.url == key and f.collection == collection),
                    None)

    def add(self, url: str, collection: str) -> tuple[FeedRecord, bool]:
        """The feed (added unless it was there already) and whether it is new."""
        feeds = self.load()
        key = canonical_url(url)
        for feed in feeds:
            if feed.url == key and feed.collection == collection:
                return feed, False
        feed = FeedRecord(url=key, collection=collection)
        self.save([*feeds, feed])
        return feed, True

    def remove(self, url: str, collection: str) -> bool:
        feeds = self.load()
        key = canonical_url(url)
        kept = [f for f in feeds if not (f.url == key and f.collection == collection)]
        if len(kept) == len(feeds):
            return False
        self.save(kept)
        return True

    def record(self, harvest: Harvest, ingested: set[str]) -> FeedRecord | None:
        """Store how a refresh went: ``ingested`` are the keys of entries now stored."""
        feeds = self.load()
        feed = next((f for f in feeds if f.url == harvest.feed_url
                     and f.collection == harvest.collection), None)
        if feed is None:  # removed while it was being fetched
            return None
        feed.last_checked = time.time()
        feed.title = harvest.title or feed.title
        failed = [e for e in harvest.entries if e.key not in ingested]
        feed.seen = [*feed.seen, *(k for k in ingested if k not in feed.seen)][-MAX_SEEN:]
        feed.articles += len([e for e in harvest.entries if e.key in ingested])
        if harvest.error:
            feed.status, feed.error = "failed", harvest.error
        elif failed:
            first = failed[0].result
            feed.status = "partial"
            feed.error = (f"{len(failed)} of {len(harvest.entries)} new entries failed; "
                          f"first: {first}")
        else:
            feed.status, feed.error = "ok", ""
        self.save(feeds)
        return feed


@dataclass(frozen=True)
class Entry:
    """A new entry of a feed and what reading it gave."""

    key: str
    result: Article | ReadFailure


@dataclass
class Harvest:
    """What one refresh of one feed found: its new entries, read."""

    feed_url: str
    collection: str
    title: str = ""
    entries: list[Entry] = field(default_factory=list)
    error: str = ""  # the feed itself could not be fetched or parsed
    failure: Exception | None = None  # and the error itself (FetchError, FeedError)


def harvest(feed: FeedRecord, options: FetchOptions,
            on_entry: Callable[[str], None] | None = None) -> Harvest:
    """Fetch a feed and read its entries not seen before (newest ``MAX_ENTRIES``);
    failures are recorded, never raised."""
    found = Harvest(feed.url, feed.collection)
    try:
        page = fetch(feed.url, options, FEED_TYPES)
        found.title, entries = parse_feed(page.body)
    except (FetchError, FeedError) as exc:
        found.error, found.failure = str(exc), exc
        return found
    seen = set(feed.seen)
    for entry in entries[:MAX_ENTRIES]:
        key = _entry_key(entry)
        if key in seen:
            continue
        seen.add(key)
        if on_entry is not None:
            on_entry(str(entry.get("link") or key))
        found.entries.append(Entry(key, _read_entry(entry, found.title or feed.url, options,
                                                    feed.url)))
    return found


class _Declared(Exception):
    """An entity declaration met while checking a feed."""


def _declares_entities(body: bytes) -> bool:
    """Does the feed declare an XML entity anywhere? Read by expat, the parser feedparser's
    strict mode uses, in whatever encoding the document says (a 70 KB comment first or
    UTF-16 hides nothing), with a handler that stops at the first declaration, before
    anything is expanded. A body expat cannot parse is one feedparser's strict mode cannot
    either; its lenient parser ignores declarations, but such a body is still refused if
    its text holds one."""
    from xml.parsers import expat

    def declared(*_: Any) -> None:
        raise _Declared

    parser = expat.ParserCreate()
    parser.EntityDeclHandler = declared
    parser.UnparsedEntityDeclHandler = declared
    try:
        parser.Parse(body, True)
    except _Declared:
        return True
    except expat.ExpatError:
        texts = [body]
        if b"\x00" in body[:4096]:
            texts += [body.decode(code, "ignore").encode() for code in ("utf-16-le",
                                                                         "utf-16-be")]
        return any(_ENTITY.search(text) for text in texts)
    return False


def parse_feed(body: bytes) -> tuple[str, list[Any]]:
    """The feed's title and entries (newest first, as feeds list them)."""
    if _declares_entities(body):
        raise FeedError("the feed declares XML entities, which are refused (they can expand "
                        "to gigabytes or read local files)")
    import feedparser

    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=True,
                              resolve_relative_uris=True)
    if not parsed.get("version"):
        problem = parsed.get("bozo_exception")
        raise FeedError("not an RSS or Atom feed" + (f" ({problem})" if problem else "")
                        + "; give the feed's own address (often /feed, /rss or .xml)")
    title = str(parsed.feed.get("title") or "").strip()[:300]
    return title, list(parsed.entries)


def _entry_key(entry: Any) -> str:
    for name in ("id", "link"):
        value = entry.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:2048]
    return "hash:" + content_hash(str(entry.get("title", "")) + str(entry.get("summary", "")))


def _read_entry(entry: Any, feed_title: str, options: FetchOptions,
                feed_url: str) -> Article | ReadFailure:
    """The entry's own full text when the feed carries it, else its link fetched.

    Full text takes its link as its identity only when the link is on the feed's own site:
    a feed may not speak for another site (its entry would replace that site's article)."""
    link = str(entry.get("link") or "").strip()
    where = link or f"{feed_title}: {str(entry.get('title') or 'an entry')[:80]}"
    text = _full_text(entry)
    if len(text.split()) >= FULL_TEXT_WORDS:
        url = canonical_url(link) if same_site(link, feed_url) else ""
        return Article(id=url_article_id(url) if url else content_hash(text),
                       title=str(entry.get("title") or "").strip()[:300] or text[:80],
                       text=text, source=site_of(url) if url else feed_title, url=url,
                       published=_entry_date(entry), authors=str(entry.get("author") or ""),
                       origin=url or where, whole_file=True, where=where)
    if not link:
        return ReadFailure(where, "the entry has neither a link nor its full text", where)
    result = read_url(link, options)
    if isinstance(result, Article) and not result.published:
        return replace(result, published=_entry_date(entry))
    return result


def _full_text(entry: Any) -> str:
    """The text of the entry's longest content (HTML made plain text, paragraphs kept)."""
    contents = [str(c.get("value") or "") for c in entry.get("content") or []]
    best = max(contents, key=len, default="")
    if not best.strip():
        return ""
    return html_to_text(best)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment, one paragraph per block element."""
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (ValueError, lxml.etree.LxmlError):
        return ""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
    text = root.text_content()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _entry_date(entry: Any) -> str:
    for name in ("published_parsed", "updated_parsed"):
        parsed = entry.get(name)
        if parsed:
            try:
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC).date().isoformat()
            except (OverflowError, ValueError, TypeError):
                continue
    return ""
