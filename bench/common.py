"""Helpers shared by the benchmark scripts: the evaluation articles, timing, percentiles, RSS."""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from index.embedder import MiniLMEmbedder, Vectors
from index.readers import record_to_article
from index.types import Article

T = TypeVar("T")

# Read in place, never copied into the project.
EVAL_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "realtimeqa-dev"
ARTICLES = EVAL_DIR / "articles.jsonl"
QUESTIONS = EVAL_DIR / "questions.jsonl"


def load_articles(path: Path = ARTICLES, limit: int | None = None) -> list[Article]:
    """Articles from a JSONL file of records, in file order, unreadable records skipped."""
    articles: list[Article] = []
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            result = record_to_article(json.loads(line), f"{path.name}:{n}")
            if isinstance(result, Article) and result.text.strip():
                articles.append(result)
            if limit is not None and len(articles) >= limit:
                break
    return articles


def load_questions(path: Path = QUESTIONS) -> list[str]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["question"] for line in lines if line.strip()]


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    """``with timer() as elapsed: ...`` then ``elapsed()`` gives seconds (also inside)."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def measure(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall and CPU seconds of ``fn()`` (CPU of all this process's threads) and its result.

    On a shared machine CPU time is the steadier figure: other processes' load stretches
    wall time, not the work done here.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table, so the output pastes straight into docs/benchmarks.md."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


class CountingEmbedder(MiniLMEmbedder):
    """The real model, counting the texts it is asked to embed."""

    texts = 0

    def embed(self, texts: Sequence[str],
              progress: Callable[[int], None] | None = None) -> Vectors:
        self.texts += len(texts)
        return super().embed(texts, progress)
