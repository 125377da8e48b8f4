"""The one filter type: which passages a question may use, and its two translations.

A question can be restricted to some sources, some articles, without some articles, and to a
published date range. The CLI, the API and the chat build a :class:`Filters`; Chroma gets it
as a ``where`` clause (:meth:`Filters.to_where`) and the BM25 index as a mask over its arrays
(``index.lexical``). Both compare dates as YYYYMMDD integers (:func:`day_number`), the form
the store writes beside each passage, because Chroma compares only numbers with $gte/$lte.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Filters(BaseModel):
    """Restrict retrieval to some articles. Empty fields do not filter; unknown fields and
    impossible dates are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(default_factory=list, max_length=100,
                               description="Keep passages whose source is one of these.")
    article_ids: list[str] = Field(default_factory=list, max_length=1000,
                                   description="Keep passages of these articles.")
    exclude_article_ids: list[str] = Field(
        default_factory=list, max_length=1000,
        description="Drop passages of these articles: answer as if they were not stored.")
    published_from: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                       description="Earliest published date (YYYY-MM-DD).")
    published_to: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                     description="Latest published date (YYYY-MM-DD).")

    @field_validator("published_from", "published_to")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a date on the calendar "
                                 "(YYYY-MM-DD)") from None
        return value

    @model_validator(mode="after")
    def _in_order(self) -> Filters:
        if (self.published_from and self.published_to
                and self.published_from > self.published_to):
            raise ValueError(f"the date range starts ({self.published_from}) after it ends "
                             f"({self.published_to}): swap the two dates")
        return self

    def is_empty(self) -> bool:
        return not (self.sources or self.article_ids or self.exclude_article_ids
                    or self.published_from or self.published_to)

    def day_range(self) -> tuple[int, int] | None:
        """The published range as (first, last) YYYYMMDD days, or None when there is none.
        A range never matches an article whose date is unknown (day 0)."""
        if not (self.published_from or self.published_to):
            return None
        low = day_number(self.published_from) if self.published_from else 1
        high = day_number(self.published_to) if self.published_to else 99_991_231
        return max(1, low), high

    def to_where(self) -> dict[str, Any] | None:
        """The Chroma ``where`` clause, or None when nothing is filtered."""
        clauses: list[dict[str, Any]] = []
        if self.sources:
            clauses.append({"source": {"$in": self.sources}})
        if self.article_ids:
            clauses.append({"article_id": {"$in": self.article_ids}})
        if self.exclude_article_ids:
            clauses.append({"article_id": {"$nin": self.exclude_article_ids}})
        days = self.day_range()
        if days is not None:
            clauses.append({"published_day": {"$gte": days[0]}})
            if self.published_to:
                clauses.append({"published_day": {"$lte": days[1]}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def day_number(published: str | None) -> int:
    """'2022-06-17' (or a longer ISO timestamp) -> 20220617; '' or malformed -> 0 (unknown)."""
    digits = (published or "")[:10].replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0
