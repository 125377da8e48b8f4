"""Drop obvious web boilerplate from article text before it is split and embedded.

Pages saved from news sites carry newsletter pitches, "How relevant is this ad to you?",
share-button and video-player text and reporter contact lines. They match many questions'
words without answering any, and the same lines repeat across articles of one site, so
they crowd both the lexical and the dense ranking. Only whole short lines are removed, never
words inside a sentence: a false positive costs one line, not a passage.
"""

from __future__ import annotations

import re
from dataclasses import replace

from index.types import Article

# A line longer than this is prose, whatever it mentions.
_MAX_WORDS = 45

_BOILERPLATE = re.compile(
    r"""(?ix)
    how\ relevant\ is\ this\ ad
    | \bad\ feedback\b
    | \b(we|site|website)\ uses?\ cookies\b | \b(accept|manage)\ (all\ )?cookies\b
    | \bcookie\ (settings|policy|preferences|consent)\b
    | \bsign\ up\b.*\b(here|newsletter|inbox|today|now|free)\b
    | \b(newsletter|inbox)\b.*\bsign\ up\b
    | \bsubscribe\b.*\b(today|here|newsletter|now|print\ edition|digital)\b
    | \bsupport\ (local|strong\ local|our)\ journalism\b
    | \bthank\ you\ for\ supporting\ our\ journalism\b
    | \bsubscription\ makes\ work\ like\ this\ possible\b
    | \bfollow\ (him|her|them|us|me)?\s*(on|at)\ (twitter|facebook|instagram)\b
    | \bfollow\ [\w.'’ -]{0,60}\ on\ twitter\b
    | \b(on\ )?twitter\ (at\ )?@\w+
    | ^(contact|reach|email|call)\b.*(@|\d{3}-\d{3}-\d{4})
    | \bshare\ (this|on)\ (story|article|facebook|twitter)\b
    | ^(share|tweet|email|print|comment|copy\ link|read\ more|see\ more|advertisement)[:.]?$
    | ^(read\ more|related|see\ also)\s*:
    | \ball\ rights\ reserved\b
    | \bclick\ here\b
    | \bgetty\ images\b | \(photo:? | \bphoto\ (by|credit)\b
    """,
)


def is_boilerplate(line: str) -> bool:
    """Is this short line web boilerplate (an ad, a share button, a newsletter pitch)?"""
    stripped = line.strip()
    return bool(stripped) and len(stripped.split()) <= _MAX_WORDS and bool(
        _BOILERPLATE.search(stripped))


def clean_text(text: str) -> str:
    """The text without boilerplate lines; blank-line structure is kept for the splitter."""
    kept = [line for line in text.split("\n") if not is_boilerplate(line)]
    cleaned = "\n".join(kept)
    return re.sub(r"\n{3,}", "\n\n", cleaned).strip()


def clean_article(article: Article) -> Article:
    """The article with boilerplate lines removed (the same object when nothing changed)."""
    cleaned = clean_text(article.text)
    if cleaned == article.text or not cleaned:
        return article
    return replace(article, text=cleaned)
