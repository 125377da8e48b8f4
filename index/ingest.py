"""Read → split → store → embed, skipping what is already stored unchanged.

Two stages: every new or changed article is first stored with its passages pending (found
by BM25 at once, :mod:`index.pending`), then the pending passages are embedded
(:mod:`index.backfill`). ``wait=False`` stops after the first stage; `rag serve` or the next
ingest does the second.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.backfill import Backfill, LockFactory, embed_pending
from index.clean import clean_article
from index.embedder import Embedder, Vectors
from index.passages import split_article
from index.readers import ReadResult, read_paths
from index.store import PassageStore
from index.types import Article, IngestReport, Passage, ReadFailure, content_hash

log = logging.getLogger(__name__)

# Articles embedded per round: big enough for full embedding batches, small enough that an
# interrupted ingest loses little work.
_ROUND = 32


@dataclass(frozen=True)
class SplitOptions:
    """How articles become passages (sizes chosen on the dev set; see docs/)."""

    max_words: int = 200
    overlap_words: int = 40
    title_in_embedding: bool = True
    clean_boilerplate: bool = True


def embedding_text(article: Article, passage: Passage, options: SplitOptions) -> str:
    """The text embedded for a passage: its title gives a mid-article passage its topic."""
    prefix = embedding_prefix(article, passage, options)
    return f"{prefix}\n{passage.text}" if prefix else passage.text


def embedding_prefix(article: Article, passage: Passage, options: SplitOptions) -> str:
    """What is embedded before the passage's text: its article's title, or nothing."""
    if options.title_in_embedding and article.title and not passage.text.startswith(
            article.title[:40]):
        return article.title
    return ""


def ingest_paths(paths: Iterable[str | Path], store: PassageStore, embedder: Embedder, *,
                 max_bytes: int, options: SplitOptions | None = None,
                 progress: bool = True, prune: bool = False, wait: bool = True) -> IngestReport:
    """Ingest every article found under ``paths``; failures are reported, never raised."""
    return ingest_results(read_paths(paths, max_bytes), store, embedder, options=options,
                          progress=progress, prune=prune, wait=wait)


def ingest_results(results: Iterable[ReadResult], store: PassageStore, embedder: Embedder, *,
                   options: SplitOptions | None = None, progress: bool = True,
                   on_failure: Callable[[ReadFailure], None] | None = None,
                   on_progress: Callable[[int, int], None] | None = None,
                   prune: bool = False, wait: bool = True,
                   lock: LockFactory = nullcontext) -> IngestReport:
    """Ingest already-read articles (the API's uploads come this way too).

    Stored articles of a record file that the file no longer holds are reported in
    ``report.missing``, and removed only with ``prune`` (never for a file with failures).
    ``on_progress(done, total)`` follows the passages as they are stored, then (with
    ``wait``) as the collection's pending passages are embedded, ``lock`` held for each
    batch of them stored (the caller may hold the write lock already: then the default).
    """
    options = options or SplitOptions()
    report = IngestReport()
    batch = _Batch()
    for result in results:
        failure = batch.add(result)
        if failure is not None:
            report.failures.append(failure)
            if failure is not result:
                report.duplicates.append(failure)
            log.debug("skipped %s", failure)  # in the report: each front end says it once
            if on_failure:
                on_failure(failure)
    articles = [clean_article(a) if options.clean_boilerplate else a
                for a in batch.articles.values()]
    work, reuse = _plan(articles, store, report, options)
    _missing_records(batch, store, report, prune)
    _store_searchable(work, store, options, reuse, report, progress, on_progress)
    if wait:
        report.embedded += embed_waiting(store, embedder, progress=progress,
                                         on_progress=on_progress, lock=lock).embedded
    report.waiting = store.pending_count()
    return report


def _store_searchable(work: Sequence[tuple[Article, list[Passage]]], store: PassageStore,
                      options: SplitOptions, reuse: dict[str, Vectors], report: IngestReport,
                      progress: bool, on_progress: Callable[[int, int], None] | None) -> None:
    """The first stage: every article stored, round by round, its passages pending unless
    their vectors are known; each round is searchable by its words once written."""
    total = sum(len(p) for _, p in work)
    with tqdm(total=len(work), unit="article", desc="searchable",
              disable=not progress or not work) as bar:
        for start in range(0, len(work), _ROUND):
            part = work[start:start + _ROUND]
            _store_round(part, store, options, reuse)
            report.passages += sum(len(p) for _, p in part)
            bar.update(len(part))
            if on_progress is not None:
                on_progress(report.passages, total)


def embed_waiting(store: PassageStore, embedder: Embedder, *, progress: bool = True,
                  on_progress: Callable[[int, int], None] | None = None,
                  lock: LockFactory = nullcontext) -> Backfill:
    """The second stage: every pending passage of the collection embedded (this run's, and
    any an earlier run or a killed one left), under a progress bar."""
    total = store.pending_count()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        bar.update(n)
        if on_progress is not None:
            on_progress(done, total)

    with tqdm(total=total, unit="passage", desc=f"embedding ({embedder.name})",
              disable=not progress or total == 0) as bar:
        return embed_pending(store, embedder, progress=advance, lock=lock)


@dataclass
class _Batch:
    """The articles of one run by id, and which record files were read (and whole)."""

    articles: dict[str, Article] = field(default_factory=dict)
    records: dict[str, set[str]] = field(default_factory=dict)  # record file -> ids read
    failed: set[str] = field(default_factory=set)  # files with a failure: never pruned

    def add(self, result: ReadResult) -> ReadFailure | None:
        """Take one read result; a failure (or a second article with the same id) is
        returned for the report."""
        if isinstance(result, ReadFailure):
            self.failed.add(result.origin)
            return result
        first = self.articles.get(result.id)
        if first is not None:
            self.failed.add(result.origin)
            what = "text" if result.id == content_hash(result.text) else f"id {result.id!r}"
            return ReadFailure(result.where or result.origin, f"same {what} as "
                               f"{first.where or first.origin}: skipped (each article once; "
                               "give records distinct ids)", result.origin)
        self.articles[result.id] = result
        if result.origin and not result.whole_file:
            self.records.setdefault(result.origin, set()).add(result.id)
        return None


def _missing_records(batch: _Batch, store: PassageStore, report: IngestReport,
                     prune: bool) -> None:
    """Stored articles of the record files read that those files no longer hold."""
    if not batch.records:
        return
    stored = store.articles_from_origins(list(batch.records))
    for origin, ids in batch.records.items():
        gone = sorted(a.id for a in stored.get(origin, []) if a.id not in ids)
        if not gone:
            continue
        if prune and origin not in batch.failed:
            for article_id in gone:
                store.remove_article(article_id)
            report.pruned += len(gone)
            log.info("pruned %d article(s) no longer in %s", len(gone), origin)
        else:
            report.missing[origin] = gone


def _plan(articles: Sequence[Article], store: PassageStore, report: IngestReport,
          options: SplitOptions) -> tuple[list[tuple[Article, list[Passage]]], dict[str, Vectors]]:
    """Decide per article: unchanged (skip), replaced or added; split those to be written.

    An article replaces what is stored under its id; a whole-file article (.txt, .md,
    .html) also replaces what its file gave before, since an edit changes its
    content-derived id. Records never replace a sibling from the same file.
    Also returns the stored vectors of replaced articles by embedding-text hash: an edited
    article re-embeds only the passages whose text changed.
    """
    stored = {a.id: a for a in store.articles([a.id for a in articles])}
    changed = [a for a in articles
               if a.id not in stored or stored[a.id].hash != a.hash]
    report.unchanged += len(articles) - len(changed)
    by_origin = store.articles_from_origins([a.origin for a in changed
                                             if a.origin and a.whole_file])
    work: list[tuple[Article, list[Passage]]] = []
    reuse: dict[str, Vectors] = {}
    for article in changed:
        stale = [a for a in by_origin.get(article.origin, []) if a.id != article.id]
        old_ids = [a.id for a in stale] + ([article.id] if article.id in stored else [])
        if old_ids:
            reuse.update(store.vectors_by_text_hash(old_ids))
            report.replaced += 1
        else:
            report.added += 1
        for old in stale:  # the file changed, so its content-derived id changed too
            store.remove_article(old.id)
        work.append((article, split_article(article, options.max_words, options.overlap_words)))
    return work, reuse


def _store_round(work: Sequence[tuple[Article, list[Passage]]], store: PassageStore,
                 options: SplitOptions, reuse: dict[str, Vectors]) -> None:
    """Store one round of articles: passages whose embedded text already has a vector (an
    edit's unchanged passages, a text stored before) with it, the others pending."""
    prefixes = [embedding_prefix(a, p, options) for a, passages in work for p in passages]
    texts = [embedding_text(a, p, options) for a, passages in work for p in passages]
    hashes = [text_hash(t) for t in texts]
    known = {**store.vectors_for_hashes([h for h in hashes if h not in reuse]), **reuse}
    width = len(next(iter(known.values()))) if known else 1
    missing = np.full(width, np.nan, dtype=np.float32)  # "not embedded yet"
    vectors = (np.stack([known.get(h, missing) for h in hashes]) if hashes
               else np.zeros((0, width), np.float32))
    batch: list[tuple[Article, list[Passage], Vectors]] = []
    offset = 0
    for article, passages in work:
        batch.append((article, passages, vectors[offset:offset + len(passages)]))
        offset += len(passages)
    # one round, a few Chroma calls, not three per article
    store.write_articles(batch, hashes, prefixes)


def text_hash(text: str) -> str:
    """Key of an embedding text: equal texts get equal vectors from the same model."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
