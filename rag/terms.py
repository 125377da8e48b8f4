"""Word-level views of text used to compare questions, sentences and passages."""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_MARKER = re.compile(r"\s*\[\d{1,3}\](?:\s*\[\d{1,3}\])*")
_NUMBER = re.compile(r"\d")
_POSSESSIVE = re.compile(r"['’]s$")
_STEMMER = Stemmer.Stemmer("english")

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
said says say according told week weeks recently recent year years last whose many much may
might must mr mrs ms
""".split())


def words(text: str) -> list[str]:
    return _WORD.findall(text)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    word = word.removesuffix("'s")
    return str(_STEMMER.stemWord(word))


def content_terms(text: str) -> list[str]:
    """Stemmed words that carry meaning (no stopwords), in order, repeats kept."""
    return [stem(w) for w in words(text) if (w.lower() not in STOPWORDS and len(w) > 1)
            or _NUMBER.search(w)]


def key_terms(text: str) -> set[str]:
    """Names and numbers: words that must appear in a passage for it to be about the same thing.

    A capitalised word counts unless it opens a sentence; an opening word still counts when it
    looks like a name: possessive ("China's", not "It's"), an acronym, or followed by another
    capital.
    """
    keys: set[str] = set()
    tokens = list(_WORD.finditer(text))
    for i, match in enumerate(tokens):
        word = match.group()
        if _NUMBER.search(word):
            keys.add(stem(word))
            continue
        if not word[0].isupper() or word.lower() in STOPWORDS:
            continue
        before = text[tokens[i - 1].end():match.start()] if i else ""
        opens = i == 0 or any(ch in before for ch in ".?!:\n“\"")
        following = tokens[i + 1].group() if i + 1 < len(tokens) else ""
        base = word[:-2].lower()
        possessive = bool(_POSSESSIVE.search(word)) and base not in STOPWORDS and base != "let"
        named = (possessive or (word.isupper() and len(word) > 1)
                 or (following[:1].isupper() and following.lower() not in STOPWORDS))
        if not opens or named:
            keys.add(stem(word))
    return keys


_ACRONYM_DOTS = re.compile(r"\b([A-Z])\.(?=[A-Z]\b\.?)")  # "U.S." is "US"


def stem_set(text: str) -> frozenset[str]:
    """Every word's stem, acronyms with dots read as without ("U.S." as "US")."""
    return frozenset(stem(w) for w in words(_ACRONYM_DOTS.sub(r"\1", text)))


def flat(text: str) -> str:
    """Lower-cased words joined by single spaces: text compared ignoring punctuation."""
    return " ".join(w.lower() for w in words(text))


def strip_markers(text: str) -> str:
    """Remove [n] citation-like markers (article text may contain fake ones)."""
    return _MARKER.sub("", text).strip()
