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
from index.passages import sentence_spans
from rag.result import RetrievedPassage
from rag.terms import content_terms, key_terms, stem, strip_markers, words


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a chat."""

    role: str  # "user" or "assistant"
    content: str


class Answerer(Protocol):
    """Streams answer text; markers [n] refer to ``passages[n - 1]``."""

    @property
    def name(self) -> str: ...

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str]: ...


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


class ExtractiveAnswerer:
    """Picks the few retrieved sentences that best answer the question, verbatim.

    Offline and instant; the answer is only as fluent as the articles, but it cannot invent.
    """

    name = "extractive"

    def __init__(self, embedder: Embedder, max_sentences: int = 2,
                 min_similarity: float = 0.35, key_coverage: float = 0.5,
                 max_embedded: int | None = 8, cache_size: int = 4096) -> None:
        self._embedder = embedder
        self.max_sentences = max_sentences
        self.min_similarity = min_similarity
        self.key_coverage = key_coverage
        # Embedding sentences is most of an answer's cost (~1 ms of CPU per token here), so
        # only the best candidates by word overlap are embedded; None embeds them all.
        self.max_embedded = max_embedded
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()  # LRU: passages recur
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def stream(self, question: str, passages: Sequence[RetrievedPassage],
               history: Sequence[Turn] = ()) -> Iterator[str]:
        text = self.compose(question, passages)
        if text:
            yield text

    def compose(self, question: str, passages: Sequence[RetrievedPassage]) -> str:
        """The chosen sentences with their markers, or '' when nothing answers the question."""
        candidates = self._candidates(question, passages)
        if not candidates:
            return ""
        scores = self._score(question, candidates)
        best = float(scores.max())
        if best < self.min_similarity:
            return ""
        chosen: list[_Candidate] = []
        for i in np.argsort(-scores):
            c = candidates[i]
            if len(chosen) == self.max_sentences or scores[i] < 0.85 * best:
                break
            if not any(o.passage == c.passage and o.start < c.end and c.start < o.end
                       for o in chosen):  # a widened sentence may overlap another
                chosen.append(c)
        chosen.sort(key=lambda c: (c.passage, c.start))
        return " ".join(f"{strip_markers(c.text)} [{c.passage + 1}]" for c in chosen)

    def _candidates(self, question: str,
                    passages: Sequence[RetrievedPassage]) -> list[_Candidate]:
        """Sentences of passages that mention the question's names and numbers."""
        keys = key_terms(question)
        seen: set[tuple[str, int]] = set()
        found: list[_Candidate] = []
        for i, passage in enumerate(passages):
            if keys:
                have = {stem(w) for w in words(passage.text)}
                if len(keys & have) / len(keys) < self.key_coverage:
                    continue
            spans = sentence_spans(passage.text)
            for k, (start, end) in enumerate(spans):
                sentence = passage.text[start:end]
                where = (passage.article_id, passage.start + start)
                if where in seen or len(sentence.split()) < 4 or sentence == passage.title:
                    continue  # overlapping passages repeat sentences; a headline answers nothing
                seen.add(where)
                if k and _leans_on_previous(sentence):
                    start = spans[k - 1][0]  # "But it collapsed..." needs what "it" is
                found.append(_Candidate(i, start, end, passage.text[start:end]))
        return found

    def _score(self, question: str, candidates: list[_Candidate]) -> np.typing.NDArray[np.float64]:
        """Embedding similarity plus IDF-weighted overlap of the question's words.

        Candidates beyond ``max_embedded`` by overlap and rank get no similarity (-1), so they
        are never chosen.
        """
        q_terms = set(content_terms(question))
        bags = [set(content_terms(c.text)) for c in candidates]
        df = Counter(t for bag in bags for t in bag if t in q_terms)
        weight = {t: math.log(1 + len(bags) / (1 + df[t])) for t in q_terms}
        total = sum(weight.values()) or 1.0
        lexical = np.array([sum(weight[t] for t in q_terms & bag) / total for bag in bags])
        rank_prior = np.array([0.05 / (1 + c.passage) for c in candidates])
        words_score = 0.3 * lexical + rank_prior
        keep = np.argsort(-words_score, kind="stable")[:self.max_embedded]
        cosine = np.full(len(candidates), -1.0)
        q = self._embedder.embed_query(question)
        cosine[keep] = self._sentence_vectors([candidates[i].text for i in keep]) @ q
        return np.asarray(0.7 * cosine + words_score, dtype=np.float64)

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
