"""A BM25 index over the stored passages (bm25s), derived from Chroma and kept in step with it.

Chroma is the source of truth. The BM25 index is a cache of it saved under
``<data_dir>/bm25/<collection>/`` together with a *stamp* of the store it was built from:
the passage and article counts plus the store's write token, which every write replaces
(``PassageStore.write_token``: before and after each article write or remove, so also when
a write is interrupted). Whoever wrote to the store, in whatever process, the stamp differs;
it costs three small Chroma calls (well under a millisecond embedded), so it is checked
before each query, and a stale index is rebuilt (~1 s for 5,000 passages).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from index.filters import Filters, day_number
from index.lock import WriteLock
from index.store import PassageStore, full_error

log = logging.getLogger(__name__)

_META = "passages.json"
_REBUILD_WAIT = 600.0  # seconds a process waits for another one's rebuild (100k: ~1 min)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    """One stemmer per process: building it for every question cost more than using it."""
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _bm25s() -> Any:
    """bm25s, imported once. It sets its own logger to DEBUG on import, which printed its
    internal steps ("Building index from tokens") into every command's output."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, English-stemmed words without stopwords, as bm25s does it."""
    bm25s = _bm25s()

    tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(),
                            return_ids=False, show_progress=False)
    return [list(t) for t in tokens]


class _Built:
    """One loaded index: bm25s models over passages and over whole articles, plus metadata
    arrays for filtering (per passage, and per article at the first passage's position)."""

    def __init__(self, model: Any, article_model: Any, meta: dict[str, Any]) -> None:
        self.model = model
        self.article_model = article_model
        self.stamp: str = meta["stamp"]
        self.ids: list[str] = meta["ids"]
        self.article_ids = np.array(meta["article_ids"], dtype=object)
        self.sources = np.array(meta["sources"], dtype=object)
        self.days = np.array(meta["days"], dtype=np.int64)
        firsts = _first_positions(meta["article_ids"])
        self.articles: list[str] = [meta["article_ids"][i] for i in firsts]
        self._firsts = np.array(firsts, dtype=np.int64)

    def article_mask(self, where: Filters | None) -> npt.NDArray[np.float32] | None:
        mask = self.mask(where)
        return None if mask is None else mask[self._firsts]

    def mask(self, where: Filters | None) -> npt.NDArray[np.float32] | None:
        """The filter as a 0/1 weight per passage (the BM25 side of ``Filters.to_where``)."""
        if where is None or where.is_empty():
            return None
        keep = np.ones(len(self.ids), dtype=bool)
        if where.sources:
            keep &= np.isin(self.sources, list(where.sources))
        if where.article_ids:
            keep &= np.isin(self.article_ids, list(where.article_ids))
        if where.exclude_article_ids:
            keep &= ~np.isin(self.article_ids, list(where.exclude_article_ids))
        days = where.day_range()
        if days is not None:
            keep &= (self.days >= days[0]) & (self.days <= days[1])
        return keep.astype(np.float32)


class LexicalIndex:
    """BM25 search over one collection's passages, rebuilt from the store whenever stale."""

    def __init__(self, store: PassageStore, folder: Path) -> None:
        self._store = store
        self.folder = folder
        self._built: _Built | None = None
        self._lock = threading.Lock()
        self.rebuilds = 0  # how many times this process rebuilt the index (tests, logs)

    def stamp(self) -> str:
        """What the index must have been built from (``PassageStore.content_stamp``: the
        write token, and counts while a write is unfinished); a passage getting its vector
        leaves it as it was, since its text stays."""
        return self._store.content_stamp()

    def search(self, question: str, k: int,
               where: Filters | None = None) -> list[tuple[str, float]]:
        """(passage id, BM25 score) of the k best passages with a positive score."""
        return self.rank(question, k, 0, where)[0]

    def search_articles(self, question: str, k: int,
                        where: Filters | None = None) -> list[tuple[str, float]]:
        """(article id, BM25 score) of the k best whole articles: evidence spread over several
        passages of one article counts together."""
        return self.rank(question, 0, k, where)[1]

    def rank(self, question: str, passages: int, articles: int,
             where: Filters | None = None
             ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Both rankings from one freshness check: the best passages and the best articles.

        An index that fails while scoring (its files were damaged after loading) is rebuilt
        from the store once, and the question scored again.
        """
        tokens = tokenize([question])[0]
        built = self._current()
        try:
            return self._rank(built, tokens, passages, articles, where)
        except Exception as exc:
            log.warning("bm25: the index in %s failed (%s); rebuilding it", self.folder, exc)
            with self._lock:
                self._built = self._rebuild(self.stamp())
            return self._rank(self._built, tokens, passages, articles, where)

    @staticmethod
    def _rank(built: _Built, tokens: list[str], passages: int, articles: int,
              where: Filters | None
              ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        if not built.ids or not tokens:
            return [], []
        best: list[tuple[str, float]] = []
        best_articles: list[tuple[str, float]] = []
        if passages > 0:
            best = _top(built.model.get_scores(tokens), built.mask(where), built.ids, passages)
        if articles > 0:
            best_articles = _top(built.article_model.get_scores(tokens),
                                 built.article_mask(where), built.articles, articles)
        return best, best_articles

    def _current(self) -> _Built:
        """The in-memory index if fresh, else the saved one if fresh, else a rebuild."""
        stamp = self.stamp()
        with self._lock:
            if self._built is not None and self._built.stamp == stamp:
                return self._built
            loaded = self._load()
            if loaded is None or loaded.stamp != stamp:
                loaded = self._rebuild_shared(stamp)
            self._built = loaded
            return loaded

    def _rebuild_shared(self, stamp: str) -> _Built:
        """Rebuild, unless another process sharing this data folder (a second `rag serve`)
        has just done it: they take turns on a file lock, and whoever comes second loads
        the first one's index instead of building its own."""
        with WriteLock(self.folder.parent, timeout=_REBUILD_WAIT,
                       name=f".{self.folder.name}.lock"):
            loaded = self._load()
            if loaded is not None and loaded.stamp == stamp:
                return loaded
            return self._rebuild(stamp)

    def _load(self) -> _Built | None:
        """The saved index, or None when it is missing or damaged in any way (a truncated
        file, a trimmed id list, arrays that do not fit together): then it is rebuilt."""
        bm25s = _bm25s()

        try:
            meta = json.loads((self.folder / _META).read_text(encoding="utf-8"))
            model = articles = None
            if meta["ids"]:  # memory-mapped: processes sharing the folder share the pages
                model = bm25s.BM25.load(str(self.folder / "passages"), mmap=True)
                articles = bm25s.BM25.load(str(self.folder / "articles"), mmap=True)
            built = _Built(model, articles, meta)
            if not _consistent(built):
                raise ValueError("the saved index does not fit together")
        except Exception as exc:
            if (self.folder / _META).exists():
                log.warning("bm25: the saved index in %s is damaged (%s); rebuilding it",
                            self.folder, exc)
            return None
        return built

    def _rebuild(self, stamp: str) -> _Built:
        """Index every stored passage (title + text, as embedded) and save it atomically."""
        try:
            return self._build_and_save(stamp)
        except OSError as exc:
            full = full_error(self.folder.parent, exc)
            if full is not None:
                raise full from exc
            raise

    def _build_and_save(self, stamp: str) -> _Built:
        bm25s = _bm25s()

        passages = list(self._store.all_passages())
        meta: dict[str, Any] = {
            "stamp": stamp, "ids": [p.id for p in passages],
            "article_ids": [p.article_id for p in passages],
            "sources": [p.source for p in passages],
            "days": [day_number(p.published) for p in passages]}
        model = articles = None
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bm25-", dir=self.folder.parent))
        if passages:
            tokens = tokenize([f"{p.title}\n{p.text}" for p in passages])
            model = bm25s.BM25()
            model.index(tokens, show_progress=False)
            model.save(str(tmp / "passages"), show_progress=False)
            by_article: dict[str, list[str]] = {}
            for p, t in zip(passages, tokens, strict=True):
                by_article.setdefault(p.article_id, []).extend(t)
            articles = bm25s.BM25()
            articles.index([by_article[a] for a in dict.fromkeys(meta["article_ids"])],
                           show_progress=False)
            articles.save(str(tmp / "articles"), show_progress=False)
        (tmp / _META).write_text(json.dumps(meta), encoding="utf-8")
        _sync_tree(tmp)  # on disk before the swap: a crash never leaves a torn index
        old = self.folder.with_name(f".old-{self.folder.name}-{os.getpid()}")
        if self.folder.exists():  # swap whole folders so a reader never sees a mix
            os.replace(self.folder, old)
        os.replace(tmp, self.folder)
        _sync(self.folder.parent)
        shutil.rmtree(old, ignore_errors=True)
        self.rebuilds += 1
        log.info("bm25: indexed %d passages in %s", len(passages), self.folder)
        return _Built(model, articles, meta)


def _consistent(built: _Built) -> bool:
    """Do the loaded parts describe the same passages and articles?"""
    n = len(built.ids)
    if not (len(built.article_ids) == len(built.sources) == len(built.days) == n):
        return False
    if n == 0:
        return built.model is None
    return _sound(built.model, n) and _sound(built.article_model, len(built.articles))


def _sound(model: Any, docs: int) -> bool:
    """A bm25s model whose sparse score matrix is whole and covers ``docs`` documents."""
    scores = model.scores
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    return bool(int(scores["num_docs"]) == docs and len(data) == len(indices) > 0
                and len(indptr) in (len(model.vocab_dict), len(model.vocab_dict) + 1)
                and int(indptr[-1]) == len(data) and int(indices.max()) < docs
                and int(indices.min()) >= 0 and np.all(np.diff(indptr) >= 0))


def _sync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _sync(path)


def _sync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _top(scores: npt.NDArray[Any], mask: npt.NDArray[np.float32] | None, ids: Sequence[str],
         k: int) -> list[tuple[str, float]]:
    """The k best (id, score) with a positive score, best first."""
    if mask is not None:
        scores = scores * mask
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]


def _first_positions(article_ids: Sequence[str]) -> list[int]:
    """Index of each article's first passage, in first-seen order."""
    seen: dict[str, int] = {}
    for i, aid in enumerate(article_ids):
        seen.setdefault(aid, i)
    return list(seen.values())
