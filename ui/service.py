"""The application: every use case of the CLI, the HTTP API, the OpenAI endpoint and the chat.

Ingest (paths, uploads, records, URLs, feeds), list, remove, ask, ask_stream, evaluate and
health live here, with what goes with them: the data folder's write lock, the limits, the
checks of what a request names (collections, sources, dates) and the domain errors
(``ui.errors``). The front ends parse, call one method, and render; none of them imports
``index`` (tests/test_project.py checks it). The types the methods take are re-exported here
so that a front end needs nothing else: ``Filters``, ``Turn``, the collection-name rule.

Everything here is synchronous and CPU-bound: callers on an event loop run it in a thread
pool. Writes from the server are jobs of one writer thread (``ui.jobs``); the CLI's writes
call the same code and wait.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.embedder import LazyEmbedder, Vectors
from index.feeds import FeedRecord, Harvest, harvest
from index.fetch import check_url
from index.filters import Filters
from index.ingest import embed_waiting, ingest_results
from index.lock import WriteLock
from index.readers import ReadResult, read_file, read_paths, record_to_article
from index.store import (
    COLLECTION_PATTERN,
    COLLECTION_RULE,
    CollectionNotFound,
    StoredArticle,
    StoreFull,
    disk_full,
    valid_collection_name,
)
from index.types import IngestReport, ReadFailure
from index.web import looks_like_url, read_url
from rag.answerers import Turn
from rag.result import Answer
from ui.errors import SOURCE_ERRORS, CollectionEmpty, InvalidInput
from ui.jobs import Job, WriteQueue
from ui.outcomes import (
    FileOutcome,
    UploadReport,
    add_report,
    outcomes_of,
    report_of,
    skipped,
)
from ui.settings import Settings
from ui.uploads import safe_filename
from ui.wiring import (
    Components,
    Shared,
    build_collection,
    build_embedder,
    build_shared,
    collection_names,
    embed_lease,
    embedder_name,
    feed_registry,
    fetch_options,
    local_data_dir,
    split_options,
    write_lock,
)

__all__ = ["COLLECTION_PATTERN", "COLLECTION_RULE", "SOURCE_ERRORS", "ArticleService",
           "Filters", "IngestSummary", "Turn", "valid_collection_name"]

if TYPE_CHECKING:
    from ui.backfill import BackgroundEmbedder
    from ui.scheduler import FeedScheduler

log = logging.getLogger(__name__)

IngestSummary = IngestReport  # what a synchronous ingest returns (summary(), failures, ...)
EMPTY_COLLECTION = ("the collection {name!r} has no articles yet: add some first (`rag ingest "
                    "PATH`, the chat's Articles tab, or POST /api/articles)")


class ArticleService:
    """Components per collection (the embedder loaded once and shared) and the operations.

    Reads never create a collection (an unknown one is CollectionNotFound); writes do. Every
    write is a job of one writer thread (:class:`ui.jobs.WriteQueue`), so no request thread
    waits for the data folder's lock.
    """

    def __init__(self, base: Components | Shared, max_collections: int = 8) -> None:
        self.shared = base if isinstance(base, Shared) else None
        self._settings = base.settings
        self.default_collection = base.settings.collection
        self._cache: OrderedDict[str, Components] = OrderedDict()
        if isinstance(base, Components):
            self._cache[self.default_collection] = base
        self._max = max_collections
        self._lock = threading.Lock()
        self._sources: dict[str, tuple[str, list[str]]] = {}
        self.writes = WriteQueue(base.settings.write_queue)
        # Set by `rag serve`: uploads then return once stored (searchable by their words) and
        # this embeds them in the background; without it, a job embeds before it finishes.
        self.background: BackgroundEmbedder | None = None
        self.scheduler: FeedScheduler | None = None  # set by `rag serve` when feeds refresh

    def close(self) -> None:
        """Stop the threads working for this service (feed timer, background embedder,
        writer), each after the step under way; the server calls it as it shuts down."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.background is not None:
            self.background.stop()
        self.writes.close()

    @classmethod
    def from_settings(cls, settings: Settings, answers: bool = True) -> ArticleService:
        """A service that builds each collection's components on first use (none is created
        by reading). The embedding model loads only when something is embedded; without
        ``answers`` no language model is built (commands that only read or write)."""
        if not answers:
            settings = settings.model_copy(update={"llm_backend": "extractive"})
        lazy = LazyEmbedder(embedder_name(settings), lambda: build_embedder(settings))
        return cls(build_shared(settings, embedder=lazy, environ=None if answers else {}))

    @classmethod
    def for_writes(cls, settings: Settings) -> ArticleService:
        """A service for a command that only reads or writes articles (no language model)."""
        return cls.from_settings(settings, answers=False)

    @property
    def settings(self) -> Settings:
        return self._settings

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
        built = build_collection(self._template(), name, create=create)
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

    def _template(self) -> Components | Shared:
        """What every collection shares (the model, the answerer): the shared parts, or a
        collection's components when the service was given one."""
        with self._lock:
            template: Components | Shared | None = self.shared or next(
                iter(self._cache.values()), None)
        assert template is not None
        return template

    def collections(self) -> list[str]:
        """The names of the collections in the store, sorted (none is opened or created)."""
        with self._lock:
            opened = next(iter(self._cache.values()), None)
        if opened is not None:  # its client, rather than a new one
            return opened.store.corpora()
        return collection_names(self.settings)

    # -- questions -----------------------------------------------------------------------

    def ask(self, question: str, top_k: int | None = None, filters: Filters | None = None,
            history: Sequence[Turn] = (), collection: str | None = None,
            as_of: date | None = None) -> Answer:
        """The checked answer. CollectionEmpty when there is nothing to ask; InvalidInput
        for an empty question or a filter naming an unknown source."""
        assistant = self._answering(question, filters, collection).assistant
        return assistant.ask(question, top_k, filters, history, as_of)

    def ask_stream(self, question: str, top_k: int | None = None,
                   filters: Filters | None = None, history: Sequence[Turn] = (),
                   collection: str | None = None,
                   as_of: date | None = None) -> Iterator[str | Answer]:
        """Text chunks as produced, then the checked Answer once (checks as for ask)."""
        assistant = self._answering(question, filters, collection).assistant
        return assistant.ask_stream(question, top_k, filters, history, as_of)

    def _answering(self, question: str, filters: Filters | None,
                   collection: str | None) -> Components:
        """The components to answer with, after the checks every front end needs."""
        if not question.strip():
            raise InvalidInput("question", "must not be empty")
        parts = self._non_empty(collection)
        self.check_filters(filters, collection)
        return parts

    def _non_empty(self, collection: str | None) -> Components:
        name = collection or self.default_collection
        try:
            parts = self.components(name)
        except CollectionNotFound:
            if collection is not None:  # a collection the client named: it does not exist
                raise
            raise CollectionEmpty(EMPTY_COLLECTION.format(name=name)) from None
        if parts.store.passage_count() == 0:
            raise CollectionEmpty(EMPTY_COLLECTION.format(name=name))
        return parts

    def check_filters(self, filters: Filters | None, collection: str | None = None) -> None:
        """A filter naming a source no stored article has is an error that says so (it
        would otherwise abstain silently, as if the articles held no answer)."""
        if filters is None or not filters.sources:
            return
        known = set(self.sources(collection))
        unknown = [s for s in filters.sources if s not in known]
        if unknown:
            listed = ", ".join(sorted(known)[:20]) or "none yet"
            raise InvalidInput("filters.sources", f"unknown source {unknown[0]!r} (the "
                               f"collection's sources: {listed})")

    def sources(self, collection: str | None = None) -> list[str]:
        """The sources of the stored articles, sorted: what a filter may name. Remembered
        until the collection is written to (the store's write token changes)."""
        name = collection or self.default_collection
        store = self.components(name).store
        token = store.write_token()
        with self._lock:
            known = self._sources.get(name)
        if known is not None and known[0] == token:
            return known[1]
        found = sorted({a.source for a in store.articles() if a.source})
        with self._lock:
            self._sources[name] = (token, found)
        return found

    # -- articles ------------------------------------------------------------------------

    def articles(self, collection: str | None = None) -> list[StoredArticle]:
        """The stored articles, sorted by title (case-insensitive), then id."""
        found = self.components(collection).store.articles()
        return sorted(found, key=lambda a: (a.title.lower(), a.id))

    def passage_count(self, collection: str | None = None) -> int:
        return self.components(collection).store.passage_count()

    def describe(self, collection: str | None = None) -> dict[str, Any]:
        """What the chat's header shows: the collection, its size, who answers."""
        name = collection or self.default_collection
        try:
            store = self.components(name).store
            articles, passages = store.article_count(), store.passage_count()
            waiting = store.pending_count()
        except CollectionNotFound:
            articles = passages = waiting = 0
        return {"collection": name, "articles": articles, "passages": passages,
                "waiting": waiting,
                "answerer": self.answerer_description(),
                "embedder": embedder_name(self.settings)}

    def answerer_description(self) -> str:
        """Who writes answers, e.g. 'extractive (offline)' or a model's name and address."""
        template = self._template()
        return (template.description if isinstance(template, Shared)
                else template.answerer_description)

    def example_questions(self, collection: str | None = None, count: int = 3) -> list[str]:
        """Questions that fit the collection: about its most recent articles' titles."""
        try:
            found = self.articles(collection)
        except CollectionNotFound:
            return []
        recent = sorted(found, key=lambda a: (a.published or "", a.title), reverse=True)
        titles = [" ".join(a.title.split()[:12]).rstrip(".:;,") for a in recent if a.title]
        return [f"What happened in “{t}”?" for t in titles[:count]]

    # -- synchronous writes (the CLI) ----------------------------------------------------------

    def ingest_sources(self, items: Sequence[str], prune: bool = False,
                       progress: bool = False, collection: str | None = None,
                       fetched: Callable[[Sequence[str]], Iterable[ReadResult]] | None = None,
                       wait: bool = True) -> IngestSummary:
        """Ingest files, folders and http(s) URLs (fetched before the lock is taken).

        Two stages: the articles are stored under the data folder's lock, searchable by
        their words at once; then, with ``wait``, their passages are embedded, the lock taken
        per stored batch so uploads and other writers take turns. Without ``wait`` a
        `rag serve` (or the next ingest) embeds them. ``fetched`` reads the URLs (the CLI
        passes one with a progress bar); failures are in the report, never raised."""
        name = collection or self.default_collection
        urls = [i for i in items if looks_like_url(i)]
        paths = [i for i in items if not looks_like_url(i)]
        options = fetch_options(self.settings)
        pages = list(fetched(urls) if fetched else (read_url(u, options) for u in urls))
        with write_lock(self.settings, on_wait=lambda m: log.warning("%s", m)):
            parts = self.components(name, create=True)
            results = chain(read_paths(paths, self._max_file_bytes()), pages)
            report = ingest_results(results, parts.store, parts.embedder,
                                    options=split_options(self.settings), progress=progress,
                                    prune=prune, wait=False)
        if wait and report.waiting:
            with self._embed_lease():
                report.embedded += embed_waiting(
                    parts.store, parts.embedder, progress=progress,
                    lock=lambda: write_lock(self.settings)).embedded
            report.waiting = parts.store.pending_count()
        return report

    def _embed_lease(self) -> WriteLock:
        """Waits while a `rag serve` of this data folder embeds its pending passages."""
        def waiting(_message: str) -> None:
            log.warning("another process is embedding this data folder's passages; waiting "
                        "for it")

        return embed_lease(self.settings, on_wait=waiting)

    def fetch_url(self, url: str) -> ReadResult:
        """One web page or PDF, fetched within the limits (no lock needed)."""
        return read_url(url, fetch_options(self.settings))

    def remove_many(self, article_ids: Sequence[str],
                    collection: str | None = None) -> list[str]:
        """Remove articles (under the lock); the ids that were not there."""
        self.components(collection)  # an unknown collection fails before anything queues
        return [i for i in article_ids if not self.remove(i, collection)]

    def evaluate(self, questions: Path, articles: Path | None = None,
                 top_k: int | None = None, answers: bool = True, use_dates: bool = True,
                 progress: Callable[[int, int], None] | None = None,
                 compare: bool = False) -> dict[str, Any]:
        """`rag eval`: the metrics of a question file, on the collection or on an eval
        collection of ``articles`` (ingested under the lock, once). ``progress(done, total)``
        follows the rows. Returns the metrics plus ``retriever``, ``collection`` and
        ``top_k``; with ``compare``, ``compare`` holds the dense and BM25 sides' metrics."""
        from ui.evaluation import evaluate_file

        return evaluate_file(self, questions, articles, top_k, answers, use_dates, progress,
                             compare)

    def _max_file_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1_000_000)

    def passages_waiting(self, collection: str | None = None) -> int:
        """Stored passages whose vectors are still being computed (found by BM25 only)."""
        return self.components(collection).store.pending_count()

    def write_problem(self) -> str | None:
        """Why a write would fail now (the data folder's disk is full), or None."""
        return disk_full(local_data_dir(self.settings))

    def embed_texts(self, texts: Sequence[str]) -> tuple[str, Vectors]:
        """The embedding model's name and its vectors of ``texts`` (POST /v1/embeddings)."""
        embedder = self._template().embedder
        return embedder.name, embedder.embed(list(texts))

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
            return UploadReport(outcomes_of(fetched, report), report, name).as_dict()

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
            add_report(total, report)
            outcomes = outcomes_of(results, report)
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
        return report_of(self._finished(self.submit_files(files, collection, cleanup)))

    def ingest_records(self, records: Sequence[Any],
                       collection: str | None = None) -> UploadReport:
        return report_of(self._finished(self.submit_records(records, collection)))

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
        max_bytes = self._max_file_bytes()
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
            skipped(by_origin.get(duplicate.origin, outcomes[-1]), duplicate)
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
            skipped(outcome, duplicate)
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

    def write_lock(self, on_wait: Callable[[str], None] | None = None) -> WriteLock:
        """The data folder's writer lock (every write holds it; one writer at a time)."""
        return write_lock(self.settings, on_wait=on_wait)

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


