"""What a question asks for, and what it is about: the thing wanted (a person, a number, a
date, a place, an X of "which X"), the names, numbers, years and quoted words an answer must
keep to, and whose words it asks for ("What did the mayor say?").

Built from spaCy's parse and entities plus a few rules for what the small model misses
(quotes, years, capitalised names it does not tag).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rag.terms import STOPWORDS, key_terms, stem, words

# Entity labels (spaCy's OntoNotes set) that can answer each kind of question.
PERSONISH = frozenset({"PERSON", "ORG", "NORP", "GPE"})
QUANTITY = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"})
WHEN = frozenset({"DATE", "TIME"})
PLACE = frozenset({"GPE", "LOC", "FAC"})
TIME_UNITS = frozenset({"second", "minute", "hour", "day", "week", "month", "year",
                        "decade", "century", "night", "season", "term"})
NAMED = frozenset({"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC", "EVENT", "WORK_OF_ART",
                   "LAW", "PRODUCT", "LANGUAGE"})

# "which X" / "what X": the noun X says what kind of thing is wanted.
_HEADS: dict[frozenset[str], tuple[str, ...]] = {
    PERSONISH: ("owner", "buyer", "winner", "sponsor", "donor", "partner", "rival",
                "opponent", "bidder", "investor", "seller", "recipient", "organizer",
                "organiser"),
    frozenset({"GPE", "LOC", "NORP"}): (
        "country", "nation", "state", "city", "capital", "town", "region", "territory",
        "island", "continent", "province", "county", "village", "area", "place", "location",
        "district", "neighborhood", "neighbourhood", "border", "kingdom", "republic",
        "destination", "resort", "spot", "venue", "site"),
    frozenset({"ORG", "PRODUCT", "FAC", "WORK_OF_ART"}): (
        "company", "firm", "automaker", "carmaker", "retailer", "airline", "bank", "school",
        "university", "college", "team", "club", "network", "agency", "organization",
        "organisation", "party", "group", "store", "chain", "brand", "app", "platform",
        "startup", "newspaper", "publisher", "league", "giant", "manufacturer", "maker",
        "broadcaster", "channel", "studio", "union", "court", "department", "ministry",
        "restaurant", "hospital", "service", "website", "charity", "business",
        "carrier", "operator", "provider", "outlet", "magazine", "label", "streamer"),
    frozenset({"PERSON"}): (
        "person", "man", "woman", "leader", "president", "minister", "singer", "actor",
        "actress", "comedian", "player", "star", "athlete", "coach", "ceo", "author",
        "figure", "artist", "rapper", "chef", "judge", "senator", "governor", "mayor",
        "candidate", "official", "billionaire", "founder", "director", "writer", "musician",
        "champion", "winner", "quarterback", "pitcher", "golfer", "driver", "host",
        "journalist", "lawmaker", "politician", "monarch", "king", "queen", "prince",
        "princess", "pope", "ambassador", "celebrity", "star", "boxer", "swimmer",
        "skater", "gymnast", "teenager", "child", "girl", "boy", "daughter", "son", "wife",
        "husband", "mother", "father", "brother", "sister", "rival", "spokesperson",
        "head", "owner", "nominee", "pilot", "rapper", "dancer", "scientist", "doctor",
        "lawyer", "attorney", "suspect", "victim", "hero", "legend", "icon", "speaker",
        "chancellor", "premier", "dictator", "emperor", "founder", "successor", "heir"),
    frozenset({"DATE", "TIME"}): ("year", "date", "day", "month", "time", "season",
                                  "decade", "century", "week"),
    frozenset({"PERCENT"}): ("percentage", "percent", "share", "proportion", "rate"),
    frozenset({"MONEY"}): ("amount", "price", "fee", "cost", "sum", "salary", "budget",
                           "fine", "value", "worth", "prize", "money", "funding"),
    frozenset({"CARDINAL", "QUANTITY"}): ("number", "count", "total"),
}
_HEAD_NOUNS = frozenset(noun for nouns in _HEADS.values() for noun in nouns)
_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
# Double quotes only: an apostrophe ("Microsoft's") opens nothing.
_QUOTED = re.compile(r"[“\"]([^”\"]{3,80})[”\"]")
_SAY = frozenset("say tell state claim warn argue write describe call mean".split())
_NUMBER_WORD = re.compile(r"\d")
# Words that place the story in the days before the question is asked: "this week", "on
# Tuesday", "yesterday". A week back, two for "last week"; no other "now" word is read as a
# window ("recently" and "this year" reach too far to rule out an article), nor a weekday
# that names a kind of day ("the third Monday of February", "Black Friday").
_DAY = r"(mon|tues|wednes|thurs|fri|satur|sun)day"
_THIS_WEEK = re.compile(rf"\b(this (week|weekend)|(on|this|since|last) {_DAY}|{_DAY} "
                        r"(night|morning|afternoon|evening)|yesterday|today|tonight)\b", re.I)
_LAST_WEEK = re.compile(r"\b(last|past) (week|weekend)\b", re.I)


@dataclass(frozen=True)
class Constraint:
    """Something the question names that an answer must keep to."""

    text: str
    kind: str  # "name", "number", "year", "quote"
    stems: frozenset[str]  # stemmed content words of ``text``

    @property
    def surname(self) -> str:
        """The stem of a person's last name ('' for other constraints)."""
        names = [w for w in words(self.text) if w[:1].isupper()]
        return stem(names[-1]) if self.kind == "person" and names else ""

    @property
    def digits(self) -> str:
        """A number's digits ('4,700' -> '4700', '$5 million' -> '5')."""
        found = re.search(r"\d[\d,.]*", self.text)
        return found.group().replace(",", "").rstrip(".") if found else ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Frame:
    """A question, analysed."""

    text: str
    wh: str  # "who", "how many", "when", "where", "which", "what", "why", "how", "yes/no"
    wants: frozenset[str]  # entity labels of an answer; empty: any kind of answer
    head: str  # the X of "which X" / "how many X", lemmatised ('' when none)
    constraints: tuple[Constraint, ...]
    speaker: Constraint | None  # "What did the mayor say?" -> the mayor
    terms: frozenset[str]  # stemmed content words
    question_stems: frozenset[str]  # every stemmed word of the question
    written: frozenset[str] = frozenset()  # every word as the question writes it
    predicates: frozenset[str] = frozenset()  # its verbs (base forms): what happened
    subject: bool = False  # the wh-phrase is the subject ("Which team won ...?")
    recent_days: int | None = None  # "this week": the story is from these days before asking

    @property
    def wants_short_answer(self) -> bool:
        """A name, number, date or place: the answer can start with it."""
        return bool(self.wants) and self.speaker is None


def analyse(doc: Any) -> Frame:
    """The frame of a question from its spaCy analysis."""
    text = doc.text.strip()
    wh, head = _wh(doc)
    wants = _wanted(wh, head)
    speaker = _speaker(doc, wh)
    constraints = _constraints(doc, speaker)
    terms = frozenset(stem(w) for w in words(text) if w.lower() not in STOPWORDS
                      and len(w) > 1 and w.lower() not in _WH_WORDS)
    verbs = [t for t in doc if t.pos_ == "VERB"]
    predicates = frozenset(base_form(stem(t.text)) for t in [*verbs, *_last_word(doc)]
                           if t.lemma_ not in _LIGHT_VERBS and t.lower_ not in _WH_WORDS)
    return Frame(text=text, wh=wh, wants=wants, head=head, constraints=constraints,
                 speaker=speaker, terms=terms,
                 question_stems=frozenset(stem(w) for w in words(text)),
                 written=frozenset(words(text)),
                 predicates=predicates, subject=_wh_is_subject(doc),
                 recent_days=None if wants & WHEN else recent_days(text))


def recent_days(question: str) -> int | None:
    """How many days before the day of asking the question's story can be from, when it
    says ("this week", "on Tuesday": 7; "last week": 14); None when it does not say. (Not
    asked of a question that wants a date: "X was down this week. What year did Musk buy
    it?" asks about an older story.)"""
    if _LAST_WEEK.search(question):
        return 14
    return 7 if _THIS_WEEK.search(question) else None


_LIGHT_VERBS = frozenset("be have do make take get give go become say".split())


def _last_word(doc: Any) -> list[Any]:
    """In "When did the ceasefire collapse?" the verb ends the question, and the small
    parser may read it as a noun: with a 'did/does/will', the last word is the verb."""
    tokens = [t for t in doc if not t.is_punct]
    if tokens and any(t.lemma_ in ("do", "will", "can") and t.pos_ == "AUX" for t in doc):
        last = tokens[-1]
        if last.pos_ in ("NOUN", "VERB") and last.dep_ != "ROOT":
            return [doc[last.i:last.i + 1].root]
    return []


def _wh_is_subject(doc: Any) -> bool:
    """Is the wh-word (or the noun it picks, "which team") the subject of its clause?"""
    for token in doc:
        if token.lower_ in _WH_WORDS:
            target = token.head if token.dep_ in ("det", "amod") else token
            return target.dep_ in ("nsubj", "nsubjpass")
    return False


_WH_WORDS = frozenset("who whom whose what which when where why how".split())


def _wh(doc: Any) -> tuple[str, str]:
    """The kind of question and the noun of 'which X' / 'how many X' (lemma)."""
    tokens = list(doc)
    for i, token in enumerate(tokens):
        lower = token.lower_
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if lower == "how" and nxt is not None and nxt.lower_ in ("many", "much"):
            noun = _chunk_noun(doc, i + 1) or _next_noun(tokens, i + 2)
            if nxt.lower_ == "much" and not noun and any(t.lemma_ in _MONEY_VERBS for t in doc):
                noun = "money"  # "How much will the repair cost?"
            return "how many", noun
        if lower == "how" and nxt is not None and nxt.lower_ in _HOW_ADJECTIVES:
            return f"how {nxt.lower_}", ""
        if lower in ("who", "whom", "whose") and token.head.dep_ != "relcl":
            return "who", ""  # not the "who" of "children who eat fish"
        if lower in ("which", "what"):
            noun = _chunk_noun(doc, i)
            if noun in ("kind", "type", "sort", "name"):  # "what type of infection"
                noun = _of_noun(doc, i)
            if not noun and nxt is not None and nxt.lemma_ == "be":
                noun = _attribute_noun(doc, nxt)  # "What is the new fee to climb ...?"
            if not noun and nxt is not None and nxt.lemma_.lower() in _HEAD_NOUNS:
                noun = nxt.lemma_.lower()  # "What year did ...": no noun chunk in the parse
            return ("which" if noun else "what"), noun
        if lower in ("when", "where", "why"):
            return lower, ""
        if lower == "how":
            return "how", ""
    return "yes/no", ""


_HOW_ADJECTIVES = ("long", "old", "soon", "often", "far", "big", "large", "tall")
_MONEY_WORDS = frozenset({"money", "dollar", "pound", "euro", "cash", "fund", "funding",
                          "fee", "price", "cost", "salary", "revenue", "profit", "sum"})
_MONEY_VERBS = frozenset({"cost", "pay", "spend", "earn", "charge", "raise", "sell", "buy",
                          "owe", "fine", "worth", "donate", "receive", "win", "invest"})


def _chunk_noun(doc: Any, i: int) -> str:
    """The head noun of the noun phrase the word at ``i`` opens ("which US national park"
    -> park), or ''."""
    for chunk in doc.noun_chunks:
        if chunk.start <= i < chunk.end and chunk.root.i != i:
            return str(chunk.root.lemma_).lower()
    return ""


def _next_noun(tokens: list[Any], start: int) -> str:
    """The first noun within a few words ("how many more hours" -> hour)."""
    for token in tokens[start:start + 3]:
        if token.pos_ == "NOUN":
            return str(token.lemma_).lower()
        if token.pos_ in ("VERB", "AUX"):
            break
    return ""


def _of_noun(doc: Any, i: int) -> str:
    """'what type of X' -> X."""
    for token in doc[i:i + 6]:
        if token.lower_ == "of" and token.i + 1 < len(doc):
            return _chunk_noun(doc, token.i + 1) or str(doc[token.i + 1].lemma_).lower()
    return ""


def _attribute_noun(doc: Any, be: Any) -> str:
    for child in be.children:
        if child.dep_ in ("attr", "nsubj") and child.pos_ == "NOUN":
            return str(child.lemma_).lower()
    return ""


def _wanted(wh: str, head: str) -> frozenset[str]:
    if wh == "who":
        return PERSONISH
    if wh == "how many":
        if head in _MONEY_WORDS:
            return frozenset({"MONEY"})
        if head in TIME_UNITS:  # "six more weeks" is a DATE to the entity recogniser
            return QUANTITY | WHEN
        return QUANTITY
    if wh in ("how long", "how old", "how often", "how far", "how big", "how large",
              "how tall"):
        return QUANTITY | WHEN
    if wh in ("when", "how soon"):
        return WHEN
    if wh == "where":
        return PLACE | frozenset({"ORG"})
    if wh in ("which", "what") and head:
        for labels, heads in _HEADS.items():
            if head in heads:
                return labels
    return frozenset()


def _speaker(doc: Any, wh: str) -> Constraint | None:
    """'What did X say/tell ...' -> X (whose words are asked for)."""
    if wh not in ("what", "how"):
        return None
    for token in doc:
        if token.lemma_ in _SAY and token.pos_ == "VERB" and any(
                c.dep_ == "aux" and c.lemma_ == "do" for c in token.children):
            subjects = [c for c in token.children if c.dep_ in ("nsubj", "nsubjpass")]
            if subjects and subjects[0].lower_ not in _WH_WORDS:
                span = doc[subjects[0].left_edge.i:subjects[0].right_edge.i + 1]
                # a role keeps its title words: "the foreign secretary" is not "the foreign
                # minister"; a name is matched by its surname
                person = any(e.label_ == "PERSON" for e in span.ents)
                stems = frozenset(stem(w) for w in words(span.text)
                                  if w.lower() not in STOPWORDS)
                if stems:
                    return Constraint(span.text, "person" if person else "role", stems)
    return None


def _constraints(doc: Any, speaker: Constraint | None) -> tuple[Constraint, ...]:
    """Names, numbers, years and quoted words of the question."""
    found: dict[str, Constraint] = {}

    def add(text: str, kind: str) -> None:
        stems = _stems(text)
        if stems and not any(stems <= c.stems for c in found.values()):
            for key in [k for k, c in found.items() if c.stems < stems]:
                del found[key]
            found[text.lower()] = Constraint(text, kind, stems)

    for match in _QUOTED.finditer(doc.text):
        if len(match.group(1).split()) >= 1:
            add(match.group(1), "quote")
    for year in _YEAR.findall(doc.text):
        add(year, "year")
    for ent in doc.ents:
        text = ent.text.strip().removeprefix("the ").removeprefix("The ")
        if ent.label_ in NAMED and not _stems(text) <= _CALENDAR:
            add(text.removesuffix("'s").removesuffix("’s"), "name")
        elif ent.label_ in QUANTITY and _NUMBER_WORD.search(text):
            add(text, "number")
    keys = (key_terms(doc.text) | _camel_case(doc.text)) - _WH_STEMS - _CALENDAR - _TITLES
    covered = set().union(*(c.stems for c in found.values())) if found else set()
    run: list[str] = []  # capitalised names the entity recogniser did not tag, whole
    for word in [*words(doc.text), ""]:
        key = stem(word) if word else ""
        if key and key in keys and key not in covered and not key.isdigit():
            run.append(word)
            continue
        if run:
            add(" ".join(run), "name")
            covered |= _stems(" ".join(run))
            run = []
    if speaker is not None:  # the speaker is checked as the speaker, not as any name
        found = {k: c for k, c in found.items() if not c.stems <= speaker.stems}
    return tuple(found.values())


_WH_STEMS = frozenset(stem(w) for w in _WH_WORDS)
# Days and months name the news's own time ("on Tuesday"), not what it is about.
_CALENDAR = frozenset(stem(w) for w in """monday tuesday wednesday thursday friday saturday
sunday january february march april may june july august september october november
december""".split())
# Titles go with a name ("former President Jimmy Carter"); an answer may name the person
# without them, so a title alone is not something the answer must repeat.
_TITLES = frozenset(stem(w) for w in """president prince princess king queen pope senator
governor mayor minister prime secretary general chancellor ceo sir lady lord judge justice
rep representative sen gov former first dr""".split())


def _camel_case(text: str) -> set[str]:
    """'iPhone', 'eBay', 'YouTube': names that do not start with a capital."""
    return {stem(w) for w in words(text) if any(c.isupper() for c in w[1:])}


def _stems(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in words(text) if w.lower() not in STOPWORDS
                     and (len(w) > 1 or w.isdigit())) - _TITLES


def focus(frame: Frame) -> frozenset[str]:
    """The question's words that say what happened: not the names and numbers it must keep
    to (checked apart), not the speaker, not the noun of 'which X'."""
    kept: set[str] = set()
    for constraint in frame.constraints:
        kept |= constraint.stems
    if frame.speaker is not None:
        kept |= frame.speaker.stems
    return frame.terms - kept - {stem(frame.head)} - _WH_STEMS


# Irregular and derived forms that mean the same event ("died" / "deaths", "won" / "winner").
_BASE = {"death": "die", "dead": "die", "won": "win", "winner": "win", "victori": "win",
         "born": "bear", "birth": "bear", "sold": "sell", "sale": "sell", "bought": "buy",
         "purchas": "buy", "left": "leav", "lost": "lose", "loss": "lose", "chose": "choos",
         "chosen": "choos", "choic": "choos", "met": "meet", "went": "go", "gone": "go",
         "began": "begin", "begun": "begin", "start": "begin", "fell": "fall",
         "rose": "rise", "risen": "rise", "elect": "elect", "elector": "elect",
         "vote": "vote", "voter": "vote", "killer": "kill", "arrest": "arrest"}


def base_form(term: str) -> str:
    """A stem mapped to the form its derived or irregular relatives share."""
    return _BASE.get(term, term)


PERSON_NOUNS = frozenset(next(heads for labels, heads in _HEADS.items()
                              if labels == frozenset({"PERSON"})))
