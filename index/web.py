"""Web pages and PDFs by URL to :class:`Article`: fetched by index.fetch, read like files.

An article added by URL is identified by its canonical URL (the page's own
``<link rel="canonical">`` when it names the same site, else the address the redirects
ended at, without fragment or tracking parameters): adding it again adds nothing, and a
page that changed replaces what it gave before.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from index.documents import read_pdf
from index.fetch import FetchError, FetchOptions, fetch
from index.readers import ReadResult, decode, html_article
from index.types import Article, ReadFailure, Unreadable

log = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PDF_TYPES = frozenset({"application/pdf"})
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid)$", re.I)
MAX_URL_CHARS = 2048


def looks_like_url(text: str) -> bool:
    """True for 'scheme://...' (http, https, and the others we refuse with a message)."""
    return bool(_SCHEME.match(text.strip()))


def canonical_url(url: str) -> str:
    """The URL without fragment, tracking parameters, default port or case in scheme/host."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None and parts.port != default:
        netloc += f":{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if not _TRACKING.match(k)])
    return urlunsplit((scheme, netloc, parts.path or "/", query, ""))


def url_article_id(url: str) -> str:
    """An article id derived from its canonical URL: the same page always gets the same id."""
    return "url-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def site_of(url: str) -> str:
    return (urlsplit(url).hostname or "").removeprefix("www.")


def read_url(url: str, options: FetchOptions) -> ReadResult:
    """Fetch one URL and read it as an article; every problem is a ReadFailure naming the
    URL, never an exception."""
    shown = url.strip()[:MAX_URL_CHARS]
    if len(url.strip()) > MAX_URL_CHARS:
        return ReadFailure(shown, f"URL longer than {MAX_URL_CHARS} characters", shown)
    try:
        page = fetch(shown, options, HTML_TYPES | PDF_TYPES)
        base = canonical_url(page.final_url)
        if page.content_type in PDF_TYPES:
            article = _pdf_article(page.body, shown, base)
            final = base
        else:
            html = _text(page.body, page.charset)
            article = html_article(html, shown, base, page_url=page.final_url)
            final = _same_site_canonical(article.url, base)
    except (FetchError, Unreadable) as exc:
        return ReadFailure(shown, str(exc), shown)
    except Exception as exc:  # whatever a reader hits on a hostile page fails that URL only
        log.warning("reading %s failed", shown, exc_info=True)
        return ReadFailure(shown, f"could not be read ({type(exc).__name__}: {exc})", shown)
    return replace(article, id=url_article_id(final), url=final, origin=final,
                   source=site_of(final) if article.source in ("", shown) else article.source,
                   where=shown, whole_file=True)


def _pdf_article(body: bytes, where: str, url: str) -> Article:
    """A fetched PDF, read by the same reader as a PDF file (it wants a file)."""
    with tempfile.TemporaryDirectory(prefix="rag-fetch-") as folder:
        path = Path(folder) / "page.pdf"
        path.write_bytes(body)
        article = read_pdf(path, where, url)
    return replace(article, source=site_of(url))


def _text(body: bytes, charset: str | None) -> str:
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name: guess as for files
            pass
    return decode(body)


def same_site(claimed: str, reference: str) -> bool:
    """Is ``claimed`` an http(s) URL on the site of ``reference``: the same scheme, host
    (``www.`` aside) and port? Another port or scheme on one host can be another server."""
    if not claimed or not claimed.lower().startswith(("http://", "https://")):
        return False
    try:
        a, b = urlsplit(canonical_url(claimed)), urlsplit(canonical_url(reference))
        return (a.scheme, site_of(claimed), a.port) == (b.scheme, site_of(reference), b.port)
    except ValueError:
        return False


def _same_site_canonical(claimed: str, fetched: str) -> str:
    """The page's canonical link when it is on the same site as the page (:func:`same_site`);
    else the address it was fetched from. A page may not claim another site's identity
    (it would replace that site's article)."""
    return canonical_url(claimed) if same_site(claimed, fetched) else fetched
