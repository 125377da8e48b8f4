"""`rag eval`'s machinery, shared with ``bench/answer_eval.py``: a collection of its own per
articles file (ingested once, under the data folder's lock, reused after), and the question
rows run through the assistant.

One place, so the command and the benchmark measure exactly the same thing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.embedder import Embedder
from index.ingest import ingest_paths
from rag.eval import EvalQuestion, EvalReport, evaluate, load_questions
from ui.errors import CollectionEmpty
from ui.settings import Settings
from ui.wiring import Components, build, build_retriever, split_options, write_lock

if TYPE_CHECKING:
    from ui.service import ArticleService

log = logging.getLogger(__name__)


def eval_collection(settings: Settings, articles: Path) -> str:
    """A collection name of its own for an articles file and the settings that shape passages."""
    key = "|".join(str(x) for x in (articles.resolve(), settings.passage_words,
                                     settings.overlap_words, settings.clean_boilerplate))
    return f"{settings.collection[:30]}-eval-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def open_eval(settings: Settings, articles: Path | None, progress: bool = False,
              embedder: Embedder | None = None) -> Components:
    """Components on the eval collection of ``articles`` (ingested first, holding the data
    folder's lock: unchanged articles are skipped, so a second run costs a read of the file),
    or on the settings' collection. Pass ``embedder`` to share a loaded model."""
    if articles is not None:
        settings = settings.model_copy(update={"collection": eval_collection(settings, articles)})
    components = build(settings, embedder=embedder, create=articles is not None)
    if articles is not None:
        with write_lock(settings, on_wait=lambda m: log.warning("%s", m)):
            report = ingest_paths([articles], components.store, components.embedder,
                                  max_bytes=int(settings.max_file_mb * 1_000_000),
                                  options=split_options(settings), progress=progress)
        log.info("eval collection %r: %s", settings.collection, report.summary())
    return components


def run_eval(components: Components, questions: Sequence[EvalQuestion], top_k: int | None = None,
             answers: bool = True, use_dates: bool = True,
             progress: Callable[[int], None] | None = None) -> EvalReport:
    """Every row retrieved and (with ``answers``) answered as the assistant would: as of its
    date, without its excluded articles, after its history."""
    assistant = components.assistant
    k = top_k or components.settings.top_k
    return evaluate(
        questions, assistant.retriever.retrieve,
        (lambda q, d, history, filters: assistant.ask(q, top_k=k, filters=filters,
                                                      history=history, as_of=d))
        if answers else None,
        progress=progress, use_dates=use_dates, condense=assistant.condenser.condense)


COMPARED = ("dense", "bm25")


def compare_sides(components: Components, questions: Sequence[EvalQuestion],
                  use_dates: bool = True) -> dict[str, EvalReport]:
    """Retrieval-only reports of the dense side and the BM25 side alone, on the same store
    and rows: a change that helps one side and hurts the fusion shows at once."""
    settings = components.settings
    reports: dict[str, EvalReport] = {}
    for mode in COMPARED:
        retriever = build_retriever(settings.model_copy(update={"retriever": mode}),
                                    components.store, components.embedder)
        condense = components.assistant.condenser.condense
        reports[mode] = evaluate(questions, retriever.retrieve, None, use_dates=use_dates,
                                 condense=condense)
    return reports


def evaluate_file(service: ArticleService, questions_file: Path, articles: Path | None,
                  top_k: int | None, answers: bool, use_dates: bool,
                  progress: Callable[[int, int], None] | None,
                  compare: bool = False) -> dict[str, Any]:
    """The service's `evaluate`: the metrics, and what they were measured on."""
    questions = load_questions(questions_file)
    components = open_eval(service.settings, articles, progress=progress is not None,
                           embedder=service.shared.embedder if service.shared else None)
    if components.store.passage_count() == 0:
        raise CollectionEmpty(f"the collection {components.settings.collection!r} is empty: "
                              "give --articles or run `rag ingest PATH` first")
    k = top_k or components.settings.top_k
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(questions))

    result = run_eval(components, questions, k, answers=answers, use_dates=use_dates,
                      progress=advance)
    found: dict[str, Any] = {
        "metrics": result.metrics(), "retriever": components.assistant.retriever.name,
        "collection": components.settings.collection, "top_k": k}
    if compare:
        found["compare"] = {name: report.metrics() for name, report in compare_sides(
            components, questions, use_dates=use_dates).items()}
    return found
