"""Follow-up questions: chat history + new question -> one standalone question for retrieval.

With a language model the model rewrites the question; without one, a simple rule attaches
the previous question when the new one leans on it ("what did she say next?").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Protocol

from rag.answerers import Turn
from rag.llm import ChatModel, Generation
from rag.prompt import condense_messages
from rag.terms import content_terms, key_terms

log = logging.getLogger(__name__)

# Words that point back into the conversation instead of naming what they mean.
_REFERRING = frozenset("""
he him his she her hers they them their theirs it its this that these those there then
such former latter else another other same one ones
""".split())
_PREFIX = re.compile(r"^\s*(?:standalone question|question|rewritten question)\s*:\s*",
                     re.IGNORECASE)


class Condenser(Protocol):
    def condense(self, question: str, history: Sequence[Turn]) -> str: ...


def last_user_question(history: Sequence[Turn]) -> str | None:
    return next((t.content.strip() for t in reversed(history) if t.role == "user"
                 and t.content.strip()), None)


def needs_context(question: str) -> bool:
    """True when the question refers back (pronouns, "else") or names nothing of its own."""
    lowered = [w.lower() for w in re.findall(r"[^\W_]+", question)]
    return any(w in _REFERRING for w in lowered) or (
        not key_terms(question) and len(content_terms(question)) < 3)


class RuleCondenser:
    """No model: append the previous question to a follow-up that leans on it.

    Retrieval then sees the names the follow-up leaves out; a standalone question passes
    through unchanged.
    """

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        previous = last_user_question(history)
        if previous is None or not needs_context(question):
            return question
        return f"{question} (follow-up to: {previous})"


class LLMCondenser:
    """The chat model rewrites the follow-up; the rule is the fallback for unusable output."""

    def __init__(self, model: ChatModel, max_tokens: int = 64) -> None:
        self.model = model
        self.generation = Generation(max_tokens=max_tokens, temperature=0.0)
        self.fallback = RuleCondenser()

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        if not history:
            return question
        text = self.model.complete(condense_messages(question, history), self.generation)
        rewritten = clean_rewrite(text)
        # A small model sometimes answers instead of rewriting, echoes the question, or
        # rambles: the rule is better then.
        answered = question.rstrip().endswith("?") and "?" not in rewritten
        echoed = _same(rewritten, question) and needs_context(question)
        if not rewritten or answered or echoed or len(rewritten) > 3 * len(question) + 200:
            log.info("condense: model output unusable (%r); using the rule", text[:80])
            return self.fallback.condense(question, history)
        return rewritten


def clean_rewrite(text: str) -> str:
    """The first non-empty line, without a 'Standalone question:' prefix or quotes."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line).strip().strip("\"'“”").strip()
    return line


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
