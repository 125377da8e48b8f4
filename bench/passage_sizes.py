"""BM25-only retrieval for several passage sizes and with/without boilerplate cleaning.

Each passage size needs a full re-embed for the dense side (minutes on a small CPU), but the
lexical side indexes in a second, so this sweep shows cheaply how size, overlap and cleaning
move article-level Hits@k and MRR@10. Run:

    python bench/passage_sizes.py --articles ../shared/eval/realtimeqa-dev/articles.jsonl \\
        --questions ../shared/eval/realtimeqa-dev/questions.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from index.clean import clean_article
from index.lexical import tokenize
from index.passages import split_article
from index.readers import read_paths
from index.types import Article
from rag.eval import EvalReport, judge, load_questions
from rag.result import RetrievedPassage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--sizes", default="100/20,150/30,200/40,250/50,300/60")
    args = parser.parse_args()
    import bm25s

    raw = [a for a in read_paths([args.articles], 100_000_000) if isinstance(a, Article)]
    questions = load_questions(args.questions)
    print("| passage words/overlap | cleaned | passages | hits@1 | hits@5 | hits@10 | mrr@10 |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        words, overlap = (int(x) for x in size.split("/"))
        for clean in (False, True):
            articles = [clean_article(a) for a in raw] if clean else raw
            passages = [(a, p) for a in articles for p in split_article(a, words, overlap)]
            model = bm25s.BM25()
            model.index(tokenize([f"{a.title}\n{p.text}" for a, p in passages]),
                        show_progress=False)
            report = EvalReport()
            for q in questions:
                started = time.perf_counter()
                scores = model.get_scores(tokenize([q.question])[0])
                top = np.argsort(-scores)[:10]
                ms = (time.perf_counter() - started) * 1000
                ranked = [RetrievedPassage(passage_id=p.id, article_id=a.id, title=a.title,
                                           source=a.source, url=a.url, text=p.text,
                                           start=p.start, end=p.end, score=float(scores[i]))
                          for i in top for a, p in [passages[i]]]
                report.outcomes.append(judge(q, ranked, None, ms))
            m = report.metrics()
            print(f"| {words}/{overlap} | {'yes' if clean else 'no'} | {len(passages)} | "
                  + " | ".join(f"{m[k]:.3f}" for k in ("hits@1", "hits@5", "hits@10",
                                                       "mrr@10")) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
