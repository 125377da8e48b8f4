"""Answerers turn a question and retrieved passages into answer text with [n] markers.

Every answerer's text then goes through :class:`rag.citations.CitationChecker`; an answerer
never decides on its own what counts as supported.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.embedder import Embedder, Vectors
from rag.gate import AnswerGate, closest_sentences
from rag.question import QUANTITY, WHEN, Frame, base_form, focus
from rag.result import RetrievedPassage
from rag.terms import content_terms, flat, strip_markers, words


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a chat."""

    role: str  # "user" or "assistant"
    content: str


class Answerer(Protocol):
    """Streams answer text; markers [n] refer to ``passages[n - 1]``.

    ``streams``: whether the text comes in pieces worth showing as they arrive (a language
    model) or all at once (the extractive answerer, whose answer then leads with its short
    answer).
    """

    @property
    def name(self) -> str: ...

    @property
    def streams(self) -> bool: ...

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str | ShortAnswer]: ...


_ANAPHORS = frozenset("""it its he she his her they their them this that these those but
however yet so then there such both""".split())


def _leans_on_previous(sentence: str) -> bool:
    """Does the sentence open with a word that refers back to the one before?"""
    first = words(sentence[:40])
    return bool(first) and first[0].lower() in _ANAPHORS


@dataclass(frozen=True)
class _Candidate:
    passage: int  # index into passages
    start: int  # passage-relative span
    end: int
    text: str


@dataclass(frozen=True)
class ShortAnswer:
    """An answerer's pick of the short answer (a name, number, date, place), passed with
    its text; the gate takes it when the cited sentence holds it."""

    text: str


@dataclass(frozen=True)
class Composed:
    text: str
    short: str = ""





@dataclass(frozen=True)
class ExtractiveOptions:
    """How the extractive answerer weighs a candidate sentence (chosen on the dev sets; see
    docs/answers.md): ``meaning_weight`` x embedding similarity to the question plus
    ``words_weight`` x the share of the question's (IDF-weighted) words it has, plus a small
    prior for better-ranked passages; below ``min_score`` it abstains."""

    min_score: float = 0.5
    meaning_weight: float = 0.7
    words_weight: float = 0.3
    focus_weight: float = 0.1
    rank_prior: float = 0.05
    max_sentences: int = 2
    runner_up: float = 0.85  # a second sentence is added only when this close to the best
    max_judged: int = 24  # sentences put through the gate, best by words first
    max_embedded: int | None = 8  # of those that pass, embedded (the main cost); None: all


class ExtractiveAnswerer:
    """Picks the retrieved sentence that answers the question, verbatim.

    Only sentences the answerability gate accepts are candidates (prose that keeps to the
    question's names, numbers and years and holds the kind of thing asked for); of those,
    the closest to the question in words and meaning is the answer. Offline and instant;
    the answer is only as fluent as the articles, but it cannot invent.
    """

    name = "extractive"
    streams = False

    def __init__(self, embedder: Embedder, gate: AnswerGate,
                 options: ExtractiveOptions | None = None, cache_size: int = 4096) -> None:
        self._embedder = embedder
        self.gate = gate
        self.options = options or ExtractiveOptions()
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()  # LRU: passages recur
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str | ShortAnswer]:
        composed = self.compose(question, passages)
        if composed.short:
            yield ShortAnswer(composed.short)
        if composed.text:
            yield composed.text

    def compose(self, question: str, passages: Sequence[RetrievedPassage]) -> Composed:
        """The chosen sentences with their markers (empty when nothing answers the
        question) and the short answer they were chosen for."""
        frame = self.gate.frame(question)
        candidates = self._candidates(question, passages)
        if not candidates:
            return Composed("")
        scores = self._score(question, candidates, [p.title for p in passages])
        best = int(np.argmax(scores))
        o = self.options
        if scores[best] < o.min_score:
            return Composed("")
        best = self._agreed(frame, candidates, scores, best, passages)
        short = self._short(frame, candidates[best])
        chosen = [candidates[best]]
        for i in np.argsort(-scores):
            c = candidates[i]
            if len(chosen) == o.max_sentences or scores[i] < o.runner_up * scores[best]:
                break
            if short and flat(short) not in flat(c.text):
                continue  # a second sentence must be about the same answer
            if not any(x.passage == c.passage and x.start < c.end and c.start < x.end
                       for x in chosen):  # a widened sentence may overlap another
                chosen.append(c)
        chosen.sort(key=lambda c: (c.passage, c.start))
        return Composed(" ".join(f"{strip_markers(c.text)} [{c.passage + 1}]"
                                 for c in chosen), short)

    def _agreed(self, frame: Frame, candidates: list[_Candidate],
                scores: np.typing.NDArray[np.float64], best: int,
                passages: Sequence[RetrievedPassage]) -> int:
        """Of the candidates scoring close to the best (within ``runner_up``), the one whose
        short answer the most retrieved articles name: the week's story is told by several
        of them, a same-topic aside by one. Only for names: a number or a date ("three",
        "2022") recurs by chance."""
        if not frame.wants or frame.wants <= QUANTITY | WHEN:
            return best
        close = [i for i in range(len(candidates))
                 if scores[i] >= self.options.runner_up * scores[best]]
        if len(close) < 2:
            return best
        articles: dict[str, list[str]] = {}
        for passage in passages:
            articles.setdefault(passage.article_id, []).append(flat(passage.text))
        texts = [f" {' '.join(parts)} " for parts in articles.values()]

        def support(i: int) -> int:
            short = flat(self._short(frame, candidates[i]))
            return sum(f" {short} " in text for text in texts) if short else 0

        return max(close, key=lambda i: (support(i), scores[i]))

    def _short(self, frame: Frame, candidate: _Candidate) -> str:
        """The short answer the chosen sentence gives (as the gate picks it), or ''."""
        span = self.gate.answer_span(frame, candidate.text)
        return candidate.text[span[0]:span[1]] if span else ""

    def _candidates(self, question: str,
                    passages: Sequence[RetrievedPassage]) -> list[_Candidate]:
        """Sentences of the passages that the gate accepts as answers, judged best by
        words first (judging parses a sentence; most never need it)."""
        frame = self.gate.frame(question)
        index = {id(p): i for i, p in enumerate(passages)}
        closest = closest_sentences(frame, passages)[:self.options.max_judged]
        screened = [(p, a, b, spans) for p, a, b, spans in closest
                    if self.gate.screen(frame, p, a, b, spans) is None]
        if frame.wants:  # the sentences left are parsed in one batch, not one by one
            self.gate.language.parse_many([p.text[a:b] for p, a, b, _ in screened])
        accepted: list[_Candidate] = []
        for passage, start, end, spans in screened:
            c = _Candidate(index[id(passage)], start, end, passage.text[start:end])
            if not self.gate.judge(frame, passage, c.start, c.end, spans).ok:
                continue
            k = next(n for n, (a, _) in enumerate(spans) if a == c.start)
            if k and _leans_on_previous(c.text):  # "But it collapsed..." needs what "it" is
                start = spans[k - 1][0]
                c = _Candidate(c.passage, start, c.end, passage.text[start:c.end])
            accepted.append(c)
        return accepted

    def _score(self, question: str, candidates: list[_Candidate],
               titles: Sequence[str] = ()) -> np.typing.NDArray[np.float64]:
        """Embedding similarity plus IDF-weighted overlap of the question's words.

        Candidates beyond ``max_embedded`` by overlap and rank get no similarity (-1), so they
        are never chosen.
        """
        o = self.options
        f = self.features(question, candidates, titles)
        return np.asarray(o.meaning_weight * f["cosine"] + o.words_weight * f["lexical"]
                          + o.focus_weight * f["focus"] + f["prior"], dtype=np.float64)

    def features(self, question: str, candidates: list[_Candidate],
                 titles: Sequence[str] = ()) -> dict[str, np.typing.NDArray[np.float64]]:
        """What a candidate is judged by: ``cosine`` (meaning, -1 when not embedded),
        ``lexical`` (IDF-weighted share of the question's words), ``focus`` (share of the
        question's words that are neither names nor numbers it must keep to: what it says
        happened), ``prior`` (better-ranked passages first)."""
        o = self.options
        frame = self.gate.frame(question)
        q_terms = {base_form(t) for t in content_terms(question)}
        # a sentence is read with its article's title: "no deaths had been reported" is
        # about the Dunmore floods when the article is
        bags = [{base_form(t) for t in content_terms(
            f"{titles[c.passage] if titles else ''} {c.text}")} for c in candidates]
        df = Counter(t for bag in bags for t in bag if t in q_terms)
        weight = {t: math.log(1 + len(bags) / (1 + df[t])) for t in q_terms}
        total = sum(weight.values()) or 1.0
        lexical = np.array([sum(weight[t] for t in q_terms & bag) / total for bag in bags])
        focus_terms = {base_form(t) for t in focus(frame)}
        focused = np.array([len(focus_terms & bag) / len(focus_terms) if focus_terms else 1.0
                            for bag in bags])
        prior = np.array([o.rank_prior / (1 + c.passage) for c in candidates])
        keep = np.argsort(-(o.words_weight * lexical + prior), kind="stable")[:o.max_embedded]
        cosine = np.full(len(candidates), -1.0)
        q = self._embedder.embed_query(question)
        cosine[keep] = self._sentence_vectors([candidates[i].text for i in keep]) @ q
        return {"cosine": cosine, "lexical": lexical, "focus": focused, "prior": prior}

    def _sentence_vectors(self, texts: list[str]) -> Vectors:
        """Vectors of sentences, each distinct text embedded once and remembered.

        The server answers from several threads: the lock guards the LRU, not the model call.
        """
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            known.update(zip(todo, self._embedder.embed(todo), strict=True))
        with self._lock:
            for t in dict.fromkeys(texts):
                self._vectors[t] = known[t]
                self._vectors.move_to_end(t)
            while len(self._vectors) > self._cache_size:
                self._vectors.popitem(last=False)
        return np.stack([known[t] for t in texts])
