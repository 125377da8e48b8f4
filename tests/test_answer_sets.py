"""The answer dev sets: our hand-written rows say only what the articles say, and the sets
derived from ../shared keep their promises (negatives never answerable from what is left)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.answer_sets import (
    ANSWER_DATA,
    SEED_ARTICLE,
    SEED_ID,
    SHARED_EVAL,
    SHARED_SETS,
    own_articles,
    read_jsonl,
    write_sets,
)
from rag.eval import contains_answer, load_questions, normalise_answer, url_key

SEED_ROWS = read_jsonl(ANSWER_DATA / "seed_questions.jsonl")
FOLLOWUPS = read_jsonl(ANSWER_DATA / "followups.jsonl")
ARTICLE_ROWS = read_jsonl(ANSWER_DATA / "article_questions.jsonl")
ARTICLES = {a["id"]: a for a in own_articles()}
REFERRING = {"her", "she", "it", "they", "that", "the deal", "and in"}


def _answerable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if not r.get("unanswerable")]


def test_seed_rows_ask_enough_of_both_kinds() -> None:
    assert len(_answerable(SEED_ROWS)) >= 13
    assert len(SEED_ROWS) - len(_answerable(SEED_ROWS)) >= 5


@pytest.mark.parametrize("row", _answerable(SEED_ROWS), ids=lambda r: str(r["id"]))
def test_every_seed_answer_is_verbatim_in_the_seed_article(row: dict[str, Any]) -> None:
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    assert row["gold_urls"] == [SEED_ID]
    for answer in row["answers"]:
        assert answer in text, answer


@pytest.mark.parametrize("row", _answerable(FOLLOWUPS) + _answerable(ARTICLE_ROWS),
                         ids=lambda r: str(r["id"]))
def test_every_own_answer_is_verbatim_in_its_article(row: dict[str, Any]) -> None:
    [gold] = row["gold_urls"]
    for answer in row["answers"]:
        assert answer in ARTICLES[gold]["text"], answer


def test_every_test_article_is_asked_about_alone_and_most_in_dialogue() -> None:
    ours = {a["id"] for a in read_jsonl(ANSWER_DATA / "articles.jsonl")}
    assert {r["gold_urls"][0] for r in _answerable(ARTICLE_ROWS)} == ours
    asked_after = {r["gold_urls"][0] for r in _answerable(FOLLOWUPS)}
    assert asked_after <= ours | {SEED_ID} and len(asked_after & ours) >= 4
    assert len(ARTICLE_ROWS) > len(_answerable(ARTICLE_ROWS)) and not any(
        r.get("history") for r in ARTICLE_ROWS)


def test_follow_ups_lean_on_their_history() -> None:
    assert len(FOLLOWUPS) >= 8 and len(FOLLOWUPS) > len(_answerable(FOLLOWUPS))
    for row in FOLLOWUPS:
        roles = [t["role"] for t in row["history"]]
        assert roles and roles[0] == "user" and "assistant" in roles, row["id"]
        question = f" {row['question'].lower()} "
        assert any(f" {w} " in question.replace("?", " ") for w in REFERRING) or len(
            question.split()) <= 4, row["question"]


def test_own_articles_are_short_news_with_ids_titles_sources_and_dates() -> None:
    ours = read_jsonl(ANSWER_DATA / "articles.jsonl")
    assert 3 <= len(ours) <= 5
    for article in ours:
        assert 150 <= len(article["text"].split()) <= 300, article["id"]
        assert article["id"] and article["title"] and article["source"]
        assert article["published"][:4].isdigit()
    assert ARTICLES[SEED_ID]["text"] == SEED_ARTICLE.read_text(encoding="utf-8")


def test_own_rows_are_valid_eval_rows(tmp_path: Path) -> None:
    sets = write_sets(tmp_path, ["own"])
    for path in sets["own"].parts.values():
        rows = load_questions(path)
        assert rows and all(r.question for r in rows)
    assert sum(1 for r in load_questions(sets["own"].parts["followups"]) if r.history) >= 8
    stored = [json.loads(line) for line in sets["own"].articles.read_text().splitlines()]
    assert [a["id"] for a in stored] == list(ARTICLES)


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="../shared/eval is not beside the checkout")
def test_shared_sets_have_every_positive_and_only_verified_negatives(tmp_path: Path) -> None:
    sets = write_sets(tmp_path, ["dev", "2025"])
    for name, found in sets.items():
        questions = read_jsonl(SHARED_EVAL / SHARED_SETS[name] / "questions.jsonl")
        articles = read_jsonl(found.articles)
        positives = read_jsonl(found.parts["positives"])
        negatives = read_jsonl(found.parts["negatives"])
        assert [p["id"] for p in positives] == [q["id"] for q in questions]
        assert all(p["gold_urls"] and p["date"] for p in positives)
        assert len(negatives) > 0, name
        by_question = {q["id"]: q for q in questions}
        # normalised once, as contains_answer normalises both sides
        texts = {a["id"]: normalise_answer(f"{a['title']}\n{a['text']}") for a in articles}
        for row in negatives:
            original = by_question[row["id"].removesuffix(":neg")]
            assert row["unanswerable"] and row["question"] == original["question"]
            gold = {url_key(g) for g in original["gold_urls"]}
            assert {url_key(i) for i in row["exclude_ids"]} == gold, row["id"]
            needles = [normalise_answer(a) for a in row["answers"]]
            kept = [t for aid, t in texts.items() if aid not in row["exclude_ids"]]
            assert len(kept) == len(texts) - len(row["exclude_ids"])
            assert not any(n in t for t in kept for n in needles), row["id"]
            assert any(contains_answer(texts[i], row["answers"]) for i in row["exclude_ids"])
        assert load_questions(found.parts["negatives"])[0].exclude_ids
