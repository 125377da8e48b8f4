"""Retrieval on both dev sets per embedding option and passage size: is a faster option as good?

For each dev set (realtimeqa-dev, realtimeqa-2025) the eval collection `rag eval --articles`
builds (today's embedder: onnxruntime, 256 tokens, 200-word passages) is the baseline. An
embedding option re-embeds those same passages into a collection of its own (same texts,
metadata and BM25; only the vectors differ); a passage size ingests the articles afresh with
that option. Each collection is then evaluated like `rag eval --no-answers` (hybrid, as of
each question's date): Hits@1/5/10, MRR@10.

    cp -a ../evaldata /tmp/evaldata   # a copy: the eval stores are read-only
    python -m bench.embed_quality --data-dir /tmp/evaldata --options ov-latency-128
    python -m bench.embed_quality --data-dir /tmp/evaldata --options ov-latency-128 \\
        --passage-words 100 --overlap-words 20
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import EVAL_DIR, measure, table
from bench.embed_bench import OPTIONS
from index.embedder import MiniLMEmbedder
from index.store import PassageStore, open_client
from rag.eval import load_questions
from ui.evaluation import eval_collection, open_eval, run_eval
from ui.settings import Settings
from ui.wiring import build

SETS = {"dev": EVAL_DIR, "2025": EVAL_DIR.parent / "realtimeqa-2025"}
METRICS = ["hits@1", "hits@5", "hits@10", "mrr@10"]


def reembedded(settings: Settings, source: str, option: str,
               embedder: MiniLMEmbedder) -> tuple[str, float, float]:
    """A copy of collection ``source`` whose vectors come from ``embedder``; returns its
    name and the wall and CPU seconds of embedding."""
    client = open_client(settings.data_dir, None)
    name = f"q-{option}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    src = PassageStore(client, source, embedder.name, create=False)
    dst = PassageStore(client, name, embedder.name)
    if dst.passage_count() == src.passage_count():
        return name, 0.0, 0.0  # made by an earlier run
    got = src._passages.get(include=["documents", "metadatas"])
    texts = [f"{m['title']}\n{d}" if m.get("title") and not d.startswith(str(m["title"])[:40])
             else d for d, m in zip(got["documents"], got["metadatas"], strict=True)]
    wall, cpu, vectors = measure(lambda: embedder.embed(texts))
    step = 2000
    for s in range(0, len(texts), step):
        dst._passages.upsert(ids=got["ids"][s:s + step], embeddings=vectors[s:s + step],
                             documents=got["documents"][s:s + step],
                             metadatas=got["metadatas"][s:s + step])
    catalog = src._catalog.get(include=["metadatas"])
    dst._catalog.upsert(ids=catalog["ids"], embeddings=[[1.0]] * len(catalog["ids"]),
                        metadatas=catalog["metadatas"])
    return name, wall, cpu


def evaluate(settings: Settings, embedder: MiniLMEmbedder, questions: Path) -> dict[str, Any]:
    components = build(settings, embedder=embedder, create=False, environ={})
    report = run_eval(components, load_questions(questions), answers=False)
    return report.metrics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--options", nargs="+", default=["ov-latency-128"])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--passage-words", type=int, default=None)
    parser.add_argument("--overlap-words", type=int, default=None)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)
    base = Settings(data_dir=args.data_dir, llm_backend="extractive")
    rows: list[list[Any]] = []
    for set_name in args.sets:
        folder = SETS[set_name]
        articles, questions = folder / "articles.jsonl", folder / "questions.jsonl"
        source = eval_collection(base, articles)
        runs: list[tuple[str, Settings, MiniLMEmbedder, float, float, int]] = []
        if not args.no_baseline:
            baseline = MiniLMEmbedder(runtime="onnxruntime")
            settings = base.model_copy(update={"collection": source})
            runs.append(("ort (today)", settings, baseline, 0.0, 0.0, 200))
        for option in args.options:
            embedder = MiniLMEmbedder(**OPTIONS[option])
            if args.passage_words:
                sized = base.model_copy(update={"passage_words": args.passage_words,
                                                "overlap_words": args.overlap_words or 0,
                                                "embed_max_tokens": 128})
                wall, cpu, parts = measure(lambda s=sized, e=embedder, a=articles: open_eval(
                    s, a, embedder=e))
                settings = parts.settings
                runs.append((option, settings, embedder, wall, cpu, args.passage_words))
            else:
                name, wall, cpu = reembedded(base.model_copy(update={"collection": source}),
                                             source, option, embedder)
                settings = base.model_copy(update={"collection": name})
                runs.append((option, settings, embedder, wall, cpu, 200))
        for label, settings, embedder, wall, cpu, words in runs:
            got = evaluate(settings, embedder, questions)
            passages = PassageStore(open_client(settings.data_dir, None), settings.collection,
                                    embedder.name, create=False).passage_count()
            rows.append([set_name, label, words, passages, *(f"{got[m]:.3f}" for m in METRICS),
                         f"{wall:.0f}" if wall else "-", f"{cpu:.0f}" if cpu else "-"])
            print(rows[-1], file=sys.stderr)
    print(table(["set", "option", "passage words", "passages", *METRICS,
                 "embed wall s", "embed CPU s"], rows))
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
