"""The one citation check every answerer's text goes through.

A sentence keeps a citation [n] only when passage n supports it: the names, numbers and
quotes in the sentence appear together in a few consecutive sentences of the passage, and
its words (or, for a paraphrase, its meaning by embedding similarity) match there. A
sentence left without a supported citation is dropped; when nothing is left, the answer
abstains.
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
# Template slots a model left unfilled: "[n]", "[NAME]", "{date}", "<number>", "XX".
_PLACEHOLDER = re.compile(r"\[(?!\d{1,3}\])[^\]\n]{1,20}\]|\{[^}\n]{1,20}\}|"
                          r"<[A-Za-z_ ]{1,20}>|\bX{2,}\b")

NO_SUPPORTED_SENTENCE = "no sentence of the passages supports an answer"


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
    """Word recall ``lexical`` needs meaning similarity ``lexical_semantic``; a paraphrase
    (recall between ``lexical_floor`` and ``lexical``) needs ``semantic``.

    Both are measured on the best run of ``window_sentences`` consecutive passage sentences.
    """

    lexical: float = 0.75
    lexical_floor: float = 0.4
    semantic: float = 0.62
    lexical_semantic: float = 0.6
    window_sentences: int = 3


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

    def support(self, sentence: str, passage: str, title: str = "") -> Support:
        """Does ``passage`` support ``sentence``? Names, numbers and quotes must all be there,
        together in a few consecutive sentences, and the words and meaning must match there.

        Names in the article's ``title`` (its topic, e.g. the country) may stand anywhere.
        """
        claim = strip_markers(sentence)
        if _PLACEHOLDER.search(claim):  # "lasted for [n] days": a template, not a fact
            return Support(False, 0.0, 0.0, None, "a placeholder, not a fact")
        topic = {stem(w) for w in words(title)}
        keys = key_terms(claim) - topic
        missing = keys - {stem(w) for w in words(passage)}
        if missing:
            return Support(False, 0.0, 0.0, None, f"passage lacks {sorted(missing)}")
        quotes = [q for q in _QUOTE.findall(claim) if len(q.split()) >= 4]
        if any(_flat(q) not in _flat(passage) for q in quotes):
            return Support(False, 0.0, 0.0, None, "quote not in passage")
        terms = content_terms(claim)
        if not terms:
            return Support(False, 0.0, 0.0, None, "sentence states nothing checkable")
        spans = sentence_spans(passage) or [(0, len(passage))]
        if quotes and not _attributed(claim, quotes, passage, spans):
            return Support(False, 0.0, 0.0, None, "the quote is someone else's")
        if not quotes and not _reported_by_speaker(claim, passage, spans):
            return Support(False, 0.0, 0.0, None, "the words are someone else's")
        quoted = _verbatim(claim, passage, spans)
        if quoted is not None:  # the passage says exactly this: no need to weigh meaning
            return Support(True, 1.0, 1.0, quoted)
        window = self._best_window(terms, keys, quotes, passage, spans)
        if window is None:
            # e.g. a quote attributed to someone the passage names only elsewhere
            return Support(False, 0.0, 0.0, None,
                           "its names, numbers and quotes are not stated together")
        lexical, local = window
        t = self.thresholds
        if lexical < t.lexical_floor:
            return Support(False, lexical, 0.0, None, "too few of its words are in the passage")
        # Matching words are not enough: a small model recombines the passage's own words
        # into claims it never makes ("X called for a ceasefire but Y refused").
        texts = [passage[a:b] for a, b in local]
        whole = passage[local[0][0]:local[-1][1]]
        vectors = self._embedder.embed([claim, *texts, whole])
        sims = vectors[1:] @ vectors[0]
        semantic = float(sims.max())
        i = int(np.argmax(sims[:-1]))
        if lexical >= t.lexical and semantic >= t.lexical_semantic:
            best = max(local, key=lambda s: _overlap(terms, passage[s[0]:s[1]]))
            return Support(True, lexical, semantic, best)
        ok = semantic >= t.semantic
        return Support(ok, lexical, semantic, local[i], "" if ok else "meaning differs")

    def _best_window(self, terms: list[str], keys: set[str], quotes: list[str], passage: str,
                     spans: list[tuple[int, int]]
                     ) -> tuple[float, list[tuple[int, int]]] | None:
        """The run of at most ``window_sentences`` sentences holding every name, number and
        quote of the claim with the most of its words, as (word recall, its sentence spans).

        Checking locally, not against the whole passage, stops a sentence from stitching
        together facts (a quote and a speaker, a number and an event) that the passage
        states apart.
        """
        size = max(1, self.thresholds.window_sentences)
        best: tuple[float, list[tuple[int, int]]] | None = None
        for i in range(max(1, len(spans) - size + 1)):
            local = spans[i:i + size]
            text = passage[local[0][0]:local[-1][1]]
            have = {stem(w) for w in words(text)}
            if keys - have or any(_flat(q) not in _flat(text) for q in quotes):
                continue
            lexical = sum(term in have for term in terms) / len(terms)
            if best is None or lexical > best[0]:
                best = (lexical, local)
        return best

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
                passage = passages[n - 1]
                verdict = self.support(sentence.text, passage.text, passage.title)
                if verdict.supported:
                    sentence.kept.append((n, verdict))
                    if not sentence.markers:
                        break  # an uncited sentence needs one supporting passage, not all
            if not sentence.kept:
                removed += 1
        kept = [s for s in sentences if s.kept]
        if not kept:
            return Answer(question=question, answer=NOT_COVERED, abstained=True,
                          passages=list(passages), answerer=answerer, removed_sentences=removed,
                          abstain_reason=NO_SUPPORTED_SENTENCE)
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


def _attributed(claim: str, quotes: list[str], passage: str,
                spans: list[tuple[int, int]]) -> bool:
    """Does the passage give each quote to someone the claim names as its speaker?

    The claim's names outside its quotes must be in the sentence that holds the quote (or
    the one before it, for "X said:" and a quote after): the passage's words put in the
    mouth of another person the passage mentions nearby are not supported.
    """
    speakers = key_terms(_QUOTE.sub(" ", claim)) - key_terms(" ".join(quotes))
    if not speakers:
        return True
    flats = [_flat(passage[a:b]) for a, b in spans]
    for quote in quotes:
        target = _flat(quote)
        for i, flat in enumerate(flats):
            if target[:60] in flat or (i + 1 < len(flats) and target[:60] in
                                       f"{flat} {flats[i + 1]}"):
                near = passage[spans[max(0, i - 1)][0]:spans[i][1]]
                if not speakers & {stem(w) for w in words(near)}:
                    return False
                break
    return True


_SAID = re.compile(r"\b(said|says|told|tells|added|stated|warned|argued|claimed)\b")


def _reported_by_speaker(claim: str, passage: str, spans: list[tuple[int, int]]) -> bool:
    """'X said <words>': the passage sentence that holds those words (or the one before it)
    must name X; the passage's words put in the mouth of someone else are not supported."""
    said = _SAID.search(claim)
    if said is None:
        return True
    speakers = key_terms(claim[:said.start()])
    reported = {stem(w) for w in words(claim[said.end():])} - _FUNCTION_STEMS
    if not speakers or len(reported) < 4:
        return True
    overlap = [len(reported & {stem(w) for w in words(passage[a:b])}) for a, b in spans]
    i = max(range(len(spans)), key=lambda k: overlap[k])
    near = passage[spans[max(0, i - 1)][0]:spans[i][1]]
    return bool(speakers & {stem(w) for w in words(near)})


_FUNCTION_STEMS = frozenset(stem(w) for w in "the a an of to in on and that would will "
                            "be is was it".split())


def _verbatim(claim: str, passage: str,
              spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The span of 1-3 whole consecutive passage sentences that read exactly as the claim
    (ignoring case, spacing and punctuation), or None."""
    target = _flat(claim)
    flats = [_flat(passage[a:b]) for a, b in spans]
    for i in range(len(spans)):
        joined = ""
        for j in range(i, min(i + 3, len(spans))):
            joined = f"{joined} {flats[j]}".strip()
            if joined == target:
                return spans[i][0], spans[j][1]
            if len(joined) >= len(target):
                break
    return None


def _flat(text: str) -> str:
    return " ".join(w.lower() for w in words(text))


def _overlap(terms: list[str], sentence: str) -> float:
    have = {stem(w) for w in words(sentence)}
    return sum(t in have for t in terms)
