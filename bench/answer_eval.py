"""One command that measures the answers on every answer dev set, before and after a change.

    python -m bench.answer_eval --data-dir ../evaldata [--sets dev,2025,own]
        [--ignore-dates] [--top-k N] [--json] [--rows rows.jsonl]
    python -m bench.answer_eval --tables-from saved.json   # the tables of an earlier run

The sets are (re)written by ``bench.answer_sets`` under ``DATA_DIR/answer-sets`` (cheap), then
each corpus is opened as ``rag eval --articles`` opens it: one collection per articles file
in the data dir, ingested the first time only (the dev corpora take minutes to tens of
minutes to embed on two shared cores; later runs reuse them). Negatives are asked on the same
collection with their gold articles excluded by filter. Every row goes through the real
assistant (the configured answerer, default settings, ``RAG_*`` honoured) exactly as
``rag eval`` asks it: as of the row's date unless ``--ignore-dates``.

Prints one table per set: a row per question file and one for all of them, with CPU seconds
(this process, all threads), wall seconds and the mean 1-minute load average while it ran.
``--json`` prints everything (every ``rag eval`` metric per part) as one object instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.answer_sets import ROOT, AnswerSet, write_sets
from rag.eval import EvalQuestion, EvalReport, load_questions
from ui.evaluation import open_eval, run_eval
from ui.settings import Settings, load_settings
from ui.wiring import Components, build_embedder

COLUMNS = ("answer_accuracy", "false_answer_rate", "over_refusal_rate", "followup_accuracy",
           "short_answer_accuracy", "ansin@5", "hits@5")


@dataclass
class Cost:
    """CPU and wall seconds of some work, and the load average sampled while it ran."""

    cpu_s: float = 0.0
    wall_s: float = 0.0
    loads: list[float] = field(default_factory=list)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.cpu_s + other.cpu_s, self.wall_s + other.wall_s,
                    self.loads + other.loads)

    def as_dict(self) -> dict[str, float | None]:
        load = round(sum(self.loads) / len(self.loads), 2) if self.loads else None
        return {"cpu_s": round(self.cpu_s, 1), "wall_s": round(self.wall_s, 1), "load": load}


def sample_load() -> float:
    return os.getloadavg()[0]


def run_part(components: Components, questions: Sequence[EvalQuestion], top_k: int | None,
             use_dates: bool, label: str, show: bool) -> tuple[EvalReport, Cost]:
    """One question file through ``rag eval``'s machinery, timed, sampling the load average
    after each question."""
    cost = Cost(loads=[sample_load()])
    wall, cpu = time.perf_counter(), time.process_time()
    with tqdm(total=len(questions), unit="question", desc=label, disable=not show) as bar:
        def step(n: int) -> None:
            cost.loads.append(sample_load())
            bar.update(n)

        report = run_eval(components, questions, top_k, use_dates=use_dates, progress=step)
    cost.cpu_s, cost.wall_s = time.process_time() - cpu, time.perf_counter() - wall
    return report, cost


def measure_set(found: AnswerSet, components: Components, use_dates: bool,
                top_k: int | None, show: bool = False) -> dict[str, Any]:
    """Every part of one set on its collection: metrics and cost per part, and for all."""
    parts: dict[str, Any] = {}
    reports: list[EvalReport] = []
    total = Cost()
    for part, path in found.parts.items():
        report, cost = run_part(components, load_questions(path), top_k, use_dates,
                                f"{found.name}/{part}", show)
        parts[part] = {"metrics": report.metrics(), **cost.as_dict(),
                       "rows": [o.row() for o in report.outcomes]}
        reports.append(report)
        total += cost
    merged = EvalReport([o for r in reports for o in r.outcomes])
    parts["all"] = {"metrics": merged.metrics(), **total.as_dict(), "rows": []}
    return {"collection": components.settings.collection,
            "articles": str(found.articles),
            "passages": components.store.passage_count(), "parts": parts}


def open_set(settings: Settings, found: AnswerSet, components: Components | None,
             progress: bool) -> tuple[Components, dict[str, float | None]]:
    """The set's collection (ingested the first time), sharing the loaded embedder."""
    embedder = components.embedder if components else build_embedder(settings)
    wall, cpu = time.perf_counter(), time.process_time()
    opened = open_eval(settings, found.articles, progress=progress, embedder=embedder)
    ingest = Cost(time.process_time() - cpu, time.perf_counter() - wall, [sample_load()])
    return opened, ingest.as_dict()


def table(name: str, result: dict[str, Any]) -> str:
    """A Markdown table for one set, so the output pastes straight into docs/answers.md."""
    head = ["part", "n", *COLUMNS, "cpu s", "wall s", "load"]
    lines = [f"### {name} ({result['passages']} passages, collection "
             f"`{result['collection']}`)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for part, row in result["parts"].items():
        m = row["metrics"]
        cells = [part, str(m["n_questions"]), *(_cell(m[k]) for k in COLUMNS),
                 f"{row['cpu_s']:.1f}", f"{row['wall_s']:.1f}",
                 "–" if row["load"] is None else f"{row['load']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        help="persistent data folder: one collection per corpus, reused")
    parser.add_argument("--sets", default="dev,2025,own",
                        help="comma-separated sets: dev, 2025, own (default: all three)")
    parser.add_argument("--ignore-dates", action="store_true",
                        help="ask without each row's 'date' as the as-of day")
    parser.add_argument("--top-k", type=int, default=None,
                        help="passages given to the answerer (default: RAG_TOP_K)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--rows", type=Path, metavar="FILE.jsonl",
                        help="also write one line per question (set, part, verdicts, the "
                        "answer) to compare runs row by row")
    parser.add_argument("--tables-from", type=Path, metavar="FILE.json",
                        help="print the tables of an earlier --json run and stop")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.data_dir is None and args.tables_from is None:
        parser.error("--data-dir is required")
    unknown = set(args.sets.split(",")) - {"dev", "2025", "own"}
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}: choose from dev, 2025, own")
    return args


def print_tables(saved: dict[str, Any]) -> None:
    for name, result in saved["sets"].items():
        print(table(name, result) + "\n")


def commit() -> str | None:
    """The checkout's commit, so a saved run says which code it measured."""
    try:
        done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.tables_from:
        print_tables(json.loads(args.tables_from.read_text(encoding="utf-8")))
        return 0
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="answer_eval: %(message)s", stream=sys.stderr)
    import bm25s  # noqa: F401  # it sets its logger to DEBUG on import: import it first

    for noisy in ("httpx", "chromadb", "urllib3", "httpcore", "bm25s", "rag", "ui", "index"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings(None, data_dir=args.data_dir)
    sets = write_sets(args.data_dir / "answer-sets", args.sets.split(","))
    out: dict[str, Any] = {"commit": commit(), "use_dates": not args.ignore_dates,
                           "top_k": args.top_k or settings.top_k,
                           "retriever": settings.retriever, "sets": {}}
    components: Components | None = None
    for name, found in sets.items():
        components, ingest = open_set(settings, found, components, not args.quiet)
        result = measure_set(found, components, not args.ignore_dates, args.top_k,
                             show=not args.quiet)
        out["answerer"] = components.answerer_description
        out["sets"][name] = {**result, "open_and_ingest": ingest}
        if not args.json:
            print(table(name, result) + "\n", flush=True)
    if args.rows:
        write_rows(args.rows, out)
    for result in out["sets"].values():
        for row in result["parts"].values():
            del row["rows"]
    if args.json:
        print(json.dumps(out))
    return 0


def write_rows(path: Path, out: dict[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as rows:
        for name, result in out["sets"].items():
            for part, found in result["parts"].items():
                for row in found["rows"]:
                    rows.write(json.dumps({"set": name, "part": part, **row},
                                          ensure_ascii=False) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
