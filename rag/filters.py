"""Metadata filters shared by the CLI, the API and the chat, and their Chroma form."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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

    def is_empty(self) -> bool:
        return not (self.sources or self.article_ids or self.exclude_article_ids
                    or self.published_from or self.published_to)

    def to_where(self) -> dict[str, Any] | None:
        """The Chroma ``where`` clause, or None when nothing is filtered.

        Chroma compares only numbers with $gte/$lte, so dates are matched on the
        ``published_day`` integer (YYYYMMDD, 0 when unknown) the store writes beside them.
        """
        clauses: list[dict[str, Any]] = []
        if self.sources:
            clauses.append({"source": {"$in": self.sources}})
        if self.article_ids:
            clauses.append({"article_id": {"$in": self.article_ids}})
        if self.exclude_article_ids:
            clauses.append({"article_id": {"$nin": self.exclude_article_ids}})
        if self.published_from or self.published_to:
            low = day_number(self.published_from) if self.published_from else 1
            clauses.append({"published_day": {"$gte": low}})
        if self.published_to:
            clauses.append({"published_day": {"$lte": day_number(self.published_to)}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def day_number(iso_date: str) -> int:
    """'2022-06-17' -> 20220617; '' or malformed -> 0 (unknown date)."""
    digits = iso_date[:10].replace("-", "")
    return int(digits) if len(digits) == 8 and digits.isdigit() else 0
