"""Question to ranked passages."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

from index.embedder import Embedder
from index.filters import Filters
from index.lexical import LexicalIndex
from index.store import PassageStore, StoredPassage
from rag.dedupe import Distinct
from rag.rerank import PassThroughReranker, Reranker
from rag.result import RetrievedPassage


class Retriever(Protocol):
    """Anything that ranks stored passages for a question."""

    name: str

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]: ...


def to_result(passage: StoredPassage, score: float) -> RetrievedPassage:
    return RetrievedPassage(passage_id=passage.id, article_id=passage.article_id,
                            title=passage.title, source=passage.source, url=passage.url,
                            published=passage.published, text=passage.text, start=passage.start,
                            end=passage.end, page=passage.page, score=round(score, 4))


class DenseRetriever:
    """Nearest passages by embedding cosine similarity, straight from Chroma."""

    name = "dense"

    def __init__(self, store: PassageStore, embedder: Embedder) -> None:
        self._store = store
        self._embedder = embedder

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        """``as_of`` is accepted for the protocol and ignored: pure similarity."""
        vector = self._embedder.embed_query(question)
        where = filters.to_where() if filters else None
        return [to_result(p, s) for p, s in self._store.query(vector, k, where)]


@dataclass(frozen=True)
class FusionOptions:
    """How the dense and BM25 rankings are combined (defaults chosen on the dev set)."""

    k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 100  # passages each ranking contributes before fusion (see docs)
    article_weight: float = 1.0  # weight of the whole-article BM25 ranking (hybrid, bm25)
    per_article: int = 1  # at most this many passages of one article in the results (0: any)
    dedupe_threshold: float = 0.6
    recency_weight: float = 1.0  # weight of the closeness-to-as_of ranking (when as_of given)


def reciprocal_rank_fusion(rankings: Sequence[tuple[Sequence[str], float]],
                           k: int = 60) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(id) = sum of weight / (k + rank), rank from 1; best first."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        for rank, pid in enumerate(ids, start=1):
            scores[pid] = scores.get(pid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def limit_per_article(ranked: Sequence[RetrievedPassage], limit: int) -> list[RetrievedPassage]:
    """Keep at most ``limit`` passages per article, in order: one long article that matches
    everywhere cannot fill the top-k, so the answerer sees more articles."""
    seen: dict[str, int] = {}
    kept = []
    for passage in ranked:
        seen[passage.article_id] = seen.get(passage.article_id, 0) + 1
        if seen[passage.article_id] <= limit:
            kept.append(passage)
    return kept


@dataclass
class Pool:
    """What the rankings found for one question, before fusion: each side's candidates,
    best first, with their own scores, and every passage already fetched."""

    dense: list[tuple[str, float]] = field(default_factory=list)  # (passage id, cosine)
    lexical: list[tuple[str, float]] = field(default_factory=list)  # (passage id, BM25)
    articles: list[tuple[str, float]] = field(default_factory=list)  # (article id, BM25)
    found: dict[str, StoredPassage] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)  # BM25 candidates without a vector yet


class HybridRetriever:
    """Dense (Chroma) and BM25 rankings fused by reciprocal rank fusion, then near-duplicates
    collapsed and the reranking stage applied. ``mode`` 'dense' or 'bm25' uses one side only,
    with the same dedupe and reranking, so the three can be compared like for like.

    The three steps (:meth:`pool`, :meth:`fuse`, :meth:`finish`) are methods so that a
    benchmark can measure another query or another fusion on exactly the same machinery."""

    def __init__(self, store: PassageStore, embedder: Embedder, lexical: LexicalIndex,
                 options: FusionOptions | None = None, reranker: Reranker | None = None,
                 mode: Literal["hybrid", "dense", "bm25"] = "hybrid") -> None:
        self._store = store
        self._embedder = embedder
        self._lexical = lexical
        self.options = options or FusionOptions()
        self.reranker: Reranker = reranker or PassThroughReranker()
        self.mode = mode
        self.name: str = mode

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        """The k best passages; with ``as_of``, passages published shortly before that date
        gain a little (see :func:`recency_ranking`)."""
        pool = self.pool(question, max(self.options.candidates, k), filters)
        return self.finish(question, pool, self.fuse(pool), k, as_of)

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        """Each side's ``n`` best candidates (the sides ``mode`` uses)."""
        pool = Pool()
        if self.mode != "bm25":
            where = filters.to_where() if filters else None
            dense = self._store.query(self._embedder.embed_query(question), n, where)
            pool.found.update((p.id, p) for p, _ in dense)
            pool.dense = [(p.id, score) for p, score in dense]
        if self.mode != "dense":
            with_articles = n if self.options.article_weight > 0 else 0
            pool.lexical, pool.articles = self._lexical.rank(question, n, with_articles,
                                                             filters)
        if self.mode == "hybrid":  # what the dense side found has its vector
            pool.pending = self._store.pending_ids([pid for pid, _ in pool.lexical
                                                    if pid not in pool.found])
        return pool

    def fuse(self, pool: Pool) -> list[tuple[str, float]]:
        """Reciprocal rank fusion of the sides, plus the whole-article ranking; best first."""
        o = self.options
        rankings: list[tuple[Sequence[str], float]] = []
        if self.mode != "bm25":
            rankings.append(([pid for pid, _ in pool.dense], o.dense_weight))
        if self.mode != "dense":
            rankings.append(([pid for pid, _ in pool.lexical], o.bm25_weight))
        if pool.pending:  # no dense rank yet: the BM25 rank stands in, so waiting for a
            # vector does not push a passage below those that have both ranks
            rankings.append(([pid if pid in pool.pending else "" for pid, _ in pool.lexical],
                             o.dense_weight))
        fused = [(pid, score) for pid, score in reciprocal_rank_fusion(rankings, o.k) if pid]
        if pool.articles:
            fused = self._with_article_ranking(fused, pool.articles)
        return fused

    def finish(self, question: str, pool: Pool, fused: list[tuple[str, float]], k: int,
               as_of: date | None = None) -> list[RetrievedPassage]:
        """Fetch what BM25 alone found, add recency, then walk the ranking down, collapsing
        near-duplicates and keeping at most ``per_article`` passages of an article, until k
        passages are found; rerank those.

        Comparing every candidate with every other cost more than all the rest with 100
        candidates per side, so the walk stops early: after the k-th passage it only goes on
        through k more distinct candidates, to list the duplicates ranked just below in
        ``also_reported_by`` (the same story on several sites ranks close together)."""
        o = self.options
        found = pool.found
        missing = [pid for pid, _ in fused if pid not in found]
        if missing:
            found.update((p.id, p) for p in self._store.passages(missing))
        if as_of is not None and o.recency_weight > 0:
            fused = with_recency(fused, {pid: found[pid].published for pid, _ in fused
                                         if pid in found}, as_of, o.recency_weight, o.k)
        distinct = Distinct(o.dedupe_threshold)
        per_article: dict[str, int] = {}
        taken = beyond = 0
        for pid, score in fused:
            if pid not in found or not distinct.add(to_result(found[pid], score)):
                continue
            if taken >= k:
                beyond += 1
                if beyond >= k:
                    break
                continue
            article = found[pid].article_id
            per_article[article] = per_article.get(article, 0) + 1
            if o.per_article <= 0 or per_article[article] <= o.per_article:
                taken += 1
        ranked = distinct.kept()
        if o.per_article > 0:
            ranked = limit_per_article(ranked, o.per_article)
        return self.reranker.rerank(question, ranked)[:k]

    def _with_article_ranking(self, fused: list[tuple[str, float]],
                              articles: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Add each candidate's article rank in a whole-article BM25 ranking: a passage of an
        article that matches the question as a whole beats a lone lucky passage."""
        o = self.options
        rank = {aid: r for r, (aid, _) in enumerate(articles, start=1)}
        scored = [(pid, score + (o.article_weight / (o.k + rank[a]) if a in rank else 0.0))
                  for pid, score in fused for a in [pid.rsplit("#", 1)[0]]]
        return sorted(scored, key=lambda item: -item[1])


def recency_ranking(published: dict[str, str], as_of: date) -> dict[str, float]:
    """Each candidate's rank by how close its publication is to ``as_of`` (1 is closest).

    News is asked about "as of" a day: the story is usually from the days just before, while
    same-topic pages are often older. Passages published more than a day after ``as_of``
    get no rank (demoted); passages with an unknown date get the middle rank (neutral).
    """
    gaps: dict[str, int] = {}
    unknown: list[str] = []
    for pid, text in published.items():
        day = parse_day(text)
        if day is None:
            unknown.append(pid)
        elif (day - as_of).days <= _DAY_AFTER:
            gaps[pid] = abs((as_of - day).days)
    ordered = sorted(gaps.values())
    ranks: dict[str, float] = {}
    for pid, gap in gaps.items():  # equal gaps share a rank (1 + how many are closer)
        ranks[pid] = 1 + _count_below(ordered, gap)
    middle = (len(published) + 1) / 2
    ranks.update((pid, middle) for pid in unknown)
    return ranks


def with_recency(fused: list[tuple[str, float]], published: dict[str, str], as_of: date,
                 weight: float, k: int) -> list[tuple[str, float]]:
    """Add the recency ranking to the fused scores as one more reciprocal-rank term."""
    ranks = recency_ranking(published, as_of)
    scored = [(pid, score + (weight / (k + ranks[pid]) if pid in ranks else 0.0))
              for pid, score in fused]
    return sorted(scored, key=lambda item: -item[1])


def _count_below(ordered: list[int], value: int) -> int:
    return bisect_left(ordered, value)


def published_within(passages: Sequence[RetrievedPassage], as_of: date, days: int
                     ) -> list[RetrievedPassage]:
    """The passages published in the ``days`` before ``as_of`` (or up to the day after, as
    for the recency ranking), in their order; undated ones are kept, as nothing rules them
    out."""
    kept = []
    for passage in passages:
        day = parse_day(passage.published)
        if day is None or -_DAY_AFTER <= (as_of - day).days <= days:
            kept.append(passage)
    return kept


_DAY_AFTER = 1  # published the day after ``as_of`` still counts: time zones


def parse_day(text: str) -> date | None:
    """'2022/06/16' or '2022-06-16' (a time after it is ignored); None when not a date."""
    try:
        return date.fromisoformat(text.strip()[:10].replace("/", "-"))
    except ValueError:
        return None
