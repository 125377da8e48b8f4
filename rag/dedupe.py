"""Collapse near-duplicate passages: the same wire story runs on several sites.

Two passages are duplicates when their 5-word shingles mostly coincide (Jaccard overlap of
the smaller side). The best-ranked copy stays; the others' sources are remembered in its
``also_reported_by`` so the user still sees who ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def collapse_duplicates(passages: Sequence[RetrievedPassage],
                        threshold: float = 0.6) -> list[RetrievedPassage]:
    """Keep the first (best-ranked) of each group of near-duplicates, in order.

    Passages of the same article are never merged (overlapping windows of one article share
    text by design). A threshold above 1 turns collapsing off.
    """
    if threshold > 1:
        return list(passages)
    kept: list[tuple[RetrievedPassage, frozenset[int], list[str]]] = []
    seen: set[int] = set()  # every kept shingle: most candidates share none, one C call
    for passage in passages:
        grams = shingles(passage.text)
        twin = None if seen.isdisjoint(grams) else next(
            (entry for entry in kept if entry[0].article_id != passage.article_id
             and overlap(grams, entry[1]) >= threshold), None)
        if twin is None:
            seen.update(grams)
            kept.append((passage, grams, list(passage.also_reported_by)))
            continue
        for source in [passage.source, *passage.also_reported_by]:
            if source and source != twin[0].source and source not in twin[2]:
                twin[2].append(source)
    return [p.model_copy(update={"also_reported_by": also}) if also != p.also_reported_by
            else p for p, _, also in kept]

