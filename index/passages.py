"""Article text to passages on sentence boundaries, each with its exact character span.

Our own splitter rather than llama-index's SentenceSplitter: that one recovers offsets by
searching for the chunk text and loses them once it normalises whitespace, and exact spans
are what the UI highlights and citations point at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from index.types import Article, Passage

# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace, or at a line break.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*(?=\s+)|\n")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "gen", "gov", "sen", "rep", "lt", "col",
    "sgt", "capt", "u.s", "u.k", "u.n", "e.g", "i.e", "vs", "etc", "inc", "co", "corp", "ltd",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "no",
    "fig", "mt", "ft", "approx", "dept", "est", "rev", "hon",
}


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text[start:end]``, whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cursor = start
    for match in _BOUNDARY.finditer(text, start, end):
        cut = match.end()
        if match.group() != "\n" and _is_abbreviation(text, match.start()):
            continue
        if match.group() == "\n" and _wrapped(text, match.start(), end):
            continue
        spans.extend(_trimmed(text, cursor, cut))
        cursor = cut
    spans.extend(_trimmed(text, cursor, end))
    return spans


def _wrapped(text: str, newline: int, end: int) -> bool:
    """Is this line break a hard wrap inside a sentence ("will be repainted\nteal and
    silver", "will cost\n48,000 euros"): the line before ends in no sentence punctuation and
    the next one goes on in lower case, or with a number or a currency sign. (A capital
    could open a heading's next line as well as a name: such breaks still end sentences.)"""
    last = newline - 1
    while last >= 0 and text[last] in " \t":
        last -= 1
    after = newline + 1
    while after < end and text[after] in " \t":
        after += 1
    return (last >= 0 and text[last] not in ".!?:;\"”’)\n" and after < end
            and (text[after].islower() or text[after].isdigit() or text[after] in "$€£¥"))


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period before ``dot`` ends 'Mr.' or 'U.S.' or an initial like 'J.'."""
    word_start = dot
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].rstrip(".!?").lstrip("(\"'“‘").lower()
    if not word or text[dot - 1] != ".":
        return False
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


# Characters a passage may hold per word allowed: a "word" of 5 MB (no spaces) must not
# become one passage that every matching question gets back.
CHARS_PER_WORD = 12


def split_article(article: Article, max_words: int = 200, overlap_words: int = 40) -> list[Passage]:
    """Pack whole sentences into passages of at most ``max_words`` (and ``CHARS_PER_WORD`` x
    that in characters), repeating up to ``overlap_words`` of trailing sentences at the
    start of the next passage. A paged article (a PDF) is split page by page, so every
    passage lies on one page and its citation can name it."""
    ranges = article.pages or ((0, len(article.text)),)
    passages: list[Passage] = []
    for page, (start, end) in enumerate(ranges, start=1):
        for a, b in _pack(article.text, start, end, max_words, overlap_words):
            passages.append(Passage(article.id, len(passages), article.text[a:b], a, b,
                                    page if article.pages else None))
    return passages


def _pack(text: str, start: int, end: int, max_words: int,
          overlap_words: int) -> list[tuple[int, int]]:
    """The (start, end) spans of the passages of ``text[start:end]``."""
    max_chars = max_words * CHARS_PER_WORD
    sentences = [s for span in sentence_spans(text, start, end)
                 for s in _cap(text, span, max_words) for s in _cut(text, s, max_chars)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(sentences):
        j, words = i, 0
        while j < len(sentences):
            n = _words(text, sentences[j])
            too_long = sentences[j][1] - sentences[i][0] > max_chars
            if words and (words + n > max_words or too_long):
                break
            words += n
            j += 1
        spans.append((sentences[i][0], sentences[j - 1][1]))
        if j >= len(sentences):
            break
        # Step back over trailing sentences worth at most overlap_words, but always advance.
        back, carried = j, 0
        while back - 1 > i and carried + _words(text, sentences[back - 1]) <= overlap_words:
            back -= 1
            carried += _words(text, sentences[back])
        i = back
    return spans


def _words(text: str, span: tuple[int, int]) -> int:
    return len(text[span[0]:span[1]].split())


def _cap(text: str, span: tuple[int, int], max_words: int) -> Iterator[tuple[int, int]]:
    """Cut a run-on 'sentence' longer than max_words (tables, lists) at word boundaries."""
    if _words(text, span) <= max_words:
        yield span
        return
    starts = [m.start() + span[0] for m in re.finditer(r"\S+", text[span[0]:span[1]])]
    for k in range(0, len(starts), max_words):
        piece_end = starts[k + max_words] if k + max_words < len(starts) else span[1]
        yield from _trimmed(text, starts[k], piece_end)


def _cut(text: str, span: tuple[int, int], max_chars: int) -> Iterator[tuple[int, int]]:
    """Cut a span longer than ``max_chars`` into pieces of at most that many characters,
    at a space where there is one."""
    start, end = span
    while end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield from _trimmed(text, start, cut)
        start = cut
    yield from _trimmed(text, start, end)
