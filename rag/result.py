"""The result contract shared by the CLI (`--json`), the HTTP API and the chat.

Keep it stable: fields may be added, never renamed or removed. Documented in the README.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetrievedPassage(BaseModel):
    """A passage retrieval returned, with where it sits in its article."""

    passage_id: str = Field(description="Stable id: '<article_id>#<passage number>'.")
    article_id: str
    title: str
    source: str
    url: str = ""
    published: str = Field("", description="ISO date (YYYY-MM-DD) when known, else ''.")
    text: str
    start: int = Field(description="Character offset of the passage in the article text.")
    end: int = Field(description="End offset (exclusive) in the article text.")
    page: int | None = Field(None, description="The page (from 1) of a paged article (a PDF) "
                             "the passage is on; null for articles without pages.")
    score: float = Field(description="Retrieval score; higher is better.")
    also_reported_by: list[str] = Field(
        default_factory=list, description="Sources of near-duplicate passages collapsed into it.")


class Citation(RetrievedPassage):
    """A retrieved passage that a sentence of the answer cites as ``[marker]``."""

    marker: int = Field(description="The n of the [n] markers in the answer text.")
    highlights: list[tuple[int, int]] = Field(
        default_factory=list,
        description="Spans (article offsets) of the passage sentences that support the answer.")


class Answer(BaseModel):
    """A checked answer: every [n] in ``answer`` is a citation whose passage supports it."""

    question: str
    answer: str
    abstained: bool = Field(description="True when the articles do not answer the question.")
    citations: list[Citation] = Field(default_factory=list)
    passages: list[RetrievedPassage] = Field(default_factory=list)
    condensed_question: str | None = Field(
        None, description="The standalone question retrieval used, when history was given.")
    answerer: str = Field("", description="Which answerer produced the text.")
    removed_sentences: int = Field(
        0, description="Sentences the citation check dropped as unsupported.")
    short_answer: str | None = Field(
        None, description="The answer alone, verbatim from a passage (e.g. 'Carlos Moedas'); "
        "None when the answerer gives none.")
    short_answer_span: tuple[int, int] | None = Field(
        None, description="Character span (start, end) of short_answer in the text of the "
        "article short_answer_article_id.")
    short_answer_article_id: str | None = Field(
        None, description="The article whose text holds short_answer at short_answer_span.")
    abstain_reason: str | None = Field(
        None, description="Why the answer abstained (e.g. 'no passage mentions 2021'); None "
        "when it did not.")


NOT_COVERED = "The articles do not cover this question."
