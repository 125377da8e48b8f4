"""What became of each file, URL or feed entry of a write: the per-source outcomes and the
totals, as jobs return them and the front ends show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from index.readers import ReadResult
from index.types import Article, IngestReport, ReadFailure


@dataclass
class FileOutcome:
    """What became of one uploaded file (or of the JSON records of one request)."""

    name: str
    articles: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.errors:
            return "ok"
        return "partial" if self.articles else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "articles": self.articles,
                "errors": self.errors}


@dataclass
class UploadReport:
    """Per-file outcomes plus the ingest totals."""

    files: list[FileOutcome]
    report: IngestReport
    collection: str = ""
    feeds: list[dict[str, Any]] | None = None  # feed jobs: each feed's state afterwards

    def as_dict(self) -> dict[str, Any]:
        r = self.report
        found = {"collection": self.collection, "files": [f.as_dict() for f in self.files],
                 "added": r.added, "unchanged": r.unchanged, "replaced": r.replaced,
                 "failed": r.failed, "passages": r.passages}
        if self.feeds is not None:
            found["feeds"] = self.feeds
        return found


def report_of(result: dict[str, Any]) -> UploadReport:
    files = [FileOutcome(f["name"], f["articles"], list(f["errors"])) for f in result["files"]]
    report = IngestReport(added=result["added"], unchanged=result["unchanged"],
                          replaced=result["replaced"], passages=result["passages"])
    report.failures = [ReadFailure(e, "") for f in files for e in f.errors]
    return UploadReport(files, report, result["collection"])


def outcomes_of(results: Sequence[ReadResult], report: IngestReport) -> list[FileOutcome]:
    """One outcome per result (a URL, a feed entry), named by where it came from."""
    skipped = {d.where: d for d in report.duplicates}
    outcomes: list[FileOutcome] = []
    for result in results:
        outcome = FileOutcome(result.where)
        if isinstance(result, ReadFailure):
            outcome.errors.append(str(result))
        elif isinstance(result, Article) and result.where in skipped:
            outcome.errors.append(str(skipped[result.where]))
        else:
            outcome.articles = 1
        outcomes.append(outcome)
    return outcomes


def add_report(total: IngestReport, part: IngestReport) -> None:
    total.added += part.added
    total.unchanged += part.unchanged
    total.replaced += part.replaced
    total.passages += part.passages
    total.embedded += part.embedded
    total.failures.extend(part.failures)
    total.duplicates.extend(part.duplicates)


def skipped(outcome: FileOutcome, duplicate: ReadFailure) -> None:
    """A record read but skipped at ingest (its id repeats another's) is an error of its file."""
    outcome.errors.append(str(duplicate))
    outcome.articles = max(0, outcome.articles - 1)
