"""What the API and the chat share: per-collection components, asking, ingesting uploads.

Both front ends call this in-process, so a question asked in the chat and over HTTP takes the
same path. Everything here is synchronous and CPU-bound: callers on an event loop run it in a
thread pool.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from index.ingest import ingest_results
from index.lock import WriteLock
from index.readers import ReadResult, read_file, record_to_article
from index.store import StoredArticle
from index.types import IngestReport, ReadFailure
from rag.answerers import Turn
from rag.filters import Filters
from rag.result import Answer
from ui.settings import Settings
from ui.wiring import Components, build_collection, split_options, write_lock

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass
class FileOutcome:
    """What became of one uploaded file (or of the JSON records of one request)."""

    name: str
    articles: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.errors:
            return "ok"
        return "partial" if self.articles else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "articles": self.articles,
                "errors": self.errors}


@dataclass
class UploadReport:
    """Per-file outcomes plus the ingest totals."""

    files: list[FileOutcome]
    report: IngestReport

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        return {"files": [f.as_dict() for f in self.files],
                "added": r.added, "unchanged": r.unchanged, "replaced": r.replaced,
                "failed": r.failed, "passages": r.passages}


def safe_filename(name: str) -> str:
    """The base name of an uploaded file, reduced to harmless characters."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _UNSAFE.sub("_", base).strip(" .") or "upload"
    return cleaned[-120:]


class ArticleService:
    """Components per collection (the embedder loaded once and shared) and the operations."""

    def __init__(self, base: Components, max_collections: int = 8) -> None:
        self.base = base
        self.default_collection = base.settings.collection
        self._cache: OrderedDict[str, Components] = OrderedDict({self.default_collection: base})
        self._max = max_collections
        self._lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        return self.base.settings

    def components(self, collection: str | None = None) -> Components:
        """The components of a collection, built on first use; least recently used dropped."""
        name = collection or self.default_collection
        with self._lock:
            found = self._cache.get(name)
            if found is not None:
                self._cache.move_to_end(name)
                return found
        # Outside the lock: opening a store can take a while.
        built = build_collection(self.base, name)
        with self._lock:
            found = self._cache.setdefault(name, built)
            self._cache.move_to_end(name)
            while len(self._cache) > self._max:
                oldest = next(iter(self._cache))
                if oldest == self.default_collection:
                    self._cache.move_to_end(oldest)
                    oldest = next(iter(self._cache))
                del self._cache[oldest]
            return found

    # -- questions -----------------------------------------------------------------------

    def ask(self, question: str, top_k: int | None = None, filters: Filters | None = None,
            history: Sequence[Turn] = (), collection: str | None = None,
            as_of: date | None = None) -> Answer:
        return self.components(collection).assistant.ask(question, top_k, filters, history,
                                                         as_of)

    def ask_stream(self, question: str, top_k: int | None = None,
                   filters: Filters | None = None, history: Sequence[Turn] = (),
                   collection: str | None = None,
                   as_of: date | None = None) -> Iterator[str | Answer]:
        """Text chunks as produced, then the checked Answer once."""
        assistant = self.components(collection).assistant
        return assistant.ask_stream(question, top_k, filters, history, as_of)

    # -- articles ------------------------------------------------------------------------

    def articles(self, collection: str | None = None) -> list[StoredArticle]:
        found = self.components(collection).store.articles()
        return sorted(found, key=lambda a: (a.title.lower(), a.id))

    def remove(self, article_id: str, collection: str | None = None) -> bool:
        with self._write_lock():
            return self.components(collection).store.remove_article(article_id)

    def passage_count(self, collection: str | None = None) -> int:
        return self.components(collection).store.passage_count()

    def ingest_files(self, files: Iterable[tuple[str, Path]], collection: str | None = None,
                     progress: bool = False) -> UploadReport:
        """Ingest saved uploads; ``files`` pairs the name the user gave with where it lies.

        Each article's origin is the uploaded name, so uploading a changed file of the same
        name replaces what the earlier one gave.
        """
        name = collection or self.default_collection
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        outcomes: list[FileOutcome] = []
        results: list[ReadResult] = []
        for given, path in files:
            shown = safe_filename(given)
            outcome = FileOutcome(shown)
            outcomes.append(outcome)
            for result in read_file(path, max_bytes):
                if isinstance(result, ReadFailure):
                    where = result.where.replace(str(path), shown)
                    outcome.errors.append(f"{where}: {result.reason}")
                    results.append(ReadFailure(where, result.reason))
                else:
                    outcome.articles += 1
                    results.append(dataclasses.replace(
                        result, origin=f"upload:{name}/{shown}",
                        source=result.source.replace(str(path), shown)))  # not the temp path
        return UploadReport(outcomes, self._ingest(results, collection, progress))

    def ingest_records(self, records: Sequence[Any],
                       collection: str | None = None) -> UploadReport:
        """Ingest JSON records (``text`` or ``body``, optional title, url, source, ...)."""
        outcome = FileOutcome("records")
        results: list[ReadResult] = []
        for i, record in enumerate(records):
            result = record_to_article(record, f"upload record {i}")
            if isinstance(result, ReadFailure):
                outcome.errors.append(str(result))
            else:
                outcome.articles += 1
            results.append(result)
        return UploadReport([outcome], self._ingest(results, collection, False))

    def _ingest(self, results: list[ReadResult], collection: str | None,
                progress: bool) -> IngestReport:
        parts = self.components(collection)
        with self._write_lock():
            report = ingest_results(results, parts.store, parts.embedder,
                                    options=split_options(self.settings), progress=progress)
        log.info("upload to %r: %s", parts.settings.collection, report.summary())
        return report

    def _write_lock(self) -> WriteLock:
        """The data folder's writer lock: uploads take turns with `rag ingest` and each other."""
        return write_lock(self.settings, on_wait=lambda msg: log.info("upload: %s", msg))

    # -- health --------------------------------------------------------------------------

    def health(self, collection: str | None = None) -> dict[str, Any]:
        """Store reachability and counts; raises StoreError when the store cannot be used."""
        parts = self.components(collection)
        return {"status": "ok", "collection": parts.settings.collection,
                "store": {"reachable": True, "passages": parts.store.passage_count(),
                          "articles": parts.store.article_count()},
                "embedder": parts.embedder.name, "answerer": parts.answerer_description,
                "retrieval": parts.assistant.retriever.name}
