"""PDF and Word (.docx) files to :class:`Article`, through LlamaIndex's file readers.

LlamaIndex's ``PDFReader`` (pypdf) gives one document per page, which is what a citation
needs to name its page: the pages are joined into the article's text and each page's
character range is kept (``Article.pages``). ``DocxReader`` (docx2txt) gives the text of a
Word file. pypdf is opened first on its own to refuse what the reader would choke on or
take too long over (password-protected, damaged or truncated, thousands of pages), and a
.docx is checked for a zip bomb before docx2txt unpacks it.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from index.types import Article, Unreadable, content_hash, source_name

log = logging.getLogger(__name__)

PDF_SUFFIXES = {".pdf"}
DOCX_SUFFIXES = {".docx"}
# More pages than any article or print edition; a 10,000-page PDF would hold the writer
# for many minutes.
MAX_PDF_PAGES = 2000
# A .docx is a zip: the parts read for text may unpack to at most this much, counted as they
# are inflated (zip headers can lie). A 300-page report's document.xml is about 5 MB.
MAX_DOCX_UNPACKED = 20_000_000
_CHUNK = 1 << 16
_TERMINAL = tuple(".!?:;\"”’)")
SCANNED = ("no text layer: this looks like a scanned PDF (pictures of pages); run OCR on it "
           "(e.g. ocrmypdf) and add the result")


def read_pdf(path: Path, where: str, origin: str) -> Article:
    """A PDF's text, its pages joined, with each page's character range."""
    meta = _check_pdf(path)
    pages = [_reflow(text) for text in _pdf_pages(path)]
    text, ranges = _join_pages(pages)
    if not text.strip():
        raise Unreadable(SCANNED)
    title = _clean_meta(meta.get("title")) or _first_line(text)
    return Article(id=content_hash(text), title=title, text=text,
                   source=source_name(where),
                   published=meta.get("published", ""),
                   authors=_clean_meta(meta.get("author")), origin=origin,
                   whole_file=True, where=where, pages=tuple(ranges))


def _check_pdf(path: Path) -> dict[str, str]:
    """Open the PDF with pypdf: refuse a locked, damaged or enormous one; its metadata."""
    import pypdf

    with _pdf_errors():
        reader = pypdf.PdfReader(path)
        count = len(reader.pages)
        info: Any = reader.metadata or {}
    if count > MAX_PDF_PAGES:
        raise Unreadable(f"the PDF has {count} pages, more than the {MAX_PDF_PAGES} read; "
                         "split it into smaller files")
    if count == 0:
        raise Unreadable("the PDF has no pages")
    published = ""
    try:
        created = getattr(info, "creation_date", None)
        published = created.date().isoformat() if created is not None else ""
    except (ValueError, TypeError, AttributeError):  # a malformed date is no date
        published = ""
    return {"title": str(info.get("/Title") or ""), "author": str(info.get("/Author") or ""),
            "published": published}


def _pdf_pages(path: Path) -> list[str]:
    """The text of each page, by LlamaIndex's PDFReader (one Document per page)."""
    from llama_index.readers.file.docs.base import PDFReader

    # The reader retries three times on any error; a damaged file fails the same way each
    # time, so its undecorated function is called once.
    load: Any = PDFReader.load_data.__wrapped__
    with _pdf_errors():
        documents = load(PDFReader(return_full_document=False), path)
    return [str(d.text or "") for d in documents]


@contextmanager
def _pdf_errors() -> Iterator[None]:
    """pypdf's errors, opening or reading, as the per-file failure a user can act on."""
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        yield
    except FileNotDecryptedError as exc:
        raise Unreadable("the PDF is password-protected (encrypted): save or print an "
                         "unprotected copy and add that") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Unreadable(f"damaged or truncated PDF ({type(exc).__name__}: {exc}); download "
                         "or export it again") from exc


def _join_pages(pages: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The pages' texts joined by blank lines, and each page's [start, end) in the result."""
    parts: list[str] = []
    ranges: list[tuple[int, int]] = []
    offset = 0
    for page in pages:
        if parts:
            parts.append("\n\n")
            offset += 2
        parts.append(page)
        ranges.append((offset, offset + len(page)))
        offset += len(page)
    return "".join(parts), ranges


def _reflow(text: str) -> str:
    """PDF text has a line break at the end of every printed line; the sentence splitter
    takes a line break for a sentence end. Lines of one paragraph are joined (and words
    hyphenated across lines rejoined); short lines (headings) and lines that end a sentence
    keep their break."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return ""
    typical = lengths[int(len(lengths) * 0.75)]
    out: list[str] = []
    for line, following in zip(lines, [*lines[1:], ""], strict=True):
        if not line:
            if out and out[-1] != "\n\n":
                out[-1] = "\n\n"
            continue
        out.append(line)
        if line.endswith("-") and following[:1].islower():
            out[-1] = line[:-1]
            out.append("")
        elif len(line) < 0.6 * typical or line.endswith(_TERMINAL):
            out.append("\n")
        else:
            out.append(" ")
    return "".join(out).strip()


def read_docx(path: Path, where: str, origin: str) -> Article:
    """A Word file's text (docx2txt's reading of the document, header and footer parts);
    title and author from its properties when it has them.

    The parts are read here, as streams whose inflated bytes are counted, instead of by
    docx2txt or LlamaIndex's DocxReader: both inflate a part whole in memory, and a part
    whose zip header understates its size then takes gigabytes before failing."""
    from docx2txt.docx2txt import xml2text

    budget = [MAX_DOCX_UNPACKED]
    try:
        opened = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise Unreadable("not a Word document (.docx is a zip file; this is not one); an "
                         "old .doc must be saved as .docx first") from exc
    try:
        with opened as archive:
            names = [i.filename for i in archive.infolist()]
            if "word/document.xml" not in names:
                raise Unreadable("not a Word document (.docx): it has no word/document.xml; "
                                 "an old .doc must be saved as .docx first")
            core = _member(archive, "docProps/core.xml", budget) \
                if "docProps/core.xml" in names else b""
            parts = [n for n in names if re.fullmatch(r"word/header\d*\.xml", n)]
            parts += ["word/document.xml"]
            parts += [n for n in names if re.fullmatch(r"word/footer\d*\.xml", n)]
            text = "".join(xml2text(_member(archive, n, budget)) for n in parts)
    except zipfile.BadZipFile as exc:
        raise Unreadable("not a readable Word document (.docx is a zip file; this one is "
                         f"damaged: {exc}); save it again as .docx") from exc
    except (KeyError, ValueError, OSError, SyntaxError) as exc:  # ParseError is a SyntaxError
        raise Unreadable(f"not a readable Word document ({type(exc).__name__}: {exc}); "
                         "save it again as .docx") from exc
    props = _core_properties(core) if core else {}
    text = re.sub(r"\n{3,}", "\n\n", text.replace("\r\n", "\n")).strip()
    if not text:
        raise Unreadable("the Word document has no text")
    return Article(id=content_hash(text), title=props.get("title") or _first_line(text),
                   text=text, source=source_name(where),
                   published=props.get("published", ""),
                   authors=props.get("author", ""), origin=origin, whole_file=True,
                   where=where)


def _member(archive: zipfile.ZipFile, name: str, budget: list[int]) -> bytes:
    """A part's bytes, inflated a chunk at a time; Unreadable once the parts read so far
    pass MAX_DOCX_UNPACKED (``budget`` holds what is left)."""
    chunks = []
    with archive.open(name) as part:
        while chunk := part.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise Unreadable(f"the Word document unpacks to more than the "
                                 f"{MAX_DOCX_UNPACKED / 1e6:.0f} MB of text and markup an "
                                 "article may have (a zip bomb?)")
            chunks.append(chunk)
    return b"".join(chunks)


def _core_properties(xml: bytes) -> dict[str, str]:
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(xml)
    except (ElementTree.ParseError, DefusedXmlException):
        return {}
    found: dict[str, str] = {}
    for element in root:
        tag = element.tag.rsplit("}", 1)[-1]
        value = (element.text or "").strip()
        if tag == "title" and value:
            found["title"] = value[:300]
        elif tag == "creator" and value:
            found["author"] = value[:300]
        elif tag == "created" and re.match(r"\d{4}-\d{2}-\d{2}", value):
            found["published"] = value[:10]
    return found


def _clean_meta(value: str | None) -> str:
    """A metadata string, or '' when it is empty or a file name a tool put there."""
    text = (value or "").strip()
    if not text or re.search(r"\.(docx?|pdf|indd|txt)$", text, re.I) or text.lower() in {
            "untitled", "title"}:
        return ""
    return text[:300]


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
