"""Retrieval-only sweep of the fusion settings (RRF k, side weights, whole-article weight).

Queries are embedded once (the embedder caches them), so a grid of a few dozen settings
takes about a minute on an ingested collection. Run:

    python bench/tune_fusion.py --data-dir /tmp/rqa --collection dev \\
        --questions ../shared/eval/realtimeqa-dev/questions.jsonl
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from rag.eval import evaluate, load_questions
from ui.settings import load_settings
from ui.wiring import build_embedder, build_retriever, build_store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--ks", default="10,30,60")
    parser.add_argument("--bm25-weights", default="0.5,1,1.5")
    parser.add_argument("--article-weights", default="0,0.5,1")
    parser.add_argument("--per-article", default="0")
    parser.add_argument("--dedupe", default="0.6")
    args = parser.parse_args()
    base = load_settings(None, data_dir=args.data_dir, collection=args.collection)
    store, embedder = build_store(base), build_embedder(base)
    questions = load_questions(args.questions)
    print("| mode | rrf k | bm25 w | article w | per article | dedupe | hits@1 | hits@5 "
          "| hits@10 | mrr@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    grid = [("dense", 60, 1.0, 0.0, 0, 0.6), ("bm25", 60, 1.0, 0.0, 0, 0.6)] + [
        ("hybrid", int(k), float(b), float(a), int(p), float(d))
        for k, b, a, p, d in itertools.product(
            args.ks.split(","), args.bm25_weights.split(","), args.article_weights.split(","),
            args.per_article.split(","), args.dedupe.split(","))]
    for mode, k, bw, aw, pa, dd in grid:
        settings = base.model_copy(update={"retriever": mode, "fusion_k": k,
                                           "bm25_weight": bw, "article_weight": aw,
                                           "per_article": pa, "dedupe_threshold": dd})
        retriever = build_retriever(settings, store, embedder)
        m = evaluate(questions, retriever.retrieve, None).metrics()
        print(f"| {mode} | {k} | {bw} | {aw} | {pa} | {dd} | " + " | ".join(
            f"{m[x]:.3f}" for x in ("hits@1", "hits@5", "hits@10", "mrr@10")) + " |",
            flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
