"""Files and records to :class:`Article`: every failure is reported by name, never raised."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from index.documents import DOCX_SUFFIXES, PDF_SUFFIXES, read_docx, read_pdf
from index.markdown import markdown_to_text
from index.types import Article, ReadFailure, Unreadable, content_hash, source_name

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
RECORD_SUFFIXES = {".json", ".jsonl"}
SUPPORTED = TEXT_SUFFIXES | HTML_SUFFIXES | RECORD_SUFFIXES | PDF_SUFFIXES | DOCX_SUFFIXES

ReadResult = Article | ReadFailure
MISSING = "file vanished while reading (no such file)"
_TOO_DEEP = "invalid JSON: nested too deeply to be an article record"


_Unreadable = Unreadable  # a reason the whole file cannot be read; a ReadFailure at the edge


def read_paths(paths: Iterable[str | Path], max_bytes: int) -> Iterator[ReadResult]:
    """Yield an Article or a ReadFailure for every article found under ``paths``."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _read_folder(path, max_bytes)
        elif path.exists():
            yield from read_file(path, max_bytes)
        elif path.is_symlink():
            yield ReadFailure(str(path), _broken_link(path))
        else:
            yield ReadFailure(str(path), "no such file or folder")


def _read_folder(folder: Path, max_bytes: int) -> Iterator[ReadResult]:
    seen: set[str] = set()
    errors: list[OSError] = []
    # os.walk skips folders it cannot list unless told; collect them so none vanish silently.
    for root, dirs, files in os.walk(folder, followlinks=True, onerror=errors.append):
        yield from _walk_failures(errors)
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            yield ReadFailure(root, "symlink loop: this folder was already read, skipped")
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED:
                continue
            yield from read_file(path, max_bytes)
    yield from _walk_failures(errors)


def _walk_failures(errors: list[OSError]) -> Iterator[ReadFailure]:
    for exc in errors:
        yield ReadFailure(str(exc.filename or "?"),
                          f"cannot read folder: {exc.strerror or exc}")
    errors.clear()


def _broken_link(path: Path) -> str:
    try:
        target = os.readlink(path)
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself)"
        return f"broken symbolic link (points to {target}, which does not exist)"
    return "symbolic link could not be followed"


def read_file(path: Path, max_bytes: int, origin: str | None = None,
              where: str | None = None) -> Iterator[ReadResult]:
    """Read one file; a record file may yield many articles and per-record failures.

    ``origin`` names the file for replacing and pruning (default: its real path); ``where``
    names it in messages (default: the path as given).
    """
    where = where or str(path)
    origin = origin or os.path.realpath(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        yield ReadFailure(where, f"unsupported file type {suffix or '(none)'}; use one of "
                          + ", ".join(sorted(SUPPORTED)))
        return
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            # Reading a FIFO or device would block or never end: refuse without opening it.
            raise _Unreadable(f"not a regular file ({_kind(info.st_mode)}); only plain files "
                              "are read")
        size = info.st_size
        if size > max_bytes:
            yield ReadFailure(where, f"file is {_mb(size)}, over the {_mb(max_bytes)} limit "
                              "(raise RAG_MAX_FILE_MB to allow it)")
            return
        with path.open("rb") as handle:  # read at most the limit: the file may be growing
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _Unreadable(f"file grew past the {_mb(max_bytes)} limit while being read")
        if not data.strip():
            raise _Unreadable("empty file: no text to ingest")
        if suffix in PDF_SUFFIXES | DOCX_SUFFIXES:
            yield (read_pdf if suffix in PDF_SUFFIXES else read_docx)(path, where, origin)
            return
        text = decode(data)
        if not text.strip():
            raise _Unreadable("empty file: no text to ingest")
        if suffix in MARKDOWN_SUFFIXES:
            yield _from_plain_text(markdown_to_text(text), where, origin)
        elif suffix in TEXT_SUFFIXES:
            yield _from_plain_text(text, where, origin)
        elif suffix in HTML_SUFFIXES:
            yield _from_html(text, where, origin)
        elif suffix == ".jsonl":
            yield from _from_jsonl(text, where, origin)
        else:
            yield from _from_json(text, where, origin)
    except _Unreadable as exc:
        yield ReadFailure(where, str(exc), origin)
    except FileNotFoundError:
        yield ReadFailure(where, _broken_link(path) if path.is_symlink() else MISSING, origin)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            yield ReadFailure(where, _broken_link(path), origin)
        else:
            yield ReadFailure(where, f"cannot read file: {exc.strerror or exc}", origin)
    except ImportError as exc:  # a reader's library is missing or broken: this file fails
        yield ReadFailure(where, f"the {suffix} reader cannot be loaded ({exc}); reinstall "
                          "rag-articles with its dependencies (pip install -e .)", origin)
    except Exception as exc:  # whatever a reader hits, only this file fails, never the run
        log.warning("reader failed on %s", where, exc_info=True)
        yield ReadFailure(where, f"could not be read ({type(exc).__name__}: {exc})", origin)


def _mb(size: int) -> str:
    return f"{size / 1e6:.3g} MB"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def decode(data: bytes) -> str:
    """Bytes to text: BOMs honoured, UTF-8 first, then Windows-1252 / Latin-1; binary refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    sample = data[:4096]
    if b"\x00" in sample:
        # BOM-less UTF-16 has a NUL in every other byte; anything else with NULs is binary.
        odd_nuls = sample[1::2].count(0)
        even_nuls = sample[0::2].count(0)
        if odd_nuls > 0.4 * len(sample) / 2 and even_nuls == 0:
            return _text_or_binary(data.decode("utf-16-le", errors="replace"))
        if even_nuls > 0.4 * len(sample) / 2 and odd_nuls == 0:
            return _text_or_binary(data.decode("utf-16-be", errors="replace"))
        raise _Unreadable(_BINARY)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return _text_or_binary(text)


_BINARY = "binary file, not text: convert it to .txt, .md, .html, .json, .pdf or .docx"


def _text_or_binary(text: str) -> str:
    """Refuse 'text' that is mostly control or unprintable characters."""
    head = text[:4096]
    odd = sum(1 for ch in head if (ord(ch) < 32 and ch not in "\n\r\t\f")
              or ch == "\ufffd" or 0x7F <= ord(ch) < 0xA0)
    if odd > 0.05 * max(1, len(head)):
        raise _Unreadable(_BINARY)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:300]
    return ""


def _from_plain_text(text: str, where: str, origin: str) -> Article:
    return Article(id=content_hash(text), title=_first_line(text), text=text,
                   source=source_name(where),
                   url="", published="", authors="", origin=origin, whole_file=True,
                   where=where)


def _from_html(html: str, where: str, origin: str, page_url: str = "") -> Article:
    return html_article(html, where, origin, page_url)


def html_article(html: str, where: str, origin: str, page_url: str = "") -> Article:
    """Main text, title, date, author, site and canonical url of a page, via trafilatura.
    ``page_url`` is the address it was fetched from, if any."""
    import trafilatura  # heavy: only when HTML is read

    try:
        doc = trafilatura.bare_extraction(html, url=page_url or None, with_metadata=True,
                                          include_comments=False, include_tables=False,
                                          favor_precision=True)
    except Exception as exc:  # a parser crash on one hostile page must not stop the run
        raise _Unreadable(f"the HTML could not be parsed ({type(exc).__name__})") from exc
    text = getattr(doc, "text", None) if doc is not None else None
    if not text or not text.strip():
        raise _Unreadable("no article text found in the HTML (empty body or only navigation)")
    title = (getattr(doc, "title", None) or "").strip() or _first_line(text)
    return Article(
        id=content_hash(text),
        title=title,
        text=text,
        source=(getattr(doc, "sitename", None) or source_name(where)),
        url=getattr(doc, "url", None) or "",
        published=iso_date(getattr(doc, "date", None)),
        authors=getattr(doc, "author", None) or "",
        origin=origin,
        whole_file=True,
        where=where,
    )


def _from_json(text: str, where: str, origin: str) -> Iterator[ReadResult]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Unreadable(f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from exc
    except RecursionError as exc:
        raise _Unreadable(_TOO_DEEP) from exc
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    records = data if isinstance(data, list) else [data]
    for i, record in enumerate(records):
        yield record_to_article(record, f"{where} record {i + 1}", origin)


def _from_jsonl(text: str, where: str, origin: str) -> Iterator[ReadResult]:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        label = f"{where} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ReadFailure(label, f"invalid JSON: {exc.msg} at column {exc.colno}", origin)
            continue
        except RecursionError:
            yield ReadFailure(label, _TOO_DEEP, origin)
            continue
        yield record_to_article(record, label, origin)


def record_to_article(record: Any, where: str, origin: str = "") -> ReadResult:
    """A JSON record (``text`` or ``body`` required) to an Article, or a failure naming
    the field. ``origin`` is the file it came from (records never replace each other)."""
    if not isinstance(record, dict):
        return ReadFailure(where, "record is not a JSON object", origin)
    body = record.get("text") or record.get("body")
    if not isinstance(body, str) or not body.strip():
        return ReadFailure(where, "record has no 'text' or 'body' string with content", origin)
    body = body.replace("\r\n", "\n")
    for name in ("title", "url", "source", "id"):
        if record.get(name) is not None and not isinstance(record[name], str | int):
            return ReadFailure(where, f"field '{name}' must be a string", origin)
    authors = record.get("authors") or ""
    if isinstance(authors, list):
        authors = ", ".join(str(a) for a in authors)
    url = str(record.get("url") or "")
    return Article(
        id=str(record.get("id") or "") or content_hash(body),
        title=str(record.get("title") or "").strip() or _first_line(body),
        text=body,
        source=(str(record.get("source") or "") or _site(url)
                or source_name(where.rsplit(" ", 2)[0])),
        url=url,
        published=iso_date(record.get("published")),
        authors=str(authors),
        origin=origin,
        where=where,
    )


def _site(url: str) -> str:
    if "://" not in url:
        return ""
    host = url.split("://", 1)[1].split("/", 1)[0]
    return host.removeprefix("www.")


def iso_date(value: object) -> str:
    """An ISO date (YYYY-MM-DD) when ``value`` holds a recognisable date, else ''."""
    if not isinstance(value, str) or not value.strip():
        return ""
    value = value.strip()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        pass
    for fmt in ("%Y/%m/%d", "%d %B %Y", "%B %d, %Y", "%b %d, %Y", "%a, %d %b %Y %H:%M:%S %z"):
        try:
            return datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return value[:10] if len(value) >= 10 and value[4] == "-" and value[7] == "-" else ""
