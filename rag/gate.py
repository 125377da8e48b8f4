"""The answerability gate: an answer is given only when a sentence it cites answers the
question asked. Shared by every answerer, after the citation check.

The citation check asks "does the passage say this?"; the gate asks "does this answer the
question?". A cited sentence answers when (1) it is prose, not a question, headline,
heading, byline or quiz line; (2) the question's names, numbers, years and quoted words are
in it or its immediate context (two sentences either side, the title; a year also in the
publication date); (3) when the question asks for someone's words, they are quoted or
reported as that person's; and (4) it holds the kind of thing asked for (who: a person or
organisation not already in the question; how many: a number of the thing counted; when: a
date; where: a place; which X: an X). The first of these that fails everywhere is the
reason given for abstaining.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from index.clean import is_boilerplate
from index.passages import sentence_spans
from rag.answer_spans import answer_span
from rag.nlp import Language
from rag.question import (
    PERSONISH,
    PLACE,
    QUANTITY,
    WHEN,
    Constraint,
    Frame,
    analyse,
)
from rag.result import NOT_COVERED, Answer, Citation, RetrievedPassage
from rag.terms import flat, stem, stem_set, words

_CONTEXT_SENTENCES = 2
_SHORT_WORDS = 10  # a longer "short answer" is the sentence itself
_QUIZ = re.compile(r"\b[A-D]\.\s+\S.*\b[B-D]\.\s+\S")
_BYLINE = re.compile(r"^((By|Written by|Reporting by) [A-Z][\w'’.-]+( [A-Z][\w'’.-]+)*\W*$|"
                     r"(?i:updated|published|posted|photo|image|video|watch|listen|"
                     r"read more|related)\b)")
_QUOTE_MARK = re.compile(r"[“”\"]")
_REPORTING = frozenset(stem(w) for w in """said says say told tells tell added adds wrote
writes stated warned argued claimed according announced insisted noted explained asked
urged""".split())
_PRONOUNS = frozenset("he she they it his her their i we".split())
_ALIASES: dict[str, frozenset[str]] = {
    "us": frozenset({"us", "u.s", "unit", "america", "american", "washington"}),
    "uk": frozenset({"uk", "u.k", "britain", "british", "unit", "kingdom", "england"}),
    "un": frozenset({"un", "u.n", "unit", "nation"}),
    "eu": frozenset({"eu", "european", "union", "brussel"}),
}
# Country-wide words: true of most stories they describe, seldom repeated in the passage.
_GENERIC = frozenset(stem(w) for w in """us u.s america american americans uk britain british
england english world earth global international national federal""".split())
_WANTS_TEXT = [(PERSONISH, "a person or organisation"), (QUANTITY, "a number"),
               (WHEN, "a date or time"), (PLACE, "a place")]


@dataclass(frozen=True)
class Finding:
    """How one passage sentence fares as the answer to a question."""

    ok: bool
    reason: str = ""
    short: tuple[int, int] | None = None  # passage-relative span of the short answer
    step: int = 0  # how far it got: 1 prose, 2 constraints, 3 speaker, 4 kind of answer


class AnswerGate:
    """Judges passage sentences against a question, and whole answers."""

    def __init__(self, language: Language, cache_size: int = 4096) -> None:
        self.language = language
        # Judgements repeat: the answerer judges a sentence, then the check and an
        # explanation of an abstention judge it again.
        self._judged: OrderedDict[tuple[str, str, int, int, int, str], Finding] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._frames = lru_cache(maxsize=256)(self._analyse)

    def frame(self, question: str) -> Frame:
        """The question's analysis, made once: the assistant, the answerer and the checks
        each ask for it (frames are immutable)."""
        return self._frames(question)

    def _analyse(self, question: str) -> Frame:
        return analyse(self.language.parse(question))

    def judge(self, frame: Frame, passage: RetrievedPassage, start: int, end: int,
              spans: Sequence[tuple[int, int]] | None = None,
              prefer: str | None = None) -> Finding:
        """Does ``passage.text[start:end]`` answer the question of ``frame``? ``prefer``:
        the short answer to take when the sentence offers several."""
        key = (frame.text, passage.passage_id, hash(passage.text), start, end, prefer or "")
        with self._lock:
            found = self._judged.get(key)
            if found is not None:
                self._judged.move_to_end(key)
                return found
        finding = self.screen(frame, passage, start, end, spans) or self._kind(
            frame, passage, start, end, prefer)
        with self._lock:
            self._judged[key] = finding
            while len(self._judged) > self._cache_size:
                self._judged.popitem(last=False)
        return finding

    def screen(self, frame: Frame, passage: RetrievedPassage, start: int, end: int,
               spans: Sequence[tuple[int, int]] | None = None) -> Finding | None:
        """The checks that need no parse (prose, the question's names and years, the
        speaker): a failed Finding, or None when the sentence passes them."""
        text = passage.text
        sentence = text[start:end]
        if not_an_answer(sentence, passage.title):
            return Finding(False, "the passages hold only headings, questions or bylines "
                           "about it", step=0)
        context = _context(text, start, end, spans or sentence_spans(text))
        missing = _missing(frame.constraints, passage, context)
        if missing is not None:
            return Finding(False, f"no passage mentions {missing.text}", step=1)
        if frame.speaker is not None and not _quotes(frame.speaker, text, start, end):
            return Finding(False, f"the passages do not quote {frame.speaker.text}", step=2)
        return None

    def _kind(self, frame: Frame, passage: RetrievedPassage, start: int, end: int,
              prefer: str | None) -> Finding:
        """Does the sentence hold the kind of thing asked for?"""
        if not frame.wants:
            return Finding(True, step=4)
        sentence = passage.text[start:end]
        span = self.answer_span(frame, sentence, prefer)
        if span is None:
            return Finding(False, f"no passage names {_wanted_text(frame)} that answers it",
                           step=3)
        return Finding(True, short=(start + span[0], start + span[1]), step=4)

    def answer_span(self, frame: Frame, sentence: str,
                    prefer: str | None = None) -> tuple[int, int] | None:
        """Where in the sentence the thing asked for is (rag.answer_spans)."""
        return answer_span(self.language, frame, sentence, prefer)

    def check(self, question: str, answer: Answer, lead: bool = False,
              prefer: str | None = None) -> Answer:
        """The answer with its short answer, or an abstention saying why it does not
        answer the question. With ``lead`` the answer text starts with the short answer;
        ``prefer`` is the answerer's pick of it, taken when the cited sentence holds it."""
        if answer.abstained:
            return answer
        frame = self.frame(question)
        best: Finding | None = None
        spans = [(citation, a, b) for citation in answer.citations
                 for a, b in citation.highlights or [(citation.start, citation.end)]]
        if prefer:  # the sentence holding the answerer's pick first
            spans.sort(key=lambda s: flat(prefer) not in flat(
                s[0].text[s[1] - s[0].start:s[2] - s[0].start]))
        for citation, a, b in spans:
            finding = self.judge(frame, citation, a - citation.start, b - citation.start,
                                 prefer=prefer)
            if finding.ok:
                return with_short_answer(answer, frame, finding, citation, lead)
            if best is None or finding.step > best.step:
                best = finding
        assert best is not None
        return answer.model_copy(update={
            "answer": NOT_COVERED, "abstained": True, "citations": [],
            "abstain_reason": best.reason})

    def explain(self, question: str, passages: Sequence[RetrievedPassage],
                limit: int = 24) -> str:
        """Why the passages hold no answer: the reason of the sentence that came closest
        (of the ``limit`` with the most of the question's words), or that the closest ones
        are not close enough in what they say."""
        frame = self.frame(question)
        best: Finding | None = None
        for passage, a, b, spans in closest_sentences(frame, passages)[:limit]:
            finding = self.judge(frame, passage, a, b, spans)
            if finding.ok:
                return NOT_CLOSE
            if best is None or finding.step > best.step:
                best = finding
        return best.reason if best is not None else NOT_CLOSE


def closest_sentences(frame: Frame, passages: Sequence[RetrievedPassage]
                      ) -> list[tuple[RetrievedPassage, int, int, list[tuple[int, int]]]]:
    """Every sentence of the passages (once, where passages overlap), those with the most of
    the question's words first, earlier passages first among equals."""
    seen: set[tuple[str, int]] = set()
    found: list[tuple[float, RetrievedPassage, int, int, list[tuple[int, int]]]] = []
    for i, passage in enumerate(passages):
        spans = sentence_spans(passage.text)
        for a, b in spans:
            where = (passage.article_id, passage.start + a)
            if where in seen:
                continue
            seen.add(where)
            overlap = len(frame.terms & stem_set(passage.text[a:b]))
            found.append((overlap - 0.1 * i, passage, a, b, spans))
    found.sort(key=lambda f: -f[0])
    return [(p, a, b, spans) for _, p, a, b, spans in found]


NOT_CLOSE = ("the passages that name what it asks for are about something other than what the "
             "question describes")


def with_short_answer(answer: Answer, frame: Frame, finding: Finding,
                      citation: Citation, lead: bool) -> Answer:
    """Attach the short answer (verbatim, with its article span) when there is one; with
    ``lead``, the answer text starts with it ("Carlos Moedas [1] — ...")."""
    if finding.short is None or not frame.wants_short_answer:
        return answer
    a, b = finding.short
    short = citation.text[a:b]
    text = answer.answer
    if lead and len(short.split()) <= _SHORT_WORDS and flat(short) != flat(text):
        text = f"{short} [{citation.marker}] — {text}"
    return answer.model_copy(update={
        "answer": text, "short_answer": short, "short_answer_article_id": citation.article_id,
        "short_answer_span": (citation.start + a, citation.start + b)})


def _quotes(speaker: Constraint, text: str, start: int, end: int) -> bool:
    """Is the sentence the speaker's words: a quote or a report ("said"), naming the
    speaker in it, or in the sentence before when it opens "He said"?"""
    sentence = text[start:end]
    stems = stem_set(sentence)
    if not (_QUOTE_MARK.search(sentence) or stems & _REPORTING):
        return False
    if _is_speaker(speaker, stems):
        return True
    first = words(sentence.lower())[:6]
    if _PRONOUNS & set(first) or _QUOTE_MARK.match(sentence.lstrip()):
        before = text[max(0, start - 400):start]
        return _is_speaker(speaker, stem_set(before[-250:]))
    return False


def _is_speaker(speaker: Constraint, have: frozenset[str]) -> bool:
    """The speaker is named: by surname for a name ("Power" for "Samantha Power"), else by
    the role's words ("the foreign secretary" is not "the foreign minister")."""
    if speaker.kind == "person":
        return speaker.surname in have
    return sum(1 for w in speaker.stems if w in have or _alias(w, have)) * 3 >= (
        2 * len(speaker.stems))


def not_an_answer(sentence: str, title: str) -> bool:
    """A question, a headline, a heading, a byline, a quiz line or web boilerplate."""
    stripped = sentence.strip()
    if not stripped or stripped.endswith(("?", ",", ":", ";")) or stripped.startswith("#"):
        return True  # a question, a heading, or a fragment cut off mid-sentence
    if title and flat(stripped) == flat(title):
        return True
    if len(words(stripped)) < 4 or _QUIZ.search(stripped) or _BYLINE.match(stripped):
        return True
    return is_boilerplate(stripped)


def _context(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> str:
    """The sentence and up to two sentences either side of it in the passage."""
    inside = [i for i, (a, b) in enumerate(spans) if a < end and start < b]
    if not inside:
        return text[start:end]
    first = max(0, inside[0] - _CONTEXT_SENTENCES)
    last = min(len(spans) - 1, inside[-1] + _CONTEXT_SENTENCES)
    return text[spans[first][0]:spans[last][1]]


def _missing(constraints: Sequence[Constraint], passage: RetrievedPassage,
             context: str) -> Constraint | None:
    """The constraint that rules the passage out, or None.

    A year must be near the sentence (a story of 2018 may mention 2021 in passing); the
    other names, numbers and quotes of a question mostly describe the story, and a passage
    of it need not repeat each one: at least half of them (country-wide words like "US"
    aside, which a story seldom repeats) must be somewhere in the passage or its title.
    """
    whole = f"{passage.title}\n{passage.text}"
    have, digits = stem_set(whole), _digits(whole)
    described = [c for c in constraints if c.kind != "year" and not c.stems <= _GENERIC]
    absent = [c for c in described if not _present(c, have, digits, whole, "")]
    for constraint in constraints:
        if constraint.kind == "year" and not _present(constraint, have, digits, context,
                                                      passage.published):
            return constraint
    if absent and len(absent) * 2 > len(described):
        return absent[0]
    return None


def _present(constraint: Constraint, have: frozenset[str], digits: str, context: str,
             published: str) -> bool:
    if constraint.kind == "year":
        return constraint.text in context or published.startswith(constraint.text)
    if constraint.kind == "number":
        value = constraint.digits
        return bool(value) and re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])",
                                         digits) is not None
    if constraint.kind == "quote":
        return flat(constraint.text) in flat(context)
    return _matches(constraint.stems, have)


def _matches(wanted: frozenset[str], have: frozenset[str]) -> bool:
    """Are enough of a name's words there? Half of them (a surname for a full name), with
    'Russia' found as 'Russian' and 'US' as 'United States'."""
    if not wanted:
        return True
    hits = sum(1 for w in wanted if w in have or _alias(w, have))
    return hits * 2 >= len(wanted)


def _alias(word: str, have: frozenset[str]) -> bool:
    if word in _ALIASES and _ALIASES[word] & have:
        return True
    if len(word) < 5 or word.isdigit():
        return False
    return any(len(h) >= 5 and (h.startswith(word[:5]) and word.startswith(h[:5]))
               and abs(len(h) - len(word)) <= 4 for h in have)


def _wanted_text(frame: Frame) -> str:
    if frame.wants == frozenset({"MONEY"}):
        return "a sum of money"
    if frame.head:
        return f"the {frame.head}" if frame.wh != "how many" else f"a number of {frame.head}"
    for labels, text in _WANTS_TEXT:
        if frame.wants <= labels or labels <= frame.wants:
            return text
    return "what it asks for"


def _digits(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


