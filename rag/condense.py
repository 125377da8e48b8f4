"""Follow-up questions: chat history + new question -> one standalone question for retrieval.

With a language model the model rewrites the question; without one, rules on spaCy's
analysis resolve what the follow-up points back to ("her coach" -> "Lena Varga's coach").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

from rag.answerers import Turn
from rag.llm import ChatModel, Generation
from rag.nlp import Language
from rag.prompt import condense_messages
from rag.question import PERSON_NOUNS, analyse
from rag.terms import content_terms, key_terms, strip_markers

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
    """No model: resolve what the follow-up points back to, from the previous turn.

    "her", "he", "his" become the person the last answer (or question) named; "it", "that
    meeting", "the deal" the thing the last question was about; "they" the people or
    organisations the last answer named; "the company" after "Which company ...?" the
    answer's company; "And in 2023?" is the last question with its year changed. A
    follow-up that names nothing of its own gets the last question's names as its topic
    (in brackets). One that cannot be resolved is asked as it stands. The previous
    question is never appended whole: its words pulled retrieval back to its own answer.
    """

    def __init__(self, language: Language | None = None) -> None:
        self.language = language or Language()

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        previous = last_user_question(history)
        if previous is None:
            return question
        said = last_assistant_answer(history)
        nlp = self.language
        doc, before, answer = nlp.parse(question), nlp.parse(previous), nlp.parse(said)
        return (_elliptical(doc, before) or _resolved(doc, before, answer)
                or _with_topic(doc, before) or question)


def last_assistant_answer(history: Sequence[Turn]) -> str:
    """The last answer's words, without citation markers or the short-answer lead."""
    text = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    return strip_markers(text.split(" — ", 1)[-1]).strip() or " "


_ELLIPSIS = re.compile(r"^\s*(?:and|but|what about|how about)\s+(?:in|for|on|at)?\s*"
                       r"(.+?)\s*\??\s*$", re.IGNORECASE)
_PERSON_PRONOUNS = {"he": "s", "him": "o", "she": "s", "her": "?", "his": "p", "hers": "p"}
_THING_PRONOUNS = {"it": "s", "its": "p"}
_GROUP_PRONOUNS = {"they": "s", "them": "o", "their": "p", "theirs": "p"}
_DETERMINERS = frozenset({"this", "that", "these", "those", "the"})


def _elliptical(doc: Any, before: Any) -> str | None:
    """'And in 2023?' -> the previous question with its year (or a name of the same kind)
    swapped for the new one."""
    match = _ELLIPSIS.match(doc.text)
    if not match:
        return None
    new = match.group(1).strip()
    year = _YEAR.fullmatch(new)
    if year:
        old = _YEAR.search(before.text)
        return str(_YEAR.sub(new, before.text, count=1)) if old else None
    labels = {e.label_ for e in doc.ents if e.text in new}
    for ent in before.ents:
        if ent.label_ in labels:
            return str(before.text).replace(ent.text, new, 1)
    return None


def _resolved(doc: Any, before: Any, answer: Any) -> str | None:
    """The follow-up with its pronouns and pointing phrases replaced, or None."""
    edits: list[tuple[int, int, str]] = []
    for token in doc:
        lower = token.lower_
        replacement: str | None = None
        if lower in _PERSON_PRONOUNS:
            replacement = _person(answer, before)
            possessive = lower in ("his", "hers") or (lower == "her" and token.tag_ == "PRP$")
        elif lower in _THING_PRONOUNS and not _expletive(token):
            replacement = _topic_phrase(before)
            possessive = lower == "its"
        elif lower in _GROUP_PRONOUNS:
            replacement = _group(answer, before)
            possessive = lower in ("their", "theirs")
        elif lower in _DETERMINERS and token.i + 1 < len(doc) and (
                _nounish(doc[token.i + 1]) or token.dep_ == "det"):
            # "that meeting", "the deal" (the parser may take "deal promise" as one noun,
            # or "that meeting" as a clause)
            nouns = [t for t in doc[token.i + 1:token.i + 4] if _nounish(t)]
            for noun in nouns[:2]:
                phrase = _same_head(noun, before, answer)
                if phrase is not None:
                    edits.append((token.idx, noun.idx + len(noun.text), phrase))
                    break
            continue
        else:
            continue
        if replacement:
            text = f"{replacement}'s" if possessive else replacement
            edits.append((token.idx, token.idx + len(token.text), text))
    if not edits:
        return None
    out = str(doc.text)
    for start, end, text in sorted(edits, reverse=True):
        out = out[:start] + text + out[end:]
    return out


def _nounish(token: Any) -> bool:
    return bool(token.pos_ == "NOUN" or token.tag_ == "VBG")


def _expletive(token: Any) -> bool:
    """The 'it' of "how much will it cost to ..." or "is it true": it names nothing."""
    nxt = token.doc[token.i + 1:token.i + 4]
    return any(t.lemma_ in ("cost", "take", "be") for t in nxt[:2]) and any(
        t.lower_ == "to" for t in nxt)


def _person(answer: Any, before: Any) -> str | None:
    """The person named last turn; else one the last question names by role ("the US
    ambassador")."""
    for doc in (answer, before):
        for ent in doc.ents:
            if ent.label_ == "PERSON":
                return str(ent.text)
    for chunk in before.noun_chunks:
        if chunk.root.lemma_.lower() in PERSON_NOUNS and not any(
                w.lower_ in _WH for w in chunk):
            text = str(chunk.text)
            return text[0].lower() + text[1:] if text.startswith("The ") else text
    return None


def _group(answer: Any, before: Any) -> str | None:
    """People or organisations named together ("Mara Quill and Joss Herrick")."""
    for doc in (answer, before):
        names = [e for e in doc.ents if e.label_ in ("PERSON", "ORG", "GPE", "NORP")]
        for first, second in pairwise(names):
            between = doc.text[first.end_char:second.start_char]
            if between.strip() in ("and", ",", ", and", "&"):
                return f"{first.text}{between}{second.text}"
        orgs = [e for e in names if e.label_ in ("ORG", "NORP")]
        if orgs:
            return str(orgs[0].text)
    return None


def _topic_phrase(before: Any) -> str | None:
    """What the previous question was about: its object or subject with its modifiers
    ("the Syrian ceasefire", "the battery factory in Kellfield"), not its wh-phrase."""
    roots = [t for t in before if t.dep_ in ("dobj", "nsubj", "nsubjpass", "pobj", "attr")
             and t.pos_ in ("NOUN", "PROPN")
             and not any(w.lower_ in _WH for w in t.subtree)]
    if not roots:
        return None
    root = roots[0]
    phrase = str(before[root.left_edge.i:root.right_edge.i + 1].text)
    return phrase[0].lower() + phrase[1:] if phrase.startswith("The ") else phrase


def _same_head(noun: Any, before: Any, answer: Any) -> str | None:
    """'that meeting' / 'the deal' / 'the company' -> the fuller mention of the previous
    turns; after "Which company ...?", the company the answer named."""
    for doc in (before, answer):
        for token in doc:
            if token.pos_ == "NOUN" and noun.lower_ in (token.lower_, token.lemma_):
                if any(w.lower_ in _WH for w in token.subtree):  # "Which company"
                    wanted = _answer_entity(answer, analyse(doc).wants)
                    if wanted:
                        return wanted
                    continue
                phrase = str(doc[token.left_edge.i:token.right_edge.i + 1].text)
                if len(phrase.split()) > 2:
                    return phrase[0].lower() + phrase[1:] if phrase[:4] in ("The ", "A ") \
                        else phrase
    return None


def _answer_entity(answer: Any, wants: frozenset[str]) -> str | None:
    """The first name in the answer of the kind the question wanted (its company)."""
    for ent in answer.ents:
        if ent.label_ in wants:
            return str(ent.text).removesuffix("'").removesuffix("'s")
    run: list[str] = []  # a name the entity recogniser missed ("Arlen Cells'")
    for token in answer:
        if token.pos_ == "PROPN":
            run.append(token.text)
        elif run:
            break
    return " ".join(run) if run else None


def _with_topic(doc: Any, before: Any) -> str | None:
    """A follow-up that names nothing ("Who came third?") gets the previous question's
    names as its topic: "Who came third? (Women's World Rapid Chess Championship)"."""
    if any(e.label_ in _NAMED for e in doc.ents) or key_terms(doc.text):
        return None
    names = [e.text for e in before.ents if e.label_ in _NAMED]
    if not names:
        return None
    return f"{doc.text.strip()} ({', '.join(dict.fromkeys(names))})"


_WH = frozenset("who whom whose what which when where why how".split())
_NAMED = frozenset({"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "EVENT", "WORK_OF_ART",
                    "LAW", "PRODUCT"})
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


class LLMCondenser:
    """The chat model rewrites the follow-up; the rule is the fallback for unusable output."""

    def __init__(self, model: ChatModel, max_tokens: int = 64,
                 fallback: RuleCondenser | None = None) -> None:
        self.model = model
        self.generation = Generation(max_tokens=max_tokens, temperature=0.0)
        self.fallback = fallback or RuleCondenser()

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
