"""What the API and the chat share: per-collection components, asking, ingesting uploads.

Both front ends call this in-process, so a question asked in the chat and over HTTP takes the
same path. Everything here is synchronous and CPU-bound: callers on an event loop run it in a
thread pool.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.embedder import LazyEmbedder
from index.feeds import FeedError, FeedRecord, Harvest, harvest
from index.fetch import FetchError, check_url
from index.ingest import ingest_results
from index.lock import WriteLock
from index.readers import ReadResult, read_file, record_to_article
from index.store import StoredArticle, StoreFull
from index.types import Article, IngestReport, ReadFailure
from index.web import read_url
from rag.answerers import Turn
from rag.filters import Filters
from rag.result import Answer
from ui.jobs import Job, WriteQueue
from ui.settings import Settings
from ui.uploads import safe_filename
from ui.wiring import (
    Components,
    build,
    build_collection,
    build_embedder,
    embedder_name,
    feed_registry,
    fetch_options,
    split_options,
    write_lock,
)

if TYPE_CHECKING:
    from ui.backfill import BackgroundEmbedder

log = logging.getLogger(__name__)

# A URL or feed that could not be read: the front ends report it as that source's failure.
SOURCE_ERRORS = (FetchError, FeedError)


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
    collection: str = ""
    feeds: list[dict[str, Any]] | None = None  # feed jobs: each feed's state afterwards

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        found = {"collection": self.collection, "files": [f.as_dict() for f in self.files],
                 "added": r.added, "unchanged": r.unchanged, "replaced": r.replaced,
                 "failed": r.failed, "passages": r.passages}
        if self.feeds is not None:
            found["feeds"] = self.feeds
        return found


class ArticleService:
    """Components per collection (the embedder loaded once and shared) and the operations.

    Reads never create a collection (an unknown one is CollectionNotFound); writes do. Every
    write is a job of one writer thread (:class:`ui.jobs.WriteQueue`), so no request thread
    waits for the data folder's lock.
    """

    def __init__(self, base: Components, max_collections: int = 8) -> None:
        self.base = base
        self.default_collection = base.settings.collection
        self._cache: OrderedDict[str, Components] = OrderedDict({self.default_collection: base})
        self._max = max_collections
        self._lock = threading.Lock()
        self.writes = WriteQueue(base.settings.write_queue)
        # Set by `rag serve`: uploads then return once stored (searchable by their words) and
        # this embeds them in the background; without it, a job embeds before it finishes.
        self.background: BackgroundEmbedder | None = None

    @classmethod
    def for_writes(cls, settings: Settings) -> ArticleService:
        """A service for a command that only writes: the embedding model loads only if
        something is embedded, and no language model is built."""
        plain = settings.model_copy(update={"llm_backend": "extractive"})
        lazy = LazyEmbedder(embedder_name(plain), lambda: build_embedder(plain))
        return cls(build(plain, embedder=lazy, environ={}))

    @property
    def settings(self) -> Settings:
        return self.base.settings

    def components(self, collection: str | None = None, create: bool = False) -> Components:
        """The components of a collection, built on first use; least recently used dropped.
        Without ``create`` an unknown collection raises CollectionNotFound."""
        name = collection or self.default_collection
        with self._lock:
            found = self._cache.get(name)
            if found is not None:
                self._cache.move_to_end(name)
                return found
        # Outside the lock: opening a store can take a while.
        built = build_collection(self.base, name, create=create)
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

    def collections(self) -> list[str]:
        """The names of the collections in the store, sorted."""
        return self.base.store.corpora()

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

    def passage_count(self, collection: str | None = None) -> int:
        return self.components(collection).store.passage_count()

    def passages_waiting(self, collection: str | None = None) -> int:
        """Stored passages whose vectors are still being computed (found by BM25 only)."""
        return self.components(collection).store.pending_count()

    # -- writes: queued jobs ---------------------------------------------------------------

    def submit_files(self, files: Sequence[tuple[str, Path]], collection: str | None = None,
                     cleanup: Callable[[], None] | None = None) -> Job:
        """Queue saved uploads for ingest; ``files`` pairs the name the user gave with where
        it lies, ``cleanup`` removes them once the job is over (done, failed or refused).

        Each article's origin is the uploaded name, so uploading a changed file of the same
        name replaces what the earlier one gave (records keep their own identity).
        """
        name = collection or self.default_collection
        return self.writes.submit("ingest", name, lambda job: self._ingest_files(
            job, files, name).as_dict(), cleanup)

    def submit_records(self, records: Sequence[Any], collection: str | None = None) -> Job:
        """Queue JSON records (``text`` or ``body``, optional title, url, source, ...)."""
        name = collection or self.default_collection
        return self.writes.submit("ingest", name, lambda job: self._ingest_records(
            job, records, name).as_dict())

    def submit_remove(self, article_id: str, collection: str | None = None) -> Job:
        """Queue the removal of an article; the result says whether it was there."""
        name = collection or self.default_collection

        def run(job: Job) -> dict[str, Any]:
            with self._write_lock(job):
                removed = self.components(name).store.remove_article(article_id)
            return {"collection": name, "id": article_id, "removed": removed}

        return self.writes.submit("remove", name, run)

    def submit_urls(self, urls: Sequence[str], collection: str | None = None) -> Job:
        """Queue web pages and PDFs by URL: fetched first (on a fetcher thread, never
        holding the writer), then ingested like files; each URL has its own outcome."""
        name = collection or self.default_collection
        fetched: list[ReadResult] = []
        options = fetch_options(self.settings)

        def prepare(job: Job) -> None:
            for n, url in enumerate(urls, start=1):
                job.note = f"fetching {n} of {len(urls)}: {url[:200]}"
                fetched.append(read_url(url, options))
            job.note = ""

        def run(job: Job) -> dict[str, Any]:
            with self._write_lock(job):
                report = self._ingest_unlocked(job, fetched, name)
            return UploadReport(_outcomes(fetched, report), report, name).as_dict()

        return self.writes.submit("ingest", name, run, prepare=prepare)

    # -- feeds ---------------------------------------------------------------------------

    def feeds(self, collection: str | None = None) -> list[FeedRecord]:
        """The followed feeds (of one collection, when named), in the order added."""
        found = feed_registry(self.settings).load()
        return [f for f in found if collection is None or f.collection == collection]

    def submit_feed_add(self, url: str, collection: str | None = None) -> Job:
        """Queue following a feed: it is fetched and parsed first (a page that is no feed is
        refused and not added), then added and its entries ingested."""
        name = collection or self.default_collection
        check_url(url)  # a refused scheme or port fails now, not in the job
        harvests: list[Harvest] = []

        def prepare(job: Job) -> None:
            job.note = f"fetching the feed {url[:200]}"
            found = harvest(FeedRecord(url=url, collection=name), fetch_options(self.settings),
                            on_entry=lambda link: setattr(job, "note", f"fetching {link}"))
            if found.failure is not None:  # the same kind of error, naming the feed
                raise type(found.failure)(f"{url}: {found.failure}")
            harvests.append(found)

        def run(job: Job) -> dict[str, Any]:
            with self._write_lock(job):
                feed, _ = feed_registry(self.settings).add(url, name)
                harvests[0].feed_url = feed.url
                return self._ingest_harvests(job, harvests, name)

        return self.writes.submit("ingest", name, run, prepare=prepare)

    def submit_feed_refresh(self, urls: Sequence[str] = ()) -> Job:
        """Queue a refresh of the followed feeds (or of those named): new entries are read,
        seen ones skipped, and each feed's status and error recorded."""
        wanted = set(urls)
        harvests: list[Harvest] = []

        def prepare(job: Job) -> None:
            feeds = [f for f in self.feeds() if not wanted or f.url in wanted]
            for n, feed in enumerate(feeds, start=1):
                job.note = f"fetching feed {n} of {len(feeds)}: {feed.url[:200]}"
                harvests.append(harvest(feed, fetch_options(self.settings)))

        def run(job: Job) -> dict[str, Any]:
            with self._write_lock(job):
                return self._ingest_harvests(job, harvests, self.default_collection)

        return self.writes.submit("ingest", self.default_collection, run, prepare=prepare)

    def submit_feed_remove(self, url: str, collection: str | None = None) -> Job:
        """Queue no longer following a feed (its articles stay); the result says whether it
        was followed."""
        name = collection or self.default_collection

        def run(job: Job) -> dict[str, Any]:
            with self._write_lock(job):
                removed = feed_registry(self.settings).remove(url, name)
            return {"collection": name, "id": url, "removed": removed}

        return self.writes.submit("remove", name, run)

    def _ingest_harvests(self, job: Job, harvests: list[Harvest],
                         collection: str) -> dict[str, Any]:
        """Ingest the entries of each harvest into its feed's collection and record each
        feed's outcome (the caller holds the write lock)."""
        registry = feed_registry(self.settings)
        total = IngestReport()
        files: list[FileOutcome] = []
        feeds: list[dict[str, Any]] = []
        for found in harvests:
            results = [e.result for e in found.entries]
            report = self._ingest_unlocked(job, results, found.collection)
            _add_report(total, report)
            outcomes = _outcomes(results, report)
            files.extend(outcomes)
            stored = {e.key for e, o in zip(found.entries, outcomes, strict=True)
                      if o.status == "ok"}
            record = registry.record(found, stored)
            if record is not None:
                feeds.append(record.summary())
        return UploadReport(files, total, collection, feeds).as_dict()

    def job(self, job_id: str) -> Job | None:
        return self.writes.get(job_id)

    def ingest_files(self, files: Sequence[tuple[str, Path]], collection: str | None = None,
                     cleanup: Callable[[], None] | None = None) -> UploadReport:
        """Queue an ingest and wait for it (in-process callers: the chat, tests)."""
        return _report(self._finished(self.submit_files(files, collection, cleanup)))

    def ingest_records(self, records: Sequence[Any],
                       collection: str | None = None) -> UploadReport:
        return _report(self._finished(self.submit_records(records, collection)))

    def remove(self, article_id: str, collection: str | None = None) -> bool:
        return bool(self._finished(self.submit_remove(article_id, collection))["removed"])

    @staticmethod
    def _finished(job: Job) -> dict[str, Any]:
        job.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _ingest_files(self, job: Job, files: Sequence[tuple[str, Path]],
                      collection: str) -> UploadReport:
        max_bytes = int(self.settings.max_file_mb * 1_000_000)
        outcomes: list[FileOutcome] = []
        results: list[ReadResult] = []
        for given, path in files:
            shown = safe_filename(given)
            outcome = FileOutcome(shown)
            outcomes.append(outcome)
            for result in read_file(path, max_bytes, origin=f"upload:{collection}/{shown}",
                                    where=shown):
                if isinstance(result, ReadFailure):
                    outcome.errors.append(str(result))
                else:
                    outcome.articles += 1
                results.append(result)
        report = self._ingest(job, results, collection)
        by_origin = {f"upload:{collection}/{o.name}": o for o in outcomes}
        for duplicate in report.duplicates:
            _skipped(by_origin.get(duplicate.origin, outcomes[-1]), duplicate)
        return UploadReport(outcomes, report, collection)

    def _ingest_records(self, job: Job, records: Sequence[Any],
                        collection: str) -> UploadReport:
        outcome = FileOutcome("records")
        results: list[ReadResult] = []
        for i, record in enumerate(records):
            result = record_to_article(record, f"record {i + 1}")
            if isinstance(result, ReadFailure):
                outcome.errors.append(str(result))
            else:
                outcome.articles += 1
            results.append(result)
        report = self._ingest(job, results, collection)
        for duplicate in report.duplicates:
            _skipped(outcome, duplicate)
        return UploadReport([outcome], report, collection)

    def _ingest(self, job: Job, results: list[ReadResult], collection: str) -> IngestReport:
        with self._write_lock(job):
            return self._ingest_unlocked(job, results, collection)

    def _ingest_unlocked(self, job: Job, results: list[ReadResult],
                         collection: str) -> IngestReport:
        """Ingest read results into a collection (created if need be); the caller holds
        the write lock."""
        def advance(done: int, total: int) -> None:
            job.progress = (done, total)

        parts = self.components(collection, create=True)
        report = ingest_results(results, parts.store, parts.embedder,
                                options=split_options(self.settings), progress=False,
                                on_progress=advance, wait=self.background is None)
        log.info("ingest into %r: %s", collection, report.summary())
        if self.background is not None:
            self.background.wake()
        return report

    def _write_lock(self, job: Job) -> WriteLock:
        """The data folder's writer lock: uploads take turns with `rag ingest`; while it is
        busy the job says so."""
        def waiting(message: str) -> None:
            job.note = message
            log.info("upload: %s", message)

        return write_lock(self.settings, on_wait=waiting)

    # -- health --------------------------------------------------------------------------

    def health(self, collection: str | None = None) -> dict[str, Any]:
        """Store reachability, writability and counts; raises StoreError when the store
        cannot be used."""
        parts = self.components(collection)
        problem = parts.store.write_problem()
        store: dict[str, Any] = {"reachable": True, "writable": problem is None}
        try:
            waiting = parts.store.pending_count()
            store.update(passages=parts.store.passage_count(),
                         articles=parts.store.article_count(),
                         embedded=parts.store.embedded_count(), waiting=waiting)
        except StoreFull as exc:  # a failed compaction stops reads until space is freed
            problem = str(exc)
            store.update(writable=False)
        if problem:
            store["problem"] = problem
        return {"status": "ok" if problem is None else "degraded",
                "collection": parts.settings.collection, "store": store,
                "embedder": parts.embedder.name, "answerer": parts.answerer_description,
                "retrieval": parts.assistant.retriever.name,
                "writes_waiting": self.writes.waiting()}


def list_feeds(settings: Settings, collection: str | None = None) -> list[dict[str, Any]]:
    """The followed feeds as listed (url, collection, title, status, error, ...)."""
    return [f.summary() for f in feed_registry(settings).load()
            if collection is None or f.collection == collection]


def _report(result: dict[str, Any]) -> UploadReport:
    files = [FileOutcome(f["name"], f["articles"], list(f["errors"])) for f in result["files"]]
    report = IngestReport(added=result["added"], unchanged=result["unchanged"],
                          replaced=result["replaced"], passages=result["passages"])
    report.failures = [ReadFailure(e, "") for f in files for e in f.errors]
    return UploadReport(files, report, result["collection"])


def _outcomes(results: Sequence[ReadResult], report: IngestReport) -> list[FileOutcome]:
    """One outcome per result (a URL, a feed entry), named by where it came from."""
    skipped = {d.where: d for d in report.duplicates}
    outcomes: list[FileOutcome] = []
    for result in results:
        outcome = FileOutcome(result.where)
        if isinstance(result, ReadFailure):
            outcome.errors.append(str(result))
        elif isinstance(result, Article) and result.where in skipped:
            outcome.errors.append(str(skipped[result.where]))
        else:
            outcome.articles = 1
        outcomes.append(outcome)
    return outcomes


def _add_report(total: IngestReport, part: IngestReport) -> None:
    total.added += part.added
    total.unchanged += part.unchanged
    total.replaced += part.replaced
    total.passages += part.passages
    total.embedded += part.embedded
    total.failures.extend(part.failures)
    total.duplicates.extend(part.duplicates)


def _skipped(outcome: FileOutcome, duplicate: ReadFailure) -> None:
    """A record read but skipped at ingest (its id repeats another's) is an error of its file."""
    outcome.errors.append(str(duplicate))
    outcome.articles = max(0, outcome.articles - 1)
