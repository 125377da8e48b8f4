"""Every retrieval variant tried for issue 14, on both dev sets, with and without dates.

    python -m bench.retrieval_variants --data-dir ../evaldata-retrieval \\
        [--sets 2025,dev] [--variants default,candidates-100,...] [--json]

Each set is opened as ``rag eval --articles`` opens it (its own collection in the data dir,
ingested the first time only; variants with other passage sizes use their own collections,
which the first run embeds). Every variant is the real ``HybridRetriever`` on the real
Chroma and BM25 indexes: either other settings, or a subclass below that changes one step
(the query, the pool, or the fusion). The questions are embedded before any variant runs,
so the latency columns are retrieval alone (10 passages per question).

Prints one Markdown table per set (a row per variant and date mode) with Hits@1/5/10,
MRR@10, AnsIn@5, p50/p95 ms; then the CPU seconds, wall seconds and mean load average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.answer_sets import SHARED_EVAL, SHARED_SETS
from index.filters import Filters
from index.lexical import tokenize
from rag.eval import evaluate, load_questions
from rag.result import RetrievedPassage
from rag.retrieve import HybridRetriever, Pool
from rag.terms import content_terms, key_terms, stem, words
from ui.evaluation import open_eval
from ui.settings import Settings, load_settings
from ui.wiring import Components, build_embedder, build_retriever

Fused = list[tuple[str, float]]


def article_of(pid: str) -> str:
    return pid.rsplit("#", 1)[0]


def add_ranking(fused: Fused, ranks: dict[str, float], weight: float, k: int) -> Fused:
    """One more reciprocal-rank term, keyed by passage id."""
    scored = [(pid, s + (weight / (k + ranks[pid]) if pid in ranks else 0.0))
              for pid, s in fused]
    return sorted(scored, key=lambda item: -item[1])


def add_article_ranking(fused: Fused, order: Sequence[str], k: int) -> Fused:
    """One more reciprocal-rank term from a ranking of articles (weight 1)."""
    rank = {aid: r for r, aid in enumerate(order, start=1)}
    return add_ranking(fused, {pid: rank[article_of(pid)] for pid, _ in fused
                               if article_of(pid) in rank}, 1.0, k)


def shared_ranks(values: dict[str, float]) -> dict[str, float]:
    """Rank by value, best (largest) first; equal values share a rank."""
    ordered = sorted(values.values(), reverse=True)
    first = {v: ordered.index(v) + 1 for v in set(ordered)}
    return {pid: first[v] for pid, v in values.items()}


class ScoreFusion(HybridRetriever):
    """Score-aware fusion: each side's scores divided by that side's best score (0 is the
    natural floor of cosine and BM25 here), summed with equal weights (dense, BM25 passage,
    BM25 article). No rank constant, no weight."""

    def fuse(self, pool: Pool) -> Fused:
        dense, lexical = dict(pool.dense), dict(pool.lexical)
        art = dict(pool.articles)
        top_d = max(dense.values(), default=1.0) or 1.0
        top_b = max(lexical.values(), default=1.0) or 1.0
        top_a = max(art.values(), default=1.0) or 1.0
        scores = {pid: dense.get(pid, 0.0) / top_d + lexical.get(pid, 0.0) / top_b
                  + art.get(article_of(pid), 0.0) / top_a for pid in {*dense, *lexical}}
        # recency (when given) is added as reciprocal ranks later: hand over ranks' scale
        ordered = sorted(scores, key=lambda pid: -scores[pid])
        return [(pid, 1.0 / (self.options.k + r)) for r, pid in enumerate(ordered, start=1)]


class DenseArticles(HybridRetriever):
    """The dense side gets a whole-article ranking too (each article by its best dense
    passage among the candidates), so both sides vote twice: symmetric, no new weight."""

    def fuse(self, pool: Pool) -> Fused:
        best: dict[str, float] = {}
        for pid, score in pool.dense:
            best.setdefault(article_of(pid), score)
        return add_article_ranking(super().fuse(pool), list(best), self.options.k)


class DenseCentroids(HybridRetriever):
    """A whole-article dense ranking: the question against each article's mean passage
    vector (the dense counterpart of the whole-article BM25 ranking)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._centroids: tuple[list[str], np.ndarray] | None = None

    def centroids(self) -> tuple[list[str], np.ndarray]:
        if self._centroids is None:
            sums: dict[str, np.ndarray] = {}
            collection = self._store._passages
            for offset in range(0, collection.count(), 2000):
                got = collection.get(include=["embeddings", "metadatas"], limit=2000,
                                     offset=offset)
                for vec, meta in zip(got["embeddings"], got["metadatas"], strict=True):
                    aid = str(meta["article_id"])
                    sums[aid] = sums.get(aid, 0) + np.asarray(vec, dtype=np.float32)
            ids = list(sums)
            matrix = np.stack([sums[a] for a in ids])
            self._centroids = ids, matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        return self._centroids

    def fuse(self, pool: Pool) -> Fused:
        ids, matrix = self.centroids()
        scores = matrix @ self._embedder.embed_query(self._question)
        top = np.argsort(-scores)[:self.options.candidates]
        return add_article_ranking(super().fuse(pool), [ids[i] for i in top], self.options.k)

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        self._question = question
        return super().pool(question, n, filters)


class KeyTermBoost(HybridRetriever):
    """Names, numbers and quoted phrases of the question count twice in BM25 (the
    capitalised-word rules of ``rag.terms.key_terms`` plus text between quotes)."""

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        keys = key_terms(question)
        quoted = " ".join(re.findall(r"[\"“]([^\"”]{2,80})[\"”]", question))
        named = " ".join(w for w in words(question) if stem(w) in keys)
        return with_lexical_query(self, super().pool(question, n, filters),
                                  f"{question} {named} {quoted}", n, filters)


def with_lexical_query(retriever: HybridRetriever, pool: Pool, query: str, n: int,
                       filters: Filters | None) -> Pool:
    """The pool with its BM25 side asked ``query`` instead of the question."""
    if retriever.mode == "dense":
        return pool
    articles = n if retriever.options.article_weight > 0 else 0
    pool.lexical, pool.articles = retriever._lexical.rank(query, n, articles,
                                                          filters)
    return pool


class KeyTermCoverage(HybridRetriever):
    """The answer gate's constraint check as a ranking: candidates ranked by how many of the
    question's names and numbers their article contains (ties share a rank), one more
    reciprocal-rank term."""

    def fuse(self, pool: Pool) -> Fused:
        fused = super().fuse(pool)
        keys = key_terms(self._question)
        if not keys:
            return fused
        missing = [pid for pid, _ in fused if pid not in pool.found]
        if missing:
            pool.found.update((p.id, p) for p in self._store.passages(missing))
        per_article: dict[str, set[str]] = {}
        for pid, _ in fused:
            p = pool.found.get(pid)
            if p is not None:
                per_article.setdefault(p.article_id, set()).update(
                    stem(w) for w in words(f"{p.title}\n{p.text}"))
        cover = {pid: float(len(keys & per_article.get(article_of(pid), set())))
                 for pid, _ in fused}
        return add_ranking(fused, shared_ranks(cover), 1.0, self.options.k)

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        self._question = question
        return super().pool(question, n, filters)


class Rocchio(HybridRetriever):
    """Dense pseudo-relevance feedback: the question's vector plus the mean vector of the
    first pass's top 3 passages, searched again (one more Chroma query)."""

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        first = super().retrieve(question, 3, filters, as_of)
        vector = self._embedder.embed_query(question)
        if first:
            got = self._store._passages.get(ids=[p.passage_id for p in first],
                                            include=["embeddings"])
            vector = vector + np.mean(np.asarray(got["embeddings"]), axis=0)
            vector = vector / np.linalg.norm(vector)
        self._vector = vector
        try:
            return super().retrieve(question, k, filters, as_of)
        finally:
            self._vector = None

    _vector: np.ndarray | None = None

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        pool = super().pool(question, n, filters)
        if self._vector is not None:
            where = filters.to_where() if filters else None
            dense = self._store.query(self._vector, n, where)
            pool.found.update((p.id, p) for p, _ in dense)
            pool.dense = [(p.id, s) for p, s in dense]
        return pool


class RM3(HybridRetriever):
    """BM25 pseudo-relevance feedback: the 10 most distinctive words (tf x idf) of the first
    pass's top 5 passages appended to the BM25 query, searched again."""

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        first = super().retrieve(question, 5, filters, as_of)
        counts: Counter[str] = Counter()
        for p in first:
            terms = content_terms(p.text)
            for term, n in Counter(terms).items():
                counts[term] += n / max(1, len(terms))
        asked = set(content_terms(question))
        df = self._document_frequency(list(counts))
        total = max(1, self._store.passage_count())
        weight = {t: c * np.log(total / (1 + df[t])) for t, c in counts.items()
                  if t not in asked and df.get(t)}
        expansion = sorted(weight, key=lambda t: -weight[t])[:10]
        self._expansion = " ".join(expansion)
        try:
            return super().retrieve(question, k, filters, as_of)
        finally:
            self._expansion = ""

    _expansion = ""

    def _document_frequency(self, terms: list[str]) -> dict[str, int]:
        built = self._lexical._current()
        vocab = built.model.vocab_dict
        indptr = built.model.scores["indptr"]
        tokens = tokenize(terms)
        return {t: int(indptr[vocab[tok[0]] + 1] - indptr[vocab[tok[0]]])
                for t, tok in zip(terms, tokens, strict=True) if tok and tok[0] in vocab}

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        pool = super().pool(question, n, filters)
        if not self._expansion:
            return pool
        return with_lexical_query(self, pool, f"{question} {self._expansion}", n, filters)


class FieldRanking(HybridRetriever):
    """One more whole-article ranking: BM25 over a field of each article (its title, or its
    lead: the first passage), weight 1."""

    field_name = "title"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._field: tuple[list[str], Any] | None = None

    def _field_index(self) -> tuple[list[str], Any]:
        import bm25s

        if self._field is None:
            texts: dict[str, str] = {}
            for p in self._store.all_passages():
                if self.field_name == "title":
                    texts.setdefault(p.article_id, p.title)
                elif p.number == 0:
                    texts[p.article_id] = p.text
            ids = list(texts)
            model = bm25s.BM25()
            model.index(tokenize([texts[a] for a in ids]), show_progress=False)
            self._field = ids, model
        return self._field

    def fuse(self, pool: Pool) -> Fused:
        ids, model = self._field_index()
        tokens = [t for t in tokenize([self._question])[0] if t in model.vocab_dict]
        fused = super().fuse(pool)
        if not tokens:
            return fused
        scores = model.get_scores(tokens)
        order = [ids[i] for i in np.argsort(-scores)[:self.options.candidates] if scores[i] > 0]
        return add_article_ranking(fused, order, self.options.k)

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        self._question = question
        return super().pool(question, n, filters)


class LeadRanking(FieldRanking):
    field_name = "lead"


class WindowBM25(HybridRetriever):
    """The BM25 passage ranking scores each passage by its best window of three consecutive
    sentences (the unit in which the citation check wants a claim's names and numbers
    together) instead of the whole passage: terms that meet in one place count, terms
    scattered over 200 words less. ``with_title`` prepends the article title to every window,
    as the passage index does. (Eval rows carry no filters; this variant ignores them.)"""

    with_title = True
    sentences = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._windows: tuple[list[str], np.ndarray, Any] | None = None

    def _index(self) -> tuple[list[str], np.ndarray, Any]:
        import bm25s

        from index.passages import sentence_spans

        if self._windows is None:
            ids: list[str] = []
            texts, owners = [], []
            for p in self._store.all_passages():
                spans = sentence_spans(p.text) or [(0, len(p.text))]
                head = f"{p.title}\n" if self.with_title else ""
                for i in range(max(1, len(spans) - self.sentences + 1)):
                    end = spans[min(i + self.sentences, len(spans)) - 1][1]
                    texts.append(head + p.text[spans[i][0]:end])
                    owners.append(len(ids))
                ids.append(p.id)
            model = bm25s.BM25()
            model.index(tokenize(texts), show_progress=False)
            self._windows = ids, np.asarray(owners), model
        return self._windows

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        pool = super().pool(question, n, filters)
        ids, owners, model = self._index()
        tokens = [t for t in tokenize([question])[0] if t in model.vocab_dict]
        if self.mode == "dense" or not tokens:
            return pool
        best = np.zeros(len(ids))
        np.maximum.at(best, owners, model.get_scores(tokens))
        top = np.argsort(-best)[:n]
        pool.lexical = [(ids[i], float(best[i])) for i in top if best[i] > 0]
        return pool


class WindowBM25NoTitle(WindowBM25):
    with_title = False


class WholePassageNoTitle(WindowBM25):
    """The passage BM25 ranking without the title (the whole passage as one window)."""

    with_title = False
    sentences = 10_000


_DATE_WORDS = re.compile(r"\b(this|last|past) (week|weekend|month)\b|\brecently\b|\b(on|last) "
                         r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|"
                         r"\b(yesterday|today)\b", re.IGNORECASE)


class DateWords(HybridRetriever):
    """With no as-of date but date words in the question ("this week", "on Tuesday"): take
    as the as-of day the end of the 7-day window that holds most of the first pass's top 10
    (weighted by fused score), then rank again with recency."""

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        if as_of is None and _DATE_WORDS.search(question):
            first = super().retrieve(question, 10, filters)
            days = [(d, p.score) for p in first if (d := _day(p.published)) is not None]
            if days:
                as_of = max((d for d, _ in days), key=lambda end: sum(
                    s for d, s in days if timedelta(0) <= end - d < timedelta(7)))
        return super().retrieve(question, k, filters, as_of)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


_FILLER = re.compile(r"\b(this|last) (week|month)\b|\brecently\b|\bon (monday|tuesday|"
                     r"wednesday|thursday|friday|saturday|sunday)\b", re.IGNORECASE)


class QuestionCleanup(HybridRetriever):
    """The dense side embeds the question without quiz filler ("this week", "recently")."""

    def pool(self, question: str, n: int, filters: Filters | None = None) -> Pool:
        pool = super().pool(question, n, filters)
        cleaned = re.sub(r"\s+", " ", _FILLER.sub("", question)).strip()
        if cleaned != question and self.mode != "bm25":
            where = filters.to_where() if filters else None
            dense = self._store.query(self._embedder.embed_query(cleaned), n, where)
            pool.found.update((p.id, p) for p, _ in dense)
            pool.dense = [(p.id, s) for p, s in dense]
        return pool


@dataclass(frozen=True)
class Variant:
    """A retrieval variant: settings changes and, optionally, a retriever class."""

    name: str
    what: str
    settings: dict[str, Any] = field(default_factory=dict)
    cls: type[HybridRetriever] | None = None


VARIANTS = [
    Variant("default", "the shipped defaults (100 candidates per ranking)"),
    Variant("before", "the defaults before issue 14 (50 candidates per ranking)",
            {"candidates": 50}),
    Variant("dense", "dense side alone", {"retriever": "dense"}),
    Variant("bm25", "BM25 side alone (with its whole-article ranking)", {"retriever": "bm25"}),
    Variant("candidates-200", "200 candidates per ranking", {"candidates": 200}),
    Variant("rrf-k-30", "RRF constant 30 instead of 60", {"fusion_k": 30}),
    Variant("no-article-ranking", "without the whole-article BM25 ranking",
            {"article_weight": 0.0}),
    Variant("per-article-0", "no one-passage-per-article limit", {"per_article": 0}),
    Variant("per-article-2", "two passages per article", {"per_article": 2}),
    Variant("dense-weight-2", "dense ranking weighted 2", {"dense_weight": 2.0}),
    Variant("score-fusion", "score-aware fusion (max-normalised scores summed)", {},
            ScoreFusion),
    Variant("dense-article-ranking", "+ whole-article ranking from the dense side (best "
            "passage)", {}, DenseArticles),
    Variant("dense-centroids", "+ whole-article dense ranking (mean passage vector)", {},
            DenseCentroids),
    Variant("key-terms-x2", "names, numbers, quoted phrases twice in BM25", {}, KeyTermBoost),
    Variant("key-term-coverage", "+ ranking by question names/numbers the article holds", {},
            KeyTermCoverage),
    Variant("rocchio", "dense pseudo-relevance feedback (top 3)", {}, Rocchio),
    Variant("rm3", "BM25 pseudo-relevance feedback (10 words of the top 5)", {}, RM3),
    Variant("title-field", "+ whole-article ranking by BM25 over titles", {}, FieldRanking),
    Variant("lead-field", "+ whole-article ranking by BM25 over the first passage", {},
            LeadRanking),
    Variant("bm25-windows", "BM25 passage score = its best 3-sentence window (title "
            "prepended)", {}, WindowBM25),
    Variant("bm25-windows-no-title", "the same without the title", {}, WindowBM25NoTitle),
    Variant("bm25-no-title", "BM25 passage ranking without the title", {},
            WholePassageNoTitle),
    Variant("date-words", "date words without a date: as-of from the top 10's densest week",
            {}, DateWords),
    Variant("question-cleanup", "dense query without 'this week', 'recently'", {},
            QuestionCleanup),
    Variant("passages-100-20", "100-word passages, 20 overlap (re-embedded)",
            {"passage_words": 100, "overlap_words": 20}),
    Variant("passages-100-20-dense", "the same, dense side alone",
            {"passage_words": 100, "overlap_words": 20, "retriever": "dense"}),
    Variant("passages-100-20-bm25", "the same, BM25 side alone",
            {"passage_words": 100, "overlap_words": 20, "retriever": "bm25"}),
]
BY_NAME = {v.name: v for v in VARIANTS}
KEYS = ("hits@1", "hits@5", "hits@10", "mrr@10", "ansin@5", "retrieval_p50_ms",
        "retrieval_p95_ms")


def make_retriever(variant: Variant, components: Components) -> HybridRetriever:
    settings = components.settings.model_copy(update=variant.settings)
    base = build_retriever(settings, components.store, components.embedder)
    assert isinstance(base, HybridRetriever)
    if variant.cls is None:
        return base
    return variant.cls(components.store, components.embedder, base._lexical, base.options,
                       mode=base.mode)


@dataclass
class Run:
    cpu_s: float = 0.0
    wall_s: float = 0.0
    loads: list[float] = field(default_factory=list)


def run_set(name: str, variants: Sequence[Variant], settings: Settings,
            show: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every variant on one set, without and with the rows' dates."""
    folder = SHARED_EVAL / SHARED_SETS[name]
    questions = load_questions(folder / "questions.jsonl")
    embedder = build_embedder(settings)
    for q in questions:  # embedded once: the latency columns are retrieval alone
        embedder.embed_query(q.question)
    opened: dict[tuple[tuple[str, Any], ...], Components] = {}
    rows: list[dict[str, Any]] = []
    for variant in variants:
        shaping = {k: v for k, v in variant.settings.items()
                   if k in ("passage_words", "overlap_words")}
        key = tuple(sorted(shaping.items()))
        if key not in opened:
            opened[key] = open_eval(settings.model_copy(update=shaping),
                                    folder / "articles.jsonl", embedder=embedder)
        retriever = make_retriever(variant, opened[key])
        for use_dates in (False, True):
            wall, cpu = time.perf_counter(), time.process_time()
            metrics = evaluate(questions, retriever.retrieve, None, use_dates=use_dates).metrics()
            row = {"set": name, "variant": variant.name, "dates": use_dates,
                   "passages": opened[key].store.passage_count(),
                   **{k: metrics[k] for k in KEYS},
                   "cpu_s": round(time.process_time() - cpu, 1),
                   "wall_s": round(time.perf_counter() - wall, 1),
                   "load": round(os.getloadavg()[0], 2)}
            rows.append(row)
            show(f"{name} {variant.name} dates={use_dates}: hits@5 {row['hits@5']} "
                 f"mrr@10 {row['mrr@10']}")
    return rows


def command(variant: Variant) -> str:
    """How to run one variant alone: ``RAG_*`` settings for ``rag eval``, or this script."""
    if variant.cls is None and variant.settings:
        return " ".join(f"`RAG_{k.upper()}={v}`" for k, v in variant.settings.items())
    return "(defaults)" if variant.cls is None else f"`--variants {variant.name}`"


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = ["variant", "command", "dates", "hits@1", "hits@5", "hits@10", "mrr@10",
            "ansin@5", "p50 ms", "p95 ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        found = BY_NAME.get(r["variant"])
        cells = [r["variant"], command(found) if found else "", "yes" if r["dates"] else "no",
                 *(f"{r[k]:.3f}" for k in KEYS[:5]),
                 f"{r['retrieval_p50_ms']:.1f}", f"{r['retrieval_p95_ms']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="data folder of the eval collections")
    parser.add_argument("--sets", default="2025,dev", help="comma-separated: 2025, dev")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS),
                        help="comma-separated variant names (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tables-from", type=Path, metavar="FILE.json",
                        help="print the tables of an earlier --json run and stop")
    args = parser.parse_args(argv)
    if args.tables_from:
        saved = json.loads(args.tables_from.read_text(encoding="utf-8"))
        for name, rows in saved["sets"].items():
            print(f"### {name}\n\n{table(rows)}\n")
        return 0
    if args.data_dir is None:
        parser.error("--data-dir is required")
    unknown = set(args.variants.split(",")) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}: choose from {sorted(BY_NAME)}")
    import logging

    import bm25s  # noqa: F401  # it sets its logger to DEBUG on import: import it first

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(None, data_dir=args.data_dir)
    variants = [BY_NAME[v] for v in args.variants.split(",")]
    out: dict[str, Any] = {"sets": {}}
    wall, cpu = time.perf_counter(), time.process_time()
    for name in args.sets.split(","):
        rows = run_set(name, variants, settings, lambda s: print(s, file=sys.stderr))
        out["sets"][name] = rows
        if not args.json:
            print(f"### {name} ({rows[0]['passages']} passages)\n\n{table(rows)}\n", flush=True)
    out["cpu_s"] = round(time.process_time() - cpu, 1)
    out["wall_s"] = round(time.perf_counter() - wall, 1)
    out["load"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"cpu {out['cpu_s']} s, wall {out['wall_s']} s, load average {out['load']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
