"""Per-query retrieval latency on an ingested collection, in one process, split by stage.

Query vectors are computed once first (the embedder caches them), so the rows show what
retrieval itself costs; the embedding row is the model's own floor, measured apart. Run:

    python bench/retrieval_latency.py --data-dir /tmp/rqa --collection dev \\
        --questions ../shared/eval/realtimeqa-dev/questions.jsonl --rounds 3
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from index.lexical import LexicalIndex
from rag.eval import load_questions
from rag.retrieve import HybridRetriever
from ui.settings import load_settings
from ui.wiring import build_embedder, build_retriever, build_store


def timed(fn: Callable[[], object], times: list[float]) -> None:
    started = time.perf_counter()
    fn()
    times.append((time.perf_counter() - started) * 1000)


def row(name: str, times: list[float]) -> str:
    p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
    return f"| {name} | {len(times)} | {p50:.1f} | {p95:.1f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    settings = load_settings(None, data_dir=args.data_dir, collection=args.collection)
    store, embedder = build_store(settings), build_embedder(settings)
    retriever = build_retriever(settings, store, embedder)
    assert isinstance(retriever, HybridRetriever)
    lexical: LexicalIndex = retriever._lexical
    questions = [q.question for q in load_questions(args.questions)]
    embed: list[float] = []
    for q in questions:  # uncached: the model's cost, then cached for the rows below
        timed(lambda q=q: embedder.embed_query(q), embed)
    retriever.retrieve(questions[0], args.k)  # loads (or rebuilds) the BM25 index
    stages: dict[str, list[float]] = {"freshness stamp": [], "dense (Chroma query)": [],
                                      "bm25 (passages + articles)": [],
                                      "hybrid retrieve (whole)": []}
    n = settings.candidates
    for _ in range(args.rounds):
        for q in questions:
            vector = embedder.embed_query(q)
            timed(lexical.stamp, stages["freshness stamp"])
            timed(lambda v=vector: store.query(v, n), stages["dense (Chroma query)"])
            timed(lambda q=q: lexical.rank(q, n, n), stages["bm25 (passages + articles)"])
            timed(lambda q=q: retriever.retrieve(q, args.k), stages["hybrid retrieve (whole)"])
    print(f"{store.passage_count()} passages, {len(questions)} questions x {args.rounds}")
    print("| stage | n | p50 ms | p95 ms |")
    print("|---|---|---|---|")
    print(row("query embedding (uncached, not in the rows below)", embed))
    for name, times in stages.items():
        print(row(name, times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
