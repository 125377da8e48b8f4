"""The metrics behind `rag eval`: how often retrieval finds the gold article, and how good the
final cited answers are, on a file of questions with known answers.

Question rows: ``{id, question, answers?: [str], gold_urls?: [article ids or URLs],
unanswerable?: bool, date?: "YYYY/MM/DD", history?: [{role, content}], exclude_ids?:
[article ids]}``. ``history`` makes the row a follow-up asked after those turns;
``exclude_ids`` asks it as if those articles were not stored (a real retrieval filter), which
turns an answerable question into an unanswerable one without a second collection. Each metric
is averaged over the rows that carry what it needs (None when no row does).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from index.filters import Filters
from rag.answerers import Turn
from rag.result import Answer, RetrievedPassage
from rag.retrieve import parse_day
from rag.terms import STOPWORDS

METRIC_KEYS = ("n_questions", "hits@1", "hits@5", "hits@10", "mrr@10", "ansin@5",
               "answer_accuracy", "short_answer_accuracy", "followup_accuracy",
               "over_refusal_rate", "false_answer_rate", "citation_precision",
               "abstention_rate", "retrieval_p50_ms", "retrieval_p95_ms")

Retrieve = Callable[[str, int, Filters | None, date | None], list[RetrievedPassage]]
Ask = Callable[[str, date | None, Sequence[Turn], Filters | None], Answer]
"""``ask(question, as_of, history, filters)``: the assistant's answer to one row."""
Condense = Callable[[str, Sequence[Turn]], str]

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'",
                         "’": "'", "‚": "'", "`": "'", "´": "'"})
_SPACE = re.compile(r"\s+")
# "2,000", "military-style" and "U.S." are one token each: "2" is not part of "2,000".
_ANSWER_TOKEN = re.compile(r"\w+(?:[.,'-]\w+)*")


@dataclass(frozen=True)
class EvalQuestion:
    """One row of a questions file."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    gold: tuple[str, ...] = ()
    unanswerable: bool = False
    as_of: date | None = None  # the row's 'date': the day the question was asked
    history: tuple[Turn, ...] = ()  # earlier turns: the row is a follow-up to them
    exclude_ids: tuple[str, ...] = ()  # articles the row is asked without

    def filters(self) -> Filters | None:
        """The row's retrieval filter: its excluded articles, or None."""
        if not self.exclude_ids:
            return None
        return Filters(exclude_article_ids=list(self.exclude_ids))


@dataclass
class Outcome:
    """What happened for one question."""

    gold_rank: int | None = None  # 1-based rank of the first gold passage, None if not found
    has_gold: bool = False
    answer_in_top5: bool | None = None
    answered: bool | None = None  # cited, and the final answer contains an answer string
    refused: bool | None = None  # an answerable row abstained (None: unanswerable, not asked)
    short_answered: bool | None = None  # the short answer matches an answer string
    followup: bool = False  # the row was asked after a history
    asked: bool = False  # the assistant answered (not only retrieval)
    cited: int = 0
    cited_relevant: int = 0
    abstained: bool = False
    unanswerable: bool = False
    latency_ms: float = 0.0
    cited_checked: bool = False
    question_id: str = ""
    answer: Answer | None = None  # kept so a run can be compared row by row with another

    def row(self) -> dict[str, Any]:
        """What a per-row dump shows: the verdicts and what the assistant said."""
        a = self.answer
        return {"id": self.question_id, "answered": self.answered, "refused": self.refused,
                "abstained": self.abstained if a else None, "unanswerable": self.unanswerable,
                "short_answered": self.short_answered, "gold_rank": self.gold_rank,
                "answer_in_top5": self.answer_in_top5,
                "answer": a.answer if a else None, "short_answer": a.short_answer if a else None,
                "abstain_reason": a.abstain_reason if a else None,
                "condensed_question": a.condensed_question if a else None,
                "cited": [c.article_id for c in a.citations] if a else []}


@dataclass
class EvalReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """The figures `rag eval --json` prints, under exactly :data:`METRIC_KEYS`."""
        o = self.outcomes
        gold = [x for x in o if x.has_gold]
        ranks = [x.gold_rank for x in gold]
        answerable = [x for x in o if x.answered is not None]
        checked = [x for x in o if x.cited_checked]
        cited = sum(x.cited for x in checked)
        asked = [x for x in o if x.asked]
        unanswerable = [x for x in asked if x.unanswerable]
        latency = [x.latency_ms for x in o]
        return {
            "n_questions": len(o),
            "hits@1": _mean([r is not None and r <= 1 for r in ranks]),
            "hits@5": _mean([r is not None and r <= 5 for r in ranks]),
            "hits@10": _mean([r is not None and r <= 10 for r in ranks]),
            "mrr@10": _mean([1.0 / r if r is not None and r <= 10 else 0.0 for r in ranks]),
            "ansin@5": _mean([x.answer_in_top5 for x in o if x.answer_in_top5 is not None]),
            "answer_accuracy": _mean([bool(x.answered) for x in answerable]),
            "short_answer_accuracy": _mean([bool(x.short_answered) for x in answerable]),
            "followup_accuracy": _mean([bool(x.answered) for x in answerable if x.followup]),
            "over_refusal_rate": _mean([x.refused for x in o if x.refused is not None]),
            "false_answer_rate": _mean([not x.abstained for x in unanswerable]),
            "citation_precision": (round(sum(x.cited_relevant for x in checked) / cited, 4)
                                   if cited else None),
            "abstention_rate": _mean([x.abstained for x in unanswerable]),
            "retrieval_p50_ms": round(float(np.percentile(latency, 50)), 1) if latency else None,
            "retrieval_p95_ms": round(float(np.percentile(latency, 95)), 1) if latency else None,
        }


def _mean(values: Sequence[bool | float]) -> float | None:
    return round(sum(float(v) for v in values) / len(values), 4) if values else None


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read a JSONL questions file; a row without ``question`` is an error naming its line."""
    rows: list[EvalQuestion] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append(EvalQuestion(
                id=str(row.get("id", n)), question=str(row["question"]),
                answers=tuple(str(a) for a in row.get("answers") or ()),
                gold=tuple(str(g) for g in row.get("gold_urls") or ()),
                unanswerable=bool(row.get("unanswerable", False)),
                as_of=parse_day(str(row.get("date") or "")),
                history=tuple(_turn(t) for t in row.get("history") or ()),
                exclude_ids=tuple(str(i) for i in row.get("exclude_ids") or ())))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{n}: not a question row ({exc})") from exc
    return rows


def _turn(item: Any) -> Turn:
    """One ``{"role": "user" | "assistant", "content": str}`` of a row's history."""
    role, content = item["role"], item["content"]
    if role not in ("user", "assistant") or not isinstance(content, str):
        raise ValueError(f"history turns need role user/assistant and text content: {item!r}")
    return Turn(role, content)


def normalise_answer(text: str) -> str:
    """Lower case, curly quotes made straight, surrounding quotes dropped, spaces collapsed."""
    text = _SPACE.sub(" ", text.translate(_QUOTES).lower()).strip()
    return text.strip("\"' ").strip()


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Does ``text`` contain one of ``answers`` (case-insensitive, quotes normalised)?"""
    haystack = normalise_answer(text)
    return any(a and a in haystack for a in (normalise_answer(x) for x in answers))


def short_answer_matches(short: str | None, answers: Iterable[str]) -> bool:
    """Is ``short`` a right short answer? It contains an answer string, or is a non-trivial
    whole-word part of one ("Moedas" for "Carlos Moedas"; not "the", not "2" of "2,000")."""
    if not short or not short.strip():
        return False
    answers = list(answers)
    if contains_answer(short, answers):
        return True
    needle = _ANSWER_TOKEN.findall(normalise_answer(short))
    if not any(any(c.isdigit() for c in t) or (len(t) > 1 and t not in STOPWORDS)
               for t in needle):
        return False
    return any(_has_run(_ANSWER_TOKEN.findall(normalise_answer(a)), needle) for a in answers)


def _has_run(tokens: list[str], run: list[str]) -> bool:
    return any(tokens[i:i + len(run)] == run for i in range(len(tokens) - len(run) + 1))


def url_key(url: str) -> str:
    """Gold URLs may carry '#:~:text=' fragments or a trailing slash; compare without them."""
    return url.split("#", 1)[0].rstrip("/").lower()


def is_gold(passage: RetrievedPassage, gold: Iterable[str]) -> bool:
    keys = {url_key(g) for g in gold}
    return bool(keys & {url_key(passage.article_id), url_key(passage.url)} - {""})


def judge(question: EvalQuestion, ranked: Sequence[RetrievedPassage], answer: Answer | None,
          latency_ms: float) -> Outcome:
    """Score one question from its ranked passages (at least 10 for Hits@10) and answer.

    An answer is right only when it is cited and contains an answer string; an abstention is
    wrong for an answerable row (an over-refusal) and right for an unanswerable one.
    """
    outcome = Outcome(latency_ms=latency_ms, unanswerable=question.unanswerable,
                      followup=bool(question.history), question_id=question.id, answer=answer)
    if question.gold and not question.unanswerable:
        outcome.has_gold = True
        outcome.gold_rank = next((i for i, p in enumerate(ranked[:10], start=1)
                                  if is_gold(p, question.gold)), None)
    if question.answers and not question.unanswerable:
        outcome.answer_in_top5 = any(contains_answer(p.text, question.answers)
                                     for p in ranked[:5])
    if answer is None:
        return outcome
    outcome.asked = True
    outcome.abstained = answer.abstained
    if question.unanswerable:
        return outcome
    outcome.refused = answer.abstained
    if question.answers:
        outcome.answered = (not answer.abstained and bool(answer.citations)
                            and contains_answer(answer.answer, question.answers))
        outcome.short_answered = (not answer.abstained
                                  and short_answer_matches(answer.short_answer, question.answers))
    if question.answers or question.gold:
        outcome.cited_checked = True
        outcome.cited = len(answer.citations)
        outcome.cited_relevant = sum(
            is_gold(c, question.gold) or contains_answer(c.text, question.answers)
            for c in answer.citations)
    return outcome


def evaluate(questions: Sequence[EvalQuestion], retrieve: Retrieve, ask: Ask | None,
             progress: Callable[[int], None] | None = None, use_dates: bool = True,
             condense: Condense | None = None) -> EvalReport:
    """Run every question through ``retrieve`` (timed, 10 passages) and ``ask`` (answered),
    as of the row's date when it has one and ``use_dates`` is on, without its excluded
    articles, and after its history. A follow-up is retrieved as ``condense`` rewrites it
    (the assistant's own condenser), so its retrieval figures measure what the answerer saw.
    """
    report = EvalReport()
    for question in questions:
        as_of = question.as_of if use_dates else None
        filters = question.filters()
        text = question.question
        if question.history and condense is not None:
            text = condense(text, question.history)
        started = time.perf_counter()
        ranked = retrieve(text, 10, filters, as_of)
        latency = (time.perf_counter() - started) * 1000
        answer = ask(question.question, as_of, question.history, filters) if ask else None
        report.outcomes.append(judge(question, ranked, answer, latency))
        if progress:
            progress(1)
    return report
