"""The one citation check every answerer's text goes through.

A sentence keeps a citation [n] only when passage n supports it: the names, numbers and
quotes in the sentence appear in the passage, and its words (or, for a paraphrase, its
meaning by embedding similarity) match a sentence of the passage. A sentence left without a
supported citation is dropped; when nothing is left, the answer abstains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.embedder import Embedder
from index.passages import sentence_spans
from rag.result import NOT_COVERED, Answer, Citation, RetrievedPassage
from rag.terms import content_terms, key_terms, stem, strip_markers, words

_MARKERS = re.compile(r"\[(\d{1,3})\]")
_LEADING = re.compile(r"^(?:\s*\[\d{1,3}\])+")
_QUOTE = re.compile(r"[“\"]([^”\"]{12,})[”\"]")
_TOKEN = re.compile(r"\[\d{1,3}\]|[^\W_]+")


@dataclass(frozen=True)
class Support:
    """How well one passage supports one sentence."""

    supported: bool
    lexical: float
    semantic: float
    best_sentence: tuple[int, int] | None  # passage-relative span of the closest sentence
    reason: str = ""


@dataclass(frozen=True)
class CheckThresholds:
    """Lexical recall alone suffices at ``lexical``; a paraphrase needs both floors."""

    lexical: float = 0.75
    lexical_floor: float = 0.4
    semantic: float = 0.62


@dataclass
class _Sentence:
    text: str
    markers: list[int]
    kept: list[tuple[int, Support]] = field(default_factory=list)


class CitationChecker:
    """Checks sentences against passages; shared by the extractive and language-model answerers."""

    def __init__(self, embedder: Embedder, thresholds: CheckThresholds | None = None) -> None:
        self._embedder = embedder
        self.thresholds = thresholds or CheckThresholds()

    def support(self, sentence: str, passage: str) -> Support:
        """Does ``passage`` support ``sentence``? Names, numbers and quotes must all be there."""
        claim = strip_markers(sentence)
        passage_terms = {stem(w) for w in words(passage)}
        missing = key_terms(claim) - passage_terms
        if missing:
            return Support(False, 0.0, 0.0, None, f"passage lacks {sorted(missing)}")
        flat_passage = _flat(passage)
        for quote in _QUOTE.findall(claim):
            if len(quote.split()) >= 4 and _flat(quote) not in flat_passage:
                return Support(False, 0.0, 0.0, None, "quote not in passage")
        terms = content_terms(claim)
        if not terms:
            return Support(False, 0.0, 0.0, None, "sentence states nothing checkable")
        lexical = sum(t in passage_terms for t in terms) / len(terms)
        spans = sentence_spans(passage)
        t = self.thresholds
        if lexical >= t.lexical:
            best = max(spans, key=lambda s: _overlap(terms, passage[s[0]:s[1]]), default=None)
            return Support(True, lexical, 1.0, best)
        if lexical < t.lexical_floor or not spans:
            return Support(False, lexical, 0.0, None, "too few of its words are in the passage")
        vectors = self._embedder.embed([claim] + [passage[a:b] for a, b in spans])
        sims = vectors[1:] @ vectors[0]
        i = int(np.argmax(sims))
        semantic = float(sims[i])
        ok = semantic >= t.semantic
        return Support(ok, lexical, semantic, spans[i], "" if ok else "meaning differs")

    def check(self, question: str, text: str, passages: Sequence[RetrievedPassage],
              answerer: str = "") -> Answer:
        """Turn an answerer's raw text (markers [n] index ``passages`` from 1) into an Answer."""
        sentences = _parse(_drop_copied_markers(text, passages))
        removed = 0
        for sentence in sentences:
            candidates = sentence.markers or list(range(1, len(passages) + 1))
            for n in dict.fromkeys(candidates):
                if not 1 <= n <= len(passages):
                    continue
                verdict = self.support(sentence.text, passages[n - 1].text)
                if verdict.supported:
                    sentence.kept.append((n, verdict))
                    if not sentence.markers:
                        break  # an uncited sentence needs one supporting passage, not all
            if not sentence.kept:
                removed += 1
        kept = [s for s in sentences if s.kept]
        if not kept:
            return Answer(question=question, answer=NOT_COVERED, abstained=True,
                          passages=list(passages), answerer=answerer, removed_sentences=removed)
        return _assemble(question, kept, passages, answerer, removed)


def _assemble(question: str, kept: list[_Sentence], passages: Sequence[RetrievedPassage],
              answerer: str, removed: int) -> Answer:
    """Renumber citations by first use and join the sentences with their markers."""
    numbering: dict[int, int] = {}
    highlights: dict[int, list[tuple[int, int]]] = {}
    parts = []
    for sentence in kept:
        markers = []
        for n, verdict in sentence.kept:
            marker = numbering.setdefault(n, len(numbering) + 1)
            markers.append(f"[{marker}]")
            if verdict.best_sentence:
                offset = passages[n - 1].start
                span = (offset + verdict.best_sentence[0], offset + verdict.best_sentence[1])
                if span not in highlights.setdefault(n, []):
                    highlights[n].append(span)
        parts.append(f"{sentence.text} {''.join(markers)}")
    citations = [Citation(**passages[n - 1].model_dump(), marker=m,
                          highlights=highlights.get(n, [])) for n, m in numbering.items()]
    return Answer(question=question, answer=" ".join(parts), abstained=False,
                  citations=citations, passages=list(passages), answerer=answerer,
                  removed_sentences=removed)


def _drop_copied_markers(text: str, passages: Sequence[RetrievedPassage]) -> str:
    """Remove [n] markers the answer copied from article text along with the words before them.

    An article may itself contain "[2]" (a footnote, or planted text); a model quoting it
    would otherwise make that a citation of passage 2. A marker counts as copied when it and
    the three or more words before it appear in that order in a retrieved passage.
    """
    streams = [" " + " ".join(t.lower() for t in _TOKEN.findall(p.text)) + " "
               for p in passages if "[" in p.text]
    if not streams:
        return text
    tokens = list(_TOKEN.finditer(text))
    kept, last = [], 0
    for i, token in enumerate(tokens):
        if not token.group().startswith("["):
            continue
        window = tokens[max(0, i - 5):i + 1]
        if sum(not t.group().startswith("[") for t in window) < 3:
            continue
        needle = " " + " ".join(t.group().lower() for t in window) + " "
        if any(needle in stream for stream in streams):
            kept.append(text[last:token.start()])
            last = token.end()
    return "".join(kept) + text[last:]


def _parse(text: str) -> list[_Sentence]:
    """Split answer text into sentences, each with the markers that follow or sit inside it."""
    sentences: list[_Sentence] = []
    for start, end in sentence_spans(text):
        chunk = text[start:end]
        lead = _LEADING.match(chunk)
        if lead and sentences:  # "Claim. [1] Next claim." puts [1] after the period
            sentences[-1].markers.extend(int(m) for m in _MARKERS.findall(lead.group()))
            chunk = chunk[lead.end():]
        markers = [int(m) for m in _MARKERS.findall(chunk)]
        clean = strip_markers(_MARKERS.sub("", chunk)).strip()
        clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
        if not re.search(r"\w", clean):
            if sentences and markers:  # markers standing alone belong to the sentence before
                sentences[-1].markers.extend(markers)
            continue
        sentences.append(_Sentence(clean, markers))
    return sentences


def _flat(text: str) -> str:
    return " ".join(w.lower() for w in words(text))


def _overlap(terms: list[str], sentence: str) -> float:
    have = {stem(w) for w in words(sentence)}
    return sum(t in have for t in terms)
