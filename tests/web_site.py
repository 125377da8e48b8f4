"""A real HTTP server on 127.0.0.1 serving what the URL and feed tests fetch, and real PDF and
Word files made with real writer libraries (fpdf2, python-docx)."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from pathlib import Path
from typing import Any

from docx import Document
from fpdf import FPDF

ARTICLE_HTML = """<!doctype html><html><head><title>Varsa opens its new bridge</title>
<link rel="canonical" href="{base}/news/bridge?utm_source=feed">
<meta name="author" content="Ana Kovač"><meta property="og:site_name" content="Varsa Daily">
<meta property="article:published_time" content="2024-05-14T09:00:00Z"></head>
<body><nav>Home | Sport | Weather</nav><article><h1>Varsa opens its new bridge</h1>
<p>The new bridge over the Lenna river in Varsa opened on Tuesday after three years of
building work. Mayor Ilse Brandt cut the ribbon in front of about two thousand people.</p>
<p>The bridge is 412 metres long and carries two tram tracks, the city's transport office
said. Trams will start crossing it in June, once the overhead wires are tested.</p>
<p>Engineers from the Lenna Works company designed the bridge to withstand floods like the
one that destroyed the old crossing in 2019.</p></article>
<footer>Copyright Varsa Daily</footer></body></html>"""

TRAM_HTML = """<!doctype html><html><head><title>Night trams return to Varsa</title>
<meta property="article:published_time" content="2024-06-02T08:00:00Z"></head>
<body><article><h1>Night trams return to Varsa</h1>
<p>Night trams will run again in Varsa from the first of July, the city's transport office
said on Sunday. Line 9 will run every twenty minutes between midnight and five o'clock.</p>
<p>The night service was stopped in 2020 to save money. Tickets will cost the same as by
day, the office said, and the new bridge will carry the night trams too.</p>
</article></body></html>"""

FERRY_TEXT = ("<p>The ferry between Grey Island and Port Elmwood will sail every hour this "
              "summer, the Grey Island Gazette has learned.</p>" + "<p>" + " ".join(
                  ["Islanders have asked for more crossings for years, and the ferry "
                   "company finally agreed after a vote of the island council."] * 8)
              + "</p>")
LIGHTHOUSE_TEXT = ("<p>The Grey Island lighthouse was repainted red and white in May, its "
                   "keeper Tomas Lind told the Gazette.</p><p>" + " ".join(
                       ["Volunteers from the island spent four weekends on scaffolding to "
                        "finish the work before the summer storms arrived."] * 8) + "</p>")

PDF_PAGE_ONE = ("Harbour report of Port Elmwood. The harbour of Port Elmwood handled more "
                "ships this spring than in any spring before. Dock workers unloaded grain, "
                "timber and coal from early morning until late at night. ") * 3
PDF_PAGE_TWO = ("The new harbour master of Port Elmwood is Captain Oona Reyes, who took "
                "office in March. She said the ferry to Grey Island will sail twice a day "
                "from July.")


def make_pdf(path: Path, pages: list[str], title: str = "Harbour report") -> Path:
    """A PDF with one text page per item, written by fpdf2."""
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_author("Port Elmwood Harbour Board")
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path, tmp: Path) -> Path:
    """A PDF whose only page is a picture: no text layer, as a scanner makes."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (600, 200), "white")
    ImageDraw.Draw(image).text((20, 80), "The harbour was closed on Monday.", fill="black")
    picture = tmp / "scan.png"
    image.save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, source: Path) -> Path:
    """``source`` locked with a user password (pypdf's writer, RC4)."""
    import pypdf

    writer = pypdf.PdfWriter(clone_from=str(source))
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")
    with path.open("wb") as out:
        writer.write(out)
    return path


def make_docx(path: Path, title: str, paragraphs: list[str]) -> Path:
    """A Word file written by python-docx, with its title in the document properties."""
    document = Document()
    document.core_properties.title = title
    document.core_properties.author = "Varsa Council"
    document.add_heading(title, level=1)
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(str(path))
    return path


def rss(base: str, items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 feed; items are (guid, link path, title); links point at this site."""
    entries = "".join(
        f"<item><guid>{guid}</guid><title>{title}</title><link>{base}{link}</link>"
        f"<pubDate>Tue, 14 May 2024 09:00:00 GMT</pubDate><description>A teaser.</description>"
        "</item>" for guid, link, title in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Varsa Daily</title><link>{base}/</link>{entries}</channel></rss>").encode()


def atom(base: str, entries: list[tuple[str, str, str]]) -> bytes:
    """An Atom feed whose entries carry their full text (id, title, html text)."""
    body = "".join(
        f"<entry><id>{entry_id}</id><title>{title}</title>"
        f'<link href="{base}/atom/{entry_id.rsplit(":", 1)[-1]}"/>'
        f"<updated>2024-06-0{n + 1}T10:00:00Z</updated>"
        f'<content type="html"><![CDATA[{html}]]></content></entry>'
        for n, (entry_id, title, html) in enumerate(entries))
    return (f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Grey Island Gazette</title><id>urn:gazette</id>"
            f"<updated>2024-06-01T10:00:00Z</updated>{body}</feed>").encode()


class Site:
    """The server: ``pages[path] = (content type, body)``; a few paths behave badly on
    purpose (redirect chains, a slow page, a trickling page, an endless page, a gzip bomb).
    Tests may change ``pages`` while it runs (a feed that gains an entry)."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.requests.append(self.path)
                site.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up early (the size and time limits) is expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Site:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        if path.startswith("/hop/"):  # /hop/N redirects N more times, then to the article
            left = int(path.rsplit("/", 1)[1])
            self._redirect(h, f"/hop/{left - 1}" if left > 1 else "/news/bridge")
        elif path.startswith("/to/"):  # /to/<url> redirects there
            self._redirect(h, h.path[len("/to/"):])
        elif path == "/slow":
            time.sleep(8)
            self._send(h, "text/html", ARTICLE_HTML.encode())
        elif path == "/trickle":  # headers at once, then a byte every 0.3 s, forever
            self._head(h, 200, "text/html", None)
            for _ in range(200):
                try:
                    h.wfile.write(b" ")
                    h.wfile.flush()
                except OSError:
                    return
                time.sleep(0.3)
        elif path == "/endless":  # no Content-Length, a body that never ends
            self._head(h, 200, "text/html", None)
            chunk = b"<p>" + b"filler " * 9000 + b"</p>"
            for _ in range(2000):
                try:
                    h.wfile.write(chunk)
                except OSError:
                    return
        elif path == "/gzip-bomb":  # 50 KB on the wire, 50 MB unpacked
            body = gzip.compress(b"<p>" + b"a" * 50_000_000 + b"</p>", compresslevel=9)
            self._send(h, "text/html", body, extra={"Content-Encoding": "gzip"})
        elif path in self.pages:
            kind, body = self.pages[path]
            self._send(h, kind, body)
        else:
            self._send(h, "text/plain", b"not found", status=404)

    def _redirect(self, h: http.server.BaseHTTPRequestHandler, location: str) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _head(self, h: http.server.BaseHTTPRequestHandler, status: int, kind: str,
              length: int | None, extra: dict[str, str] | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        if length is not None:
            h.send_header("Content-Length", str(length))
        else:
            h.send_header("Connection", "close")
        for key, value in (extra or {}).items():
            h.send_header(key, value)
        h.end_headers()

    def _send(self, h: http.server.BaseHTTPRequestHandler, kind: str, body: bytes,
              status: int = 200, extra: dict[str, str] | None = None) -> None:
        self._head(h, status, kind, len(body), extra)
        h.wfile.write(body)


def article_site(tmp: Path) -> Site:
    """A site with the article page, a two-page PDF, an oversized page and the feeds."""
    site = Site()
    base = site.base
    site.pages["/news/bridge"] = ("text/html; charset=utf-8",
                                  ARTICLE_HTML.replace("{base}", base).encode())
    pdf = make_pdf(tmp / "harbour.pdf", [PDF_PAGE_ONE, PDF_PAGE_TWO])
    site.pages["/papers/harbour.pdf"] = ("application/pdf", pdf.read_bytes())
    site.pages["/big"] = ("text/html", b"<p>" + b"big " * 1_000_000 + b"</p>")
    site.pages["/image.png"] = ("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    site.pages["/news/tram"] = ("text/html; charset=utf-8", TRAM_HTML.encode())
    return site.start()
