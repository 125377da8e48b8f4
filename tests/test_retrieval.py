"""Hybrid retrieval on a real embedded Chroma with the real embedding model and bm25s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder, Vectors
from index.filters import Filters
from index.ingest import ingest_paths, ingest_results
from index.lexical import LexicalIndex
from index.store import PassageStore, open_client
from index.types import Article
from rag.retrieve import (
    FusionOptions,
    HybridRetriever,
    recency_ranking,
    reciprocal_rank_fusion,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "articles"

WIRE = ("The city council of Brackenridge voted on Tuesday to close the old Millbrook "
        "reservoir after engineers found cracks in its northern dam wall. Mayor Ellen Okafor "
        "said repairs would cost about 14 million dollars and take two years. Residents will "
        "get water from the Dunmore treatment plant in the meantime, officials said.")


def _article(aid: str, title: str, text: str, source: str, published: str) -> Article:
    return Article(id=aid, title=title, text=text, source=source, published=published)


ARTICLES = [
    _article("volcano", "Volcano erupts on Tolbek island",
             "The Tolbek volcano erupted on Sunday, sending ash eight kilometres into the sky. "
             "Flights across the region were cancelled and 3,000 islanders were evacuated by "
             "ferry to the mainland port of Varsa.", "news.example", "2022-06-12"),
    _article("chess", "Teenager wins national chess title",
             "Sixteen-year-old Mira Castellanos won the national chess championship after a "
             "tense final game against the defending champion. She is the youngest winner in "
             "the tournament's history.", "sport.example", "2022-07-02"),
    _article("wire-a", "Brackenridge closes reservoir", WIRE, "daily.example", "2022-06-20"),
    _article("wire-b", "Dam cracks force reservoir closure", WIRE + " Contributing: wire "
             "reports.", "herald.example", "2022-06-21"),
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(threads=1)


@pytest.fixture()
def store(tmp_path: Path, embedder: MiniLMEmbedder) -> PassageStore:
    return PassageStore(open_client(tmp_path, None), "test", embedder.name)


@pytest.fixture()
def lexical(tmp_path: Path, store: PassageStore) -> LexicalIndex:
    return LexicalIndex(store, tmp_path / "bm25" / "test")


def _hybrid(store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex,
            mode: str = "hybrid") -> HybridRetriever:
    return HybridRetriever(store, embedder, lexical, FusionOptions(), mode=mode)  # type: ignore[arg-type]


def _ingest(store: PassageStore, embedder: MiniLMEmbedder, articles: Sequence[Article]) -> None:
    ingest_results(list(articles), store, embedder, progress=False)


def _articles_of(hits: Sequence[tuple[str, float]]) -> set[str]:
    return {pid.split("#")[0] for pid, _ in hits}


def test_reciprocal_rank_fusion_rewards_agreement_and_weights() -> None:
    fused = reciprocal_rank_fusion([(["a", "b", "c"], 1.0), (["c", "b", "d"], 1.0)], k=60)
    order = [pid for pid, _ in fused]
    assert order[:2] == ["b", "c"] or order[:2] == ["c", "b"]
    assert order[-1] == "d"
    assert dict(fused)["b"] == pytest.approx(2 / 62)
    # a heavy weight on the first ranking puts its top first
    weighted = reciprocal_rank_fusion([(["a", "b"], 5.0), (["b", "a"], 1.0)], k=60)
    assert weighted[0][0] == "a"


def test_bm25_index_follows_ingest_remove_and_reingest(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES[:2])
    assert _articles_of(lexical.search("Tolbek volcano ash", 5)) == {"volcano"}
    builds = lexical.rebuilds
    lexical.search("chess champion", 5)
    assert lexical.rebuilds == builds  # unchanged store: no rebuild

    store.remove_article("volcano")
    assert lexical.search("Tolbek volcano ash", 5) == []

    changed = _article("chess", "Teenager wins national chess title",
                       "Mira Castellanos also plays the theremin in a jazz quartet.",
                       "sport.example", "2022-07-02")
    _ingest(store, embedder, [changed])
    assert _articles_of(lexical.search("theremin", 5)) == {"chess"}
    assert lexical.search("defending champion", 5) == []


def test_bm25_index_written_by_another_process_is_reused(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES[:2])
    lexical.search("volcano", 3)
    other = LexicalIndex(store, lexical.folder)  # a second reader of the same data folder
    assert _articles_of(other.search("volcano", 3)) == {"volcano"}
    assert other.rebuilds == 0


class _Interrupted:
    """The real embedder, interrupted at its first batch (like a crash or ^C while the
    second stage embeds)."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self._inner = inner
        self.name = inner.name

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        raise KeyboardInterrupt

    def embed_query(self, text: str) -> Vectors:
        return self._inner.embed_query(text)


def test_bm25_index_catches_up_after_interrupted_ingest_and_rerun(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    many = [_article(f"note-{i}", f"Note {i}", f"Field note number {i} mentions the word "
                     f"kestrel{i} once.", "notes.example", "2022-06-01") for i in range(40)]
    with pytest.raises(KeyboardInterrupt):
        ingest_results(many, store, _Interrupted(embedder), progress=False)
    # Stored in the first stage, searchable by their words, no vector yet.
    assert store.article_count() == 40 and store.pending_count() == 40
    assert len(lexical.search("field note", 100)) == store.passage_count()
    _ingest(store, embedder, many)
    assert store.pending_count() == 0 and store.embedded_count() == 40
    assert _articles_of(lexical.search("kestrel39", 3)) == {"note-39"}
    assert len(lexical.search("field note", 100)) == 40


def test_filters_apply_to_dense_and_bm25_sides(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    question = "What happened to the Tolbek volcano and the chess championship?"
    for mode in ("hybrid", "dense", "bm25"):
        retriever = _hybrid(store, embedder, lexical, mode)
        by_source = retriever.retrieve(question, 5, Filters(sources=["sport.example"]))
        assert by_source and {p.source for p in by_source} == {"sport.example"}, mode
        by_date = retriever.retrieve(question, 5, Filters(published_from="2022-06-01",
                                                          published_to="2022-06-15"))
        assert by_date and {p.article_id for p in by_date} == {"volcano"}, mode
        by_id = retriever.retrieve(question, 5, Filters(article_ids=["wire-a"]))
        assert {p.article_id for p in by_id} <= {"wire-a"}, mode


def test_whole_article_ranking_respects_filters(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    assert lexical.search_articles("Tolbek volcano chess", 4)[0][0] in {"volcano", "chess"}
    only = lexical.search_articles("Tolbek volcano chess", 4,
                                   Filters(sources=["sport.example"]))
    assert [a for a, _ in only] == ["chess"]
    retriever = HybridRetriever(store, embedder, lexical, FusionOptions(article_weight=1.0))
    assert retriever.retrieve("Tolbek volcano eruption", 1)[0].article_id == "volcano"


def test_hybrid_finds_a_rare_name_and_a_paraphrase(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    retriever = _hybrid(store, embedder, lexical)
    assert retriever.retrieve("Who is Mira Castellanos?", 1)[0].article_id == "chess"
    top = retriever.retrieve("Which island had people leave because of an eruption?", 1)
    assert top[0].article_id == "volcano"
    assert retriever.name == "hybrid"


def test_wire_story_on_two_sites_is_collapsed_with_also_reported_by(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    results = _hybrid(store, embedder, lexical).retrieve("Why was the reservoir closed?", 3)
    wire = [p for p in results if p.article_id in {"wire-a", "wire-b"}]
    assert len(wire) == 1
    other = "herald.example" if wire[0].source == "daily.example" else "daily.example"
    assert wire[0].also_reported_by == [other]


def test_fewer_passages_are_the_first_of_more_and_the_walk_stops_at_k(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    """Dedupe and the per-article limit walk the fused ranking only until k passages are
    found: asking for fewer gives the first ones of a longer answer, duplicates included."""
    _ingest(store, embedder, ARTICLES)
    retriever = _hybrid(store, embedder, lexical)
    question = "Why was the reservoir closed after the dam cracked?"
    more = retriever.retrieve(question, 10)
    assert len({p.article_id for p in more}) == len(more)  # one passage per article
    for k in (1, 2, 3):
        assert retriever.retrieve(question, k) == more[:k]


def test_sample_article_ingested_from_disk_is_searchable_by_bm25(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    ingest_paths([EXAMPLES], store, embedder, max_bytes=10_000_000, progress=False)
    hits = _hybrid(store, embedder, lexical, "bm25").retrieve("Security Council Aleppo", 3)
    assert hits and all("Aleppo" in p.title for p in hits)


def test_recency_ranks_the_days_just_before_as_of_first_and_demotes_later_ones() -> None:
    published = {"old#0": "2021-01-05", "near#0": "2022-06-14", "next-day#0": "2022-06-17",
                 "later#0": "2022-07-01", "undated#0": "", "near#1": "2022-06-14"}
    ranks = recency_ranking(published, date(2022, 6, 16))
    assert ranks["near#0"] == ranks["near#1"] == 2  # equal gaps share a rank
    assert ranks["next-day#0"] == 1 and ranks["old#0"] == 4
    assert "later#0" not in ranks  # published after as_of + 1 day: no recency credit
    assert ranks["undated#0"] == 3.5  # neutral: the middle of the candidates


def test_as_of_picks_the_copy_of_a_story_published_just_before_it(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    old = _article("old", "Brackenridge closes reservoir", WIRE, "daily.example", "2019-03-01")
    new = _article("new", "Brackenridge closes reservoir", WIRE, "herald.example",
                   "2022-06-20")
    _ingest(store, embedder, [old, new])
    retriever = _hybrid(store, embedder, lexical)
    # two equal copies: a heavy recency weight must decide between them either way
    retriever.options = FusionOptions(dedupe_threshold=1.01, recency_weight=10.0)
    question = "Why was the reservoir closed?"
    assert retriever.retrieve(question, 1, as_of=date(2022, 6, 21))[0].article_id == "new"
    assert retriever.retrieve(question, 1, as_of=date(2019, 3, 2))[0].article_id == "old"


def test_a_write_from_another_store_object_makes_the_bm25_index_stale(
        tmp_path: Path, store: PassageStore, embedder: MiniLMEmbedder,
        lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES[:1])
    before = lexical.stamp()
    writer = PassageStore(open_client(tmp_path, None), "test", embedder.name)
    _ingest(writer, embedder, ARTICLES[1:2])
    assert lexical.stamp() != before
    assert _articles_of(lexical.search("Castellanos chess", 3)) == {"chess"}


def test_excluded_articles_are_never_retrieved_by_either_side(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    question = "Why did Brackenridge close the Millbrook reservoir?"
    gone = Filters(exclude_article_ids=["wire-a", "wire-b"])
    assert gone.to_where() == {"article_id": {"$nin": ["wire-a", "wire-b"]}}
    for mode in ("hybrid", "dense", "bm25"):
        retriever = _hybrid(store, embedder, lexical, mode)
        assert {p.article_id for p in retriever.retrieve(question, 10)} & {"wire-a", "wire-b"}
        left = retriever.retrieve(question, 10, gone)
        assert not {p.article_id for p in left} & {"wire-a", "wire-b"}, mode
    assert not _articles_of(lexical.rank(question, 10, 10, gone)[1]) & {
        "wire-a", "wire-b"}  # nor by the whole-article ranking


def test_exclusion_combines_with_other_filters(
        store: PassageStore, embedder: MiniLMEmbedder, lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    both = Filters(published_from="2022-06-15", exclude_article_ids=["wire-a"])
    for mode in ("hybrid", "dense", "bm25"):
        found = _hybrid(store, embedder, lexical, mode).retrieve("reservoir chess", 10, both)
        assert found and {p.article_id for p in found} <= {"wire-b", "chess"}, mode


def test_retrieval_with_exclusions_matches_a_store_without_those_articles(
        tmp_path: Path, store: PassageStore, embedder: MiniLMEmbedder,
        lexical: LexicalIndex) -> None:
    _ingest(store, embedder, ARTICLES)
    smaller = PassageStore(open_client(tmp_path / "smaller", None), "test", embedder.name)
    _ingest(smaller, embedder, [a for a in ARTICLES if a.id != "wire-a"])
    without = HybridRetriever(smaller, embedder,
                              LexicalIndex(smaller, tmp_path / "smaller" / "bm25"))
    gone = Filters(exclude_article_ids=["wire-a"])
    for question in ("Why was the reservoir closed?", "Who won the chess title?"):
        with_filter = _hybrid(store, embedder, lexical).retrieve(question, 5, gone)
        assert [p.passage_id for p in with_filter] == [
            p.passage_id for p in without.retrieve(question, 5)]
