"""Question in, checked and cited answer out: retrieval, an answerer, the citation check."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import date

from index.filters import Filters
from rag.answerers import Answerer, ShortAnswer, Turn
from rag.citations import CitationChecker
from rag.condense import Condenser, RuleCondenser
from rag.gate import AnswerGate
from rag.result import NOT_COVERED, Answer
from rag.retrieve import Retriever, published_within

log = logging.getLogger(__name__)

NO_PASSAGES = "no passage was retrieved"


class Assistant:
    """The one entry point the CLI, the API and the chat call."""

    def __init__(self, retriever: Retriever, answerer: Answerer, checker: CitationChecker,
                 gate: AnswerGate, top_k: int = 5, condenser: Condenser | None = None) -> None:
        self.retriever = retriever
        self.answerer = answerer
        self.checker = checker
        self.gate = gate
        self.top_k = top_k
        self.condenser = condenser or RuleCondenser()

    def ask(self, question: str, top_k: int | None = None, filters: Filters | None = None,
            history: Sequence[Turn] = (), as_of: date | None = None) -> Answer:
        final: Answer | None = None
        for event in self.ask_stream(question, top_k, filters, history, as_of):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def ask_stream(self, question: str, top_k: int | None = None,
                   filters: Filters | None = None,
                   history: Sequence[Turn] = (),
                   as_of: date | None = None) -> Iterator[str | Answer]:
        """Yield answer text as it is produced, then the checked Answer once. ``as_of``: the
        day the question is asked about; articles from just before it are favoured."""
        question = question.strip()
        # A follow-up is retrieved and answered as a standalone question, shown in the result.
        condensed = self.condenser.condense(question, history) if history else None
        standalone = condensed or question
        k = top_k or self.top_k
        days = self.gate.frame(standalone).recent_days if as_of is not None else None
        if as_of is None or days is None:
            passages = self.retriever.retrieve(standalone, k, filters, as_of)
            reason = NO_PASSAGES
        else:  # "this week": an older article tells another week's story
            found = self.retriever.retrieve(standalone, 2 * k, filters, as_of)
            passages = published_within(found, as_of, days)[:k]
            reason = NO_PASSAGES if not found else (
                f"the question asks about the {days} days before {as_of.isoformat()}, and "
                "no passage retrieved is from then")
        if not passages:
            yield Answer(question=question, answer=NOT_COVERED, abstained=True,
                         answerer=self.answerer.name, condensed_question=condensed,
                         abstain_reason=reason)
            return
        chunks: list[str] = []
        short: str | None = None
        for chunk in self.answerer.stream(standalone, passages, history):
            if isinstance(chunk, ShortAnswer):
                short = chunk.text
                continue
            chunks.append(chunk)
            if self.answerer.streams:
                yield chunk
        text = "".join(chunks)
        answer = self.checker.check(question, text, passages, self.answerer.name)
        # Supported is not enough: the cited sentences must answer the question asked.
        answer = self.gate.check(standalone, answer, lead=not self.answerer.streams,
                                 prefer=short)
        if answer.abstained and not text.strip():  # the answerer found nothing: say why
            answer.abstain_reason = self.gate.explain(standalone, passages)
        if not self.answerer.streams:  # its text is known only now: one chunk, as checked
            yield answer.answer
        answer.condensed_question = condensed
        if answer.removed_sentences:
            log.info("citation check removed %d unsupported sentence(s)",
                     answer.removed_sentences)
        yield answer

