"""Collapse near-duplicate passages: the same wire story runs on several sites.

Two passages are duplicates when their 5-word shingles mostly coincide (Jaccard overlap of
the smaller side). The best-ranked copy stays; the others' sources are remembered in its
``also_reported_by`` so the user still sees who ran it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from rag.result import RetrievedPassage
from rag.terms import words

_SHINGLE = 5


@lru_cache(maxsize=8192)  # the same passages come back query after query: shingle them once
def shingles(text: str) -> frozenset[int]:
    """Hashes of overlapping word 5-grams, lower-cased; a short text is one shingle."""
    tokens = words(text.lower())
    if len(tokens) <= _SHINGLE:
        return frozenset([hash(tuple(tokens))]) if tokens else frozenset()
    return frozenset(hash(tuple(tokens[i:i + _SHINGLE]))
                     for i in range(len(tokens) - _SHINGLE + 1))


def overlap(a: frozenset[int], b: frozenset[int]) -> float:
    """Shared shingles over the smaller set: a passage quoted whole inside a longer one is 1.0."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


class Distinct:
    """Near-duplicate collapsing, one passage at a time, best-ranked first.

    Passages of the same article are never merged (overlapping windows of one article share
    text by design). A threshold above 1 turns collapsing off. Fed one by one, a caller can
    stop as soon as it has enough distinct passages, instead of comparing every candidate
    with every other (the cost grows with the square of the candidates).
    """

    def __init__(self, threshold: float = 0.6) -> None:
        self.threshold = threshold
        self._kept: list[tuple[RetrievedPassage, frozenset[int], list[str]]] = []
        self._seen: set[int] = set()  # every kept shingle: most candidates share none

    def add(self, passage: RetrievedPassage) -> bool:
        """True when ``passage`` is new; False when it duplicates a better-ranked one (its
        sources are then remembered in that one's ``also_reported_by``)."""
        if self.threshold > 1:
            self._kept.append((passage, frozenset(), list(passage.also_reported_by)))
            return True
        grams = shingles(passage.text)
        twin = None if self._seen.isdisjoint(grams) else next(
            (entry for entry in self._kept if entry[0].article_id != passage.article_id
             and overlap(grams, entry[1]) >= self.threshold), None)
        if twin is None:
            self._seen.update(grams)
            self._kept.append((passage, grams, list(passage.also_reported_by)))
            return True
        for source in [passage.source, *passage.also_reported_by]:
            if source and source != twin[0].source and source not in twin[2]:
                twin[2].append(source)
        return False

    def kept(self) -> list[RetrievedPassage]:
        """The distinct passages so far, in order, each with the sources of its duplicates."""
        return [p.model_copy(update={"also_reported_by": also}) if also != p.also_reported_by
                else p for p, _, also in self._kept]


def collapse_duplicates(passages: Iterable[RetrievedPassage],
                        threshold: float = 0.6) -> list[RetrievedPassage]:
    """Keep the first (best-ranked) of each group of near-duplicates, in order."""
    distinct = Distinct(threshold)
    for passage in passages:
        distinct.add(passage)
    return distinct.kept()
