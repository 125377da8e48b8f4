"""The data that crosses module boundaries: articles, passages and read failures."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import PurePath

_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """NFC, collapsed whitespace, trimmed: the form article hashes are taken of."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def source_name(where: str) -> str:
    """The source shown for a file: its name, never its path on the server (a URL as is)."""
    return where if "://" in where else PurePath(where).name or where


def content_hash(text: str) -> str:
    """Short stable hash of normalised text; equal for texts that differ only in spacing."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Article:
    """One article as read from a file or record, before splitting."""

    id: str
    title: str
    text: str
    source: str
    url: str = ""
    published: str = ""
    authors: str = ""
    # The file (or upload) an article came from, for `rag ingest --prune` and for replacing.
    origin: str = ""
    # True when the article is its file's whole content (.txt, .md, .html): a changed file then
    # replaces the article it gave before. Records of a .json/.jsonl file keep their own
    # identity (their id, else their content) and are never replaced by a sibling.
    whole_file: bool = False
    # Where it was read from, for messages ("a.jsonl line 3"); not stored.
    where: str = ""
    # A paged document's (PDF's) pages: the [start, end) range of each page in ``text``, in
    # order, so a passage can say its page. Empty for articles without pages.
    pages: tuple[tuple[int, int], ...] = ()

    @property
    def hash(self) -> str:
        return content_hash(self.title + "\n" + self.text)


@dataclass(frozen=True)
class Passage:
    """A span of an article's text: ``article.text[start:end] == text``."""

    article_id: str
    number: int
    text: str
    start: int
    end: int
    page: int | None = None  # 1-based page of a paged article; passages never cross pages

    @property
    def id(self) -> str:
        return f"{self.article_id}#{self.number}"


class Unreadable(Exception):
    """A reason a whole file (or page) cannot be read; readers turn it into a ReadFailure."""


@dataclass(frozen=True)
class ReadFailure:
    """A file or record that could not be read; ``where`` names it for the user."""

    where: str
    reason: str
    origin: str = ""  # the file it belongs to, when known: a file with failures is never pruned

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class IngestReport:
    """What one ingest run did, for the summary line and exit code."""

    added: int = 0
    unchanged: int = 0
    replaced: int = 0
    passages: int = 0
    failures: list[ReadFailure] = field(default_factory=list)
    duplicates: list[ReadFailure] = field(default_factory=list)  # also in failures
    embedded: int = 0  # passages sent to the embedder; the rest reused stored vectors
    # Stored articles of a record file that the file no longer holds: origin -> ids.
    missing: dict[str, list[str]] = field(default_factory=dict)
    pruned: int = 0  # of those, removed because the user asked (--prune)
    waiting: int = 0  # passages of the collection stored but not embedded yet, afterwards

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        text = (f"articles: {self.added} added, {self.unchanged} unchanged, "
                f"{self.replaced} replaced, {self.failed} failed; passages written: "
                f"{self.passages}")
        if self.pruned:
            text += f"; {self.pruned} pruned"
        if self.waiting:
            text += (f"; {self.waiting} waiting for their vectors (searchable by their words "
                     "now)")
        return text

    def missing_notes(self) -> list[str]:
        """One line per record file whose earlier articles it no longer holds."""
        return [f"{origin}: {len(ids)} stored article(s) from it are no longer in it; kept "
                "(ingest again with --prune to remove them)"
                for origin, ids in self.missing.items()]
