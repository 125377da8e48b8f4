"""Boilerplate cleaning at ingest and near-duplicate collapse."""

from __future__ import annotations

from index.clean import clean_article, clean_text
from index.types import Article
from rag.dedupe import collapse_duplicates
from rag.result import RetrievedPassage

PAGE = """Storm closes schools

1. How relevant is this ad to you?
The storm closed every school in the county on Monday, officials said.
Video Ad Feedback 00:59 - Source: CNN Watch the storm arrive
Sign up for our newsletter here to get the latest news in your inbox.
Families were asked to sign up for text alerts from the district, which will decide on \
reopening by Wednesday after crews inspect every building for damage and flooding.
Follow Jane Doe on Twitter @janedoe.
Read More
Support local journalism. Subscribe to the Herald today."""


def test_cleaning_drops_boilerplate_lines_and_keeps_prose() -> None:
    cleaned = clean_text(PAGE)
    assert "relevant is this ad" not in cleaned
    assert "Video Ad Feedback" not in cleaned
    assert "newsletter" not in cleaned
    assert "@janedoe" not in cleaned
    assert "Read More" not in cleaned
    assert "Subscribe" not in cleaned
    assert "The storm closed every school" in cleaned
    assert "sign up for text alerts" in cleaned  # a long sentence is prose, whatever it says
    assert cleaned.startswith("Storm closes schools")


def test_clean_article_keeps_an_article_without_boilerplate_as_is() -> None:
    article = Article(id="a", title="t", text="Plain prose only.", source="s")
    assert clean_article(article) is article


def _p(article: str, source: str, text: str) -> RetrievedPassage:
    return RetrievedPassage(passage_id=f"{article}#0", article_id=article, title="t",
                            source=source, text=text, start=0, end=len(text), score=1.0)


STORY = ("Officials in the coastal town said the new bridge would open in March after two "
         "years of delays caused by storms and a shortage of steel.")


def test_near_duplicates_collapse_into_the_best_ranked_with_their_sources() -> None:
    ranked = [_p("a", "one.test", STORY), _p("b", "two.test", "Unrelated text about cats."),
              _p("c", "three.test", STORY + " Reporting by the wire."),
              _p("d", "one.test", "By a staff writer. " + STORY)]
    kept = collapse_duplicates(ranked, threshold=0.6)
    assert [p.article_id for p in kept] == ["a", "b"]
    assert kept[0].also_reported_by == ["three.test"]  # its own source is not repeated


def test_distinct_fed_one_at_a_time_keeps_what_collapse_keeps() -> None:
    from rag.dedupe import Distinct

    ranked = [_p("a", "one.test", STORY), _p("b", "two.test", "Unrelated text about cats."),
              _p("c", "three.test", STORY + " Reporting by the wire.")]
    distinct = Distinct(0.6)
    assert [distinct.add(p) for p in ranked] == [True, True, False]
    assert distinct.kept() == collapse_duplicates(ranked, threshold=0.6)


def test_passages_of_one_article_are_never_merged_and_threshold_above_one_disables() -> None:
    same = [_p("a", "s", STORY), _p("a", "s", STORY).model_copy(update={"passage_id": "a#1"})]
    assert len(collapse_duplicates(same)) == 2
    twins = [_p("a", "s", STORY), _p("b", "t", STORY)]
    assert len(collapse_duplicates(twins, threshold=1.01)) == 2


def test_limit_per_article_keeps_the_best_passages_of_each_article_in_order() -> None:
    from rag.retrieve import limit_per_article

    ranked = [_p("a", "s", "one"), _p("a", "s", "two"), _p("b", "t", "three"),
              _p("a", "s", "four"), _p("b", "t", "five")]
    assert [p.text for p in limit_per_article(ranked, 1)] == ["one", "three"]
    assert [p.text for p in limit_per_article(ranked, 2)] == ["one", "two", "three", "five"]
