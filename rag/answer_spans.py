"""Where in a sentence the thing a question asks for is: the entities of the wanted kind
("who": a person or organisation not in the question), names joined as the sentence joins
them ("Moscow and Washington"), a number with what it counts ("no deaths"), and which one to
take (the one in the wh-word's part, nearest to what the question says happened).

The gate uses it to decide whether a sentence holds an answer, the answerers to give the
short answer.
"""

from __future__ import annotations

import re
from typing import Any

from rag.nlp import Language
from rag.question import PERSONISH, QUANTITY, TIME_UNITS, WHEN, Frame, base_form
from rag.terms import STOPWORDS, flat, stem, stem_set

_DIGIT = re.compile(r"\d")

_ZERO = frozenset({"no", "none", "zero", "nobody"})
_PEOPLE = frozenset(stem(w) for w in """people person persons death deaths dead victim
resident passenger worker employee student child children adult patient soldier civilian
fan spectator member voter migrant refugee casualty injury injured killed survivor crew
staff man men woman women citizen officer individual""".split())
# For 'who', a person before an organisation before a people or a place.
_PREFERENCE = {"PERSON": 0, "ORG": 1, "GPE": 2, "NORP": 2}
_SUBJECTS = frozenset({"nsubj", "nsubjpass"})
_GROUPS = frozenset(stem(w) for w in """force forces troops troop rebels rebel militants
militant police government officials official authorities authority army regime coalition
ministers leaders council committee court company firm opposition protesters lawmakers
voters residents judges jury board""".split())
_COORDINATION = re.compile(r"\s*(,|and|&|,\s*and)\s*(the\s*)?", re.IGNORECASE)
_OF_A = re.compile(r"\s*of( a| an)?\s*", re.IGNORECASE)  # "a quarter" "of a" "million"
_NAMES = frozenset({"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC"})
_NAME_LINKS = frozenset({"of", "for"})  # inside a name: "Alternative for Germany"
_DATELINE = re.compile(r"^[A-Z][A-Z .,'()]{2,40}\s*[–—-]")  # "WASHINGTON – " opens a report


def answer_span(language: Language, frame: Frame, sentence: str,
                prefer: str | None = None) -> tuple[int, int] | None:
    """The span (in the sentence) of the thing asked for: an entity of a wanted kind
    that says something the question does not already say; ``prefer`` (an answerer's
    choice, e.g. the name most passages agree on) when it is one of them."""
    found = answer_spans(language, frame, sentence)
    if not found:
        return None
    if prefer:
        chosen = [f for f in found if flat(sentence[f[1][0]:f[1][1]]) == flat(prefer)]
        if chosen:
            return chosen[0][1]
    return min(found, key=lambda f: (f[0], _distance(frame, sentence, f[1])))[1]

def answer_spans(language: Language, frame: Frame,
             sentence: str) -> list[tuple[int, tuple[int, int]]]:
    """Every span of the sentence that could answer the question, with a preference
    (lower first): for 'who', a person before an organisation or a country before a
    nationality; an answer in the role the question's wh-word has (its subject) first."""
    doc = language.parse(sentence)
    found: list[tuple[int, tuple[int, int]]] = []  # (preference, span)
    dateline = _DATELINE.match(sentence)
    for ent in _joined(doc, frame.wants):
        if ent.label_ not in frame.wants or (dateline and ent.start_char < dateline.end()):
            continue
        new = stem_set(ent.text) - frame.question_stems
        if not new and not (ent.label_ in QUANTITY | WHEN and _DIGIT.search(ent.text)):
            continue
        if f" {flat(ent.text)} " in f" {flat(frame.text)} ":
            continue  # the question's own "January 6, 2021" is not its answer
        if ent.label_ in QUANTITY and not _counts(frame, ent):
            continue
        if frame.wh == "how many" and ent.label_ in WHEN and not any(t.like_num for t in ent):
            continue  # "how many minutes": "two hours", never "Monday"
        found.append((2 * _PREFERENCE.get(ent.label_, 1) + _role(frame, ent.root),
                      _trim(frame, ent)))
    if frame.wants & QUANTITY:  # "no deaths had been reported"
        found += [(2, _zero_span(doc, t)) for t in doc if t.lower_ in _ZERO
                  and _counts(frame, doc[t.i:t.i + 1])]
    if frame.wants & frozenset({"PERSON", "ORG"}):
        # names the small model leaves untagged ("Hu Meiling"), and groups ("rebels")
        taken = [span for _, span in found]
        found += [(pref + _role(frame, doc.char_span(*span, alignment_mode="expand").root),
                   span) for pref, spans in ((2, _proper_names(frame, doc)),
                                             (4, _groups(frame, doc)))
                  for span in spans if not any(a < span[1] and span[0] < b
                                               for a, b in taken)]
    return found


_MONEY = frozenset({"MONEY"})
_PERCENT = frozenset({"PERCENT"})


def _counts(frame: Frame, span: Any) -> bool:
    """For 'how many X': is this number one of X (the noun it goes with)?"""
    if (not frame.head or frame.wants in (_MONEY, _PERCENT)  # the head names the number
            or frame.head in TIME_UNITS):
        return True
    wanted = stem(frame.head)
    people = wanted in _PEOPLE
    doc = span.doc
    for token in doc[span.start:min(len(doc), span.end + 4)]:
        noun = stem(token.text)
        if token.pos_ in ("NOUN", "PROPN") and (noun == wanted or (people and noun in _PEOPLE)):
            return True
    head = doc[span.end - 1].head
    return stem(head.text) == wanted or (people and stem(head.text) in _PEOPLE)


def _trim(frame: Frame, ent: Any) -> tuple[int, int]:
    """An entity's span without leading words the question already has ("the UN Samantha
    Power" for "the US ambassador to the UN" -> "Samantha Power"); a number keeps what
    qualifies it ("more than 200")."""
    tokens = list(ent)
    if ent.label_ not in QUANTITY | WHEN:
        while len(tokens) > 1 and (tokens[0].lower_ in STOPWORDS or _asked(tokens[0], frame)):
            tokens = tokens[1:]
    return tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)


def _asked(token: Any, frame: Frame) -> bool:
    """Does the question already say this word? A capitalised word of a name counts only
    written the same way: "a new report" does not make "New York" into "York"."""
    if token.text[:1].isupper():
        return token.text in frame.written
    return stem(token.text) in frame.question_stems


def _zero_span(doc: Any, token: Any) -> tuple[int, int]:
    """'no' with the noun it counts: 'no deaths'."""
    end = token
    for following in doc[token.i + 1:token.i + 3]:
        end = following
        if following.pos_ in ("NOUN", "PROPN"):
            break
    return token.idx, end.idx + len(end.text)


def _role(frame: Frame, root: Any) -> int:
    """0 when the answer plays the wh-word's part (its subject, or the agent of a passive:
    "brokered by Moscow"), else 1."""
    if not frame.subject:
        return 0
    agent = root.dep_ == "pobj" and root.head.dep_ == "agent"
    return 0 if root.dep_ in _SUBJECTS or agent else 1


def _joins(label: str, between: str) -> bool:
    if label in _NAMES:
        return bool(_COORDINATION.fullmatch(between))
    return label == "CARDINAL" and bool(_OF_A.fullmatch(between))


def _joined(doc: Any, wants: frozenset[str]) -> list[Any]:
    """The sentence's entities, with names of a wanted kind joined by 'and' or commas made
    one ("Moscow and Washington", "Britain, the US and France")."""
    from spacy.tokens import Span

    ents = list(doc.ents)
    out: list[Any] = []
    i = 0
    while i < len(ents):
        first = last = ents[i]
        j = i + 1
        while (j < len(ents) and first.label_ in wants and ents[j].label_ == first.label_
               and _joins(first.label_, doc[last.end:ents[j].start].text)):
            last = ents[j]
            j += 1
        out.append(first if last is first else Span(doc, first.start, last.end,
                                                    label=first.label_))
        i = j
    return out


def _proper_names(frame: Frame, doc: Any) -> list[tuple[int, int]]:
    """Runs of proper nouns the entity recogniser did not tag, not in the question."""
    found: list[tuple[int, int]] = []
    run: list[Any] = []
    for token in [*doc, None]:
        if token is not None and token.pos_ == "PROPN" and token.i > 0 and (
                not token.ent_type_ or token.ent_type_ in PERSONISH):
            run.append(token)  # a word tagged as a date or a number is not a name
            continue
        if (token is not None and run and token.lower_ in _NAME_LINKS
                and token.i + 1 < len(doc) and doc[token.i + 1].pos_ == "PROPN"):
            run.append(token)  # "Alternative for Germany", "Bank of Varsa"
            continue
        if run and stem_set(" ".join(t.text for t in run)) - frame.question_stems:
            found.append((run[0].idx, run[-1].idx + len(run[-1].text)))
        run = []
    return found


def _groups(frame: Frame, doc: Any) -> list[tuple[int, int]]:
    """Noun phrases naming people as a group ("regime forces", "the police") for 'who'."""
    return [(chunk.start_char, chunk.end_char) for chunk in doc.noun_chunks
            if stem(chunk.root.text) in _GROUPS
            and stem_set(chunk.text) - frame.question_stems]


def _distance(frame: Frame, sentence: str, span: tuple[int, int]) -> int:
    """How far (in characters) a candidate lies from what the question says happened (its
    verbs, else its other words) in the sentence."""
    wanted = frame.predicates or frame.terms
    near = [m.start() for m in re.finditer(r"[^\W_]+", sentence)
            if base_form(stem(m.group())) in wanted]
    if not near:
        return 0
    return min(min(abs(span[0] - n), abs(span[1] - n)) for n in near)


