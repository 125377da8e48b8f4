"""Markdown to the text a reader sees: ``# Title`` is "Title", ``*said*`` is "said".

A ``.md`` article is stored as this text, so passages, citations and their character offsets
all refer to what the chat and the CLI show (markup in a citation reads as noise, and a
highlight computed on the marked-up text would be off by the markup). Rules, not a full
parser: headings, emphasis, inline code, links and images, block quotes, list bullets, code
fences, rules and reference definitions; anything else is kept as written.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)")
_CLOSING_HASHES = re.compile(r"\s+#+\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")
_QUOTE = re.compile(r"^\s{0,3}(?:>\s?)+")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")
_REF_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+\S+.*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?!\*)|(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_CODE = re.compile(r"`+([^`]+?)`+")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")


def markdown_to_text(markdown: str) -> str:
    """The text of a Markdown document without its markup; line structure is kept."""
    lines: list[str] = []
    in_code = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            lines.append(line)
            continue
        lines.append(_line(line, lines))
    return "\n".join(lines)


def _line(line: str, before: list[str]) -> str:
    if _REF_DEFINITION.match(line) or _RULE.match(line):
        return ""
    if _SETEXT.match(line) and before and before[-1].strip():
        return ""  # the underline of a heading: the line above is the heading's text
    if _HEADING.match(line):
        line = _CLOSING_HASHES.sub("", _HEADING.sub("", line))
    line = _BULLET.sub(r"\1", _QUOTE.sub("", line))
    return _inline(line)


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(lambda m: m[1] or m[2], text)
    text = _STRIKE.sub(r"\1", text)
    return _ESCAPED.sub(r"\1", text)
