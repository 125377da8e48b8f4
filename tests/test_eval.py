"""`rag eval` metrics on hand-made questions, and the command's JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answerers import Turn
from rag.eval import (
    METRIC_KEYS,
    EvalQuestion,
    EvalReport,
    contains_answer,
    judge,
    load_questions,
    short_answer_matches,
)
from rag.result import Answer, Citation, RetrievedPassage
from tests.helpers import write_jsonl
from ui.cli import main


def _passage(article: str, text: str = "filler text", n: int = 0) -> RetrievedPassage:
    return RetrievedPassage(passage_id=f"{article}#{n}", article_id=article, title="t",
                            source="s", text=text, start=0, end=len(text), score=1.0)


def _answer(text: str, cited: list[RetrievedPassage], abstained: bool = False,
            short: str | None = None) -> Answer:
    citations = [Citation(**p.model_dump(), marker=i + 1) for i, p in enumerate(cited)]
    return Answer(question="q", answer=text, abstained=abstained, citations=citations,
                  short_answer=short)


def test_answer_matching_ignores_case_and_curly_quotes() -> None:
    assert contains_answer('Netflix renewed "squid game" on Sunday.', ["“Squid Game”"])
    assert not contains_answer("Netflix renewed a show.", ["“Squid Game”"])


def test_metrics_on_a_hand_made_set() -> None:
    q1 = EvalQuestion("1", "q1", answers=("Europe",), gold=("https://x.test/a#:~:text=b",))
    q2 = EvalQuestion("2", "q2", answers=("42",), gold=("https://x.test/b",))
    q3 = EvalQuestion("3", "q3", answers=("never",), gold=("https://x.test/c",))
    q4 = EvalQuestion("4", "q4", unanswerable=True)
    ranked1 = [_passage("https://x.test/a", "Europe will require it.")] + [
        _passage("other", n=i) for i in range(1, 10)]
    ranked2 = [_passage("other", n=i) for i in range(2)] + [
        _passage("https://x.test/b", "The answer is 42.")] + [
        _passage("other", n=i) for i in range(3, 10)]
    ranked3 = [_passage("other", n=i) for i in range(10)]
    report = EvalReport([
        judge(q1, ranked1, _answer("Europe will require it.", [ranked1[0], ranked1[1]]), 10.0),
        judge(q2, ranked2, _answer("Nothing useful.", [ranked2[0]]), 20.0),
        judge(q3, ranked3, _answer("x", [], abstained=True), 30.0),
        judge(q4, ranked3, _answer("x", [], abstained=True), 40.0),
    ])
    m = report.metrics()
    assert tuple(m) == METRIC_KEYS
    assert m["n_questions"] == 4
    assert m["hits@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["hits@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["hits@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert m["ansin@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["answer_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["citation_precision"] == pytest.approx(1 / 3, abs=1e-4)  # 1 of 3 cited
    assert m["abstention_rate"] == 1.0
    assert m["retrieval_p50_ms"] == pytest.approx(25.0)


def test_abstention_rate_is_null_without_unanswerable_rows() -> None:
    q = EvalQuestion("1", "q", answers=("a",))
    m = EvalReport([judge(q, [], None, 1.0)]).metrics()
    assert m["abstention_rate"] is None
    assert m["hits@5"] is None  # no gold articles given


def test_answer_metrics_separate_right_answers_refusals_and_false_answers() -> None:
    cited = [_passage("a", "Carlos Moedas won the vote.")]
    asked_after = (Turn("user", "Who ran for mayor?"), Turn("assistant", "Two people. [1]"))
    mayor = EvalQuestion("1", "Who won?", answers=("Carlos Moedas",))
    followup = EvalQuestion("2", "Did he win?", answers=("Carlos Moedas",), history=asked_after)
    uncited = EvalQuestion("3", "Who won?", answers=("Carlos Moedas",))
    refused = EvalQuestion("4", "Who won?", answers=("Carlos Moedas",), history=asked_after)
    missing = EvalQuestion("5", "Who won in 2021?", unanswerable=True)
    declined = EvalQuestion("6", "Who won in 2020?", unanswerable=True)
    m = EvalReport([
        judge(mayor, cited, _answer("Carlos Moedas won the vote. [1]", cited,
                                    short="Moedas"), 1.0),
        judge(followup, cited, _answer("Carlos Moedas won the vote. [1]", cited,
                                       short="the"), 1.0),
        judge(uncited, cited, _answer("Carlos Moedas won the vote.", [],
                                      short="Carlos Moedas"), 1.0),
        judge(refused, cited, _answer("x", [], abstained=True), 1.0),
        judge(missing, cited, _answer("Carlos Moedas won the vote. [1]", cited), 1.0),
        judge(declined, cited, _answer("x", [], abstained=True), 1.0),
    ]).metrics()
    assert m["answer_accuracy"] == 0.5  # the uncited and the refused answers are wrong
    assert m["followup_accuracy"] == 0.5
    assert m["over_refusal_rate"] == 0.25
    assert m["false_answer_rate"] == 0.5 and m["abstention_rate"] == 0.5
    assert m["short_answer_accuracy"] == 0.5  # "Moedas" and "Carlos Moedas"; not "the"


def test_answer_metrics_are_null_when_nothing_was_answered() -> None:
    rows = [EvalQuestion("1", "q", answers=("a",)), EvalQuestion("2", "q", unanswerable=True)]
    m = EvalReport([judge(q, [], None, 1.0) for q in rows]).metrics()
    for key in ("answer_accuracy", "short_answer_accuracy", "followup_accuracy",
                "over_refusal_rate", "false_answer_rate", "abstention_rate"):
        assert m[key] is None, key


@pytest.mark.parametrize(("short", "right"), [
    ("Carlos Moedas", True), ("Mayor Carlos Moedas of Lisbon", True), ("Moedas", True),
    ("carlos", True), ("the", False), ("", False), (None, False), ("Lisbon", False)])
def test_short_answer_contains_the_answer_or_is_a_real_part_of_it(short: str | None,
                                                                   right: bool) -> None:
    assert short_answer_matches(short, ["Carlos Moedas"]) is right


def test_a_number_is_not_matched_by_a_piece_of_it() -> None:
    assert not short_answer_matches("2", ["2,000 people"])
    assert short_answer_matches("2,000", ["2,000 people"])
    assert short_answer_matches("“Squid Game”", ["Squid Game"])


def test_rows_carry_history_and_excluded_articles(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({
        "id": "f", "question": "And her coach?", "exclude_ids": ["https://x.test/a"],
        "history": [{"role": "user", "content": "Who won?"},
                    {"role": "assistant", "content": "Lena Varga. [1]"}]}) + "\n",
        encoding="utf-8")
    [row] = load_questions(path)
    assert row.history == (Turn("user", "Who won?"), Turn("assistant", "Lena Varga. [1]"))
    assert row.exclude_ids == ("https://x.test/a",)
    filters = row.filters()
    assert filters is not None and filters.exclude_article_ids == ["https://x.test/a"]
    path.write_text('{"question": "q", "history": [{"role": "system", "content": "x"}]}\n',
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.jsonl:1"):
        load_questions(path)


def test_rag_eval_json_prints_exactly_the_documented_keys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    articles = tmp_path / "articles.jsonl"
    rows = [
        {"id": "https://n.test/volcano", "title": "Volcano erupts on Tolbek island",
         "text": "The Tolbek volcano erupted on Sunday. Flights were cancelled and 3,000 "
                 "islanders were evacuated to the port of Varsa.", "source": "n.test",
         "published": "2022-06-12"},
        {"id": "https://n.test/chess", "title": "Teenager wins chess title",
         "text": "Mira Castellanos won the national chess championship on Saturday.",
         "source": "n.test", "published": "2022-07-02"},
    ]
    write_jsonl(articles, rows)
    questions = tmp_path / "questions.jsonl"
    write_jsonl(questions, [
        {"id": "1", "question": "Where were the Tolbek islanders evacuated to?",
         "answers": ["Varsa"], "gold_urls": ["https://n.test/volcano"]},
        {"id": "2", "question": "Who won the national chess championship?",
         "answers": ["Mira Castellanos"], "gold_urls": ["https://n.test/chess"]},
    ])
    data = tmp_path / "data"
    code = main(["-q", "--data-dir", str(data), "eval", str(questions), "--articles",
                 str(articles), "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["n_questions"] == 2
    assert metrics["hits@1"] == 1.0
    assert metrics["abstention_rate"] is None
    assert 0 <= metrics["answer_accuracy"] <= 1
    # the user's own collection was left untouched
    assert main(["-q", "--data-dir", str(data), "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_rag_eval_compare_adds_the_dense_and_bm25_figures_of_the_same_rows(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    articles = tmp_path / "articles.jsonl"
    write_jsonl(articles, [
        {"id": "https://n.test/volcano", "title": "Volcano erupts on Tolbek island",
         "text": "The Tolbek volcano erupted on Sunday. 3,000 islanders were evacuated to "
                 "the port of Varsa.", "source": "n.test"},
        {"id": "https://n.test/chess", "title": "Teenager wins chess title",
         "text": "Mira Castellanos won the national chess championship on Saturday.",
         "source": "n.test"},
    ])
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps(
        {"id": "1", "question": "Where were the Tolbek islanders evacuated to?",
         "answers": ["Varsa"], "gold_urls": ["https://n.test/volcano"]}), encoding="utf-8")
    data = ["-q", "--data-dir", str(tmp_path / "data"), "eval", str(questions), "--articles",
            str(articles), "--no-answers"]
    assert main([*data, "--json", "--compare"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(metrics) == [*METRIC_KEYS, "compare"]  # the usual keys first, unchanged
    assert set(metrics["compare"]) == {"dense", "bm25"}
    for side in metrics["compare"].values():
        assert list(side) == list(METRIC_KEYS)
        assert side["hits@1"] == 1.0 and side["answer_accuracy"] is None
    assert main([*data, "--compare"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["hybrid", "dense", "bm25"]
    assert table[3].split() == ["hits@1", "1.0", "1.0", "1.0"]


def test_rag_eval_asks_negatives_without_their_articles_and_follow_ups_after_history(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    articles = tmp_path / "articles.jsonl"
    write_jsonl(articles, [
        {"id": "https://n.test/volcano", "title": "Volcano erupts on Tolbek island",
         "text": "The Tolbek volcano erupted on Sunday. Flights were cancelled and 3,000 "
                 "islanders were evacuated to the port of Varsa.", "source": "n.test"},
        {"id": "https://n.test/chess", "title": "Teenager wins chess title",
         "text": "Mira Castellanos won the national chess championship on Saturday. Her coach, "
                 "Anton Brevik, said she had trained for the final every morning for a year.",
         "source": "n.test"},
    ])
    evacuated = "Where were the Tolbek islanders evacuated to?"
    questions = tmp_path / "questions.jsonl"
    write_jsonl(questions, [
        {"id": "1", "question": evacuated, "answers": ["Varsa"],
         "gold_urls": ["https://n.test/volcano"]},
        {"id": "1-neg", "question": evacuated, "answers": ["Varsa"], "unanswerable": True,
         "exclude_ids": ["https://n.test/volcano"]},
        {"id": "2", "question": "Who is her coach?", "answers": ["Anton Brevik"],
         "history": [{"role": "user", "content": "Who won the national chess championship?"},
                     {"role": "assistant", "content": "Mira Castellanos won it. [1]"}]},
    ])
    code = main(["-q", "--data-dir", str(tmp_path / "data"), "eval", str(questions),
                 "--articles", str(articles), "--json"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(metrics) == list(METRIC_KEYS)
    # without its article, nothing mentions Tolbek or Varsa: the negative abstains
    assert metrics["false_answer_rate"] == 0.0 and metrics["abstention_rate"] == 1.0
    assert metrics["answer_accuracy"] == 1.0 and metrics["followup_accuracy"] == 1.0
    assert metrics["over_refusal_rate"] == 0.0
    assert metrics["short_answer_accuracy"] == 1.0  # "Varsa", "Anton Brevik": short answers


def test_rag_ask_filters_by_source_and_rejects_a_bad_date(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    articles = tmp_path / "articles.jsonl"
    write_jsonl(articles, [
        {"id": "a", "title": "Harbour reopens in Varsa", "source": "one.test",
         "published": "2022-06-01", "text": "The harbour of Varsa reopened on Monday after "
         "the storm, the port authority said."},
        {"id": "b", "title": "Harbour stays shut in Delmar", "source": "two.test",
         "published": "2022-06-20", "text": "The harbour of Delmar stays shut after the "
         "storm, the port authority said on Friday."},
    ])
    data = ["-q", "--data-dir", str(tmp_path / "data")]
    assert main([*data, "ingest", str(articles)]) == 0
    capsys.readouterr()
    assert main([*data, "ask", "--json", "--source", "two.test", "What happened to the "
                 "harbour after the storm?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passages"] and {p["source"] for p in result["passages"]} == {"two.test"}
    assert main([*data, "ask", "--json", "--until", "2022-06-10", "Harbour?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {p["article_id"] for p in result["passages"]} == {"a"}
    assert main([*data, "ask", "--json", "--exclude", "a", "Harbour?"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {p["article_id"] for p in result["passages"]} == {"b"}
    for bad in ("June 1", "2025-13-45"):
        with pytest.raises(SystemExit) as stopped:
            main([*data, "ask", "--since", bad, "Harbour?"])
        assert stopped.value.code == 2
        assert f"'{bad}' is not a date on the calendar" in capsys.readouterr().err


def test_question_rows_carry_their_date_as_the_as_of_day(tmp_path: Path) -> None:
    from datetime import date

    from rag.eval import load_questions

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "Who?", "date": "2022/06/16"}\n'
                    '{"id": "b", "question": "What?"}\n', encoding="utf-8")
    first, second = load_questions(path)
    assert first.as_of == date(2022, 6, 16) and second.as_of is None
