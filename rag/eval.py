"""The metrics behind `rag eval`: how often retrieval finds the gold article, and how good the
final cited answers are, on a file of questions with known answers.

Question rows: ``{id, question, answers?: [str], gold_urls?: [article ids or URLs],
unanswerable?: bool}``. Each metric is averaged over the rows that carry what it needs
(None when no row does).
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

from rag.filters import Filters
from rag.result import Answer, RetrievedPassage

METRIC_KEYS = ("n_questions", "hits@1", "hits@5", "hits@10", "mrr@10", "ansin@5",
               "answer_accuracy", "citation_precision", "abstention_rate",
               "retrieval_p50_ms", "retrieval_p95_ms")

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'",
                         "’": "'", "‚": "'", "`": "'", "´": "'"})
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class EvalQuestion:
    """One row of a questions file."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    gold: tuple[str, ...] = ()
    unanswerable: bool = False
    as_of: date | None = None  # the row's 'date': the day the question was asked


@dataclass
class Outcome:
    """What happened for one question."""

    gold_rank: int | None = None  # 1-based rank of the first gold passage, None if not found
    has_gold: bool = False
    answer_in_top5: bool | None = None
    answered: bool | None = None  # the final answer contains an answer string
    cited: int = 0
    cited_relevant: int = 0
    abstained: bool = False
    unanswerable: bool = False
    latency_ms: float = 0.0
    cited_checked: bool = False


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
        unanswerable = [x for x in o if x.unanswerable]
        latency = [x.latency_ms for x in o]
        return {
            "n_questions": len(o),
            "hits@1": _mean([r is not None and r <= 1 for r in ranks]),
            "hits@5": _mean([r is not None and r <= 5 for r in ranks]),
            "hits@10": _mean([r is not None and r <= 10 for r in ranks]),
            "mrr@10": _mean([1.0 / r if r is not None and r <= 10 else 0.0 for r in ranks]),
            "ansin@5": _mean([x.answer_in_top5 for x in o if x.answer_in_top5 is not None]),
            "answer_accuracy": _mean([bool(x.answered) for x in answerable]),
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
                as_of=parse_day(str(row.get("date") or ""))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{n}: not a question row ({exc})") from exc
    return rows


def parse_day(text: str) -> date | None:
    """'2022/06/16' or '2022-06-16' (a time after it is ignored); None when not a date."""
    try:
        return date.fromisoformat(text.strip()[:10].replace("/", "-"))
    except ValueError:
        return None


def normalise_answer(text: str) -> str:
    """Lower case, curly quotes made straight, surrounding quotes dropped, spaces collapsed."""
    text = _SPACE.sub(" ", text.translate(_QUOTES).lower()).strip()
    return text.strip("\"' ").strip()


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Does ``text`` contain one of ``answers`` (case-insensitive, quotes normalised)?"""
    haystack = normalise_answer(text)
    return any(a and a in haystack for a in (normalise_answer(x) for x in answers))


def _url_key(url: str) -> str:
    """Gold URLs may carry '#:~:text=' fragments or a trailing slash; compare without them."""
    return url.split("#", 1)[0].rstrip("/").lower()


def is_gold(passage: RetrievedPassage, gold: Iterable[str]) -> bool:
    keys = {_url_key(g) for g in gold}
    return bool(keys & {_url_key(passage.article_id), _url_key(passage.url)} - {""})


def judge(question: EvalQuestion, ranked: Sequence[RetrievedPassage], answer: Answer | None,
          latency_ms: float) -> Outcome:
    """Score one question from its ranked passages (at least 10 for Hits@10) and answer."""
    outcome = Outcome(latency_ms=latency_ms, unanswerable=question.unanswerable)
    if question.gold and not question.unanswerable:
        outcome.has_gold = True
        outcome.gold_rank = next((i for i, p in enumerate(ranked[:10], start=1)
                                  if is_gold(p, question.gold)), None)
    if question.answers and not question.unanswerable:
        outcome.answer_in_top5 = any(contains_answer(p.text, question.answers)
                                     for p in ranked[:5])
    if answer is None:
        return outcome
    outcome.abstained = answer.abstained
    if question.unanswerable:
        return outcome
    if question.answers:
        outcome.answered = not answer.abstained and contains_answer(
            answer.answer, question.answers)
    if question.answers or question.gold:
        outcome.cited_checked = True
        outcome.cited = len(answer.citations)
        outcome.cited_relevant = sum(
            is_gold(c, question.gold) or contains_answer(c.text, question.answers)
            for c in answer.citations)
    return outcome


def evaluate(questions: Sequence[EvalQuestion],
             retrieve: Callable[[str, int, Filters | None, date | None],
                                list[RetrievedPassage]],
             ask: Callable[[str, date | None], Answer] | None,
             progress: Callable[[int], None] | None = None,
             use_dates: bool = True) -> EvalReport:
    """Run every question through ``retrieve`` (timed, 10 passages) and ``ask`` (answered),
    as of the row's date when it has one and ``use_dates`` is on."""
    report = EvalReport()
    for question in questions:
        as_of = question.as_of if use_dates else None
        started = time.perf_counter()
        ranked = retrieve(question.question, 10, None, as_of)
        latency = (time.perf_counter() - started) * 1000
        answer = ask(question.question, as_of) if ask else None
        report.outcomes.append(judge(question, ranked, answer, latency))
        if progress:
            progress(1)
    return report
