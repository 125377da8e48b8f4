"""Chroma writes per article versus per round of 32 articles, with the same passages.

Vectors are random (the store's cost does not depend on them), so this takes seconds.

    python -m bench.store_write_bench --articles 300
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from bench.common import load_articles, measure, table
from index.embedder import MINILM_NAME
from index.passages import split_article
from index.store import PassageStore, open_client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = []
    for article in load_articles(limit=args.articles):
        passages = split_article(article)
        vectors = rng.normal(size=(len(passages), 384)).astype(np.float32)
        batch.append((article, passages, vectors / np.linalg.norm(vectors, axis=1)[:, None]))
    n = sum(len(p) for _, p, _ in batch)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        one = PassageStore(open_client(Path(tmp) / "one", None), "articles", MINILM_NAME)
        rounds = PassageStore(open_client(Path(tmp) / "rounds", None), "articles", MINILM_NAME)
        per_article = measure(lambda: [one.write_articles([item]) for item in batch])
        per_round = measure(lambda: [rounds.write_articles(batch[s:s + 32])
                                     for s in range(0, len(batch), 32)])
        assert one.passage_count() == rounds.passage_count() == n
    for name, (wall, cpu, _) in (("per article", per_article), ("per round of 32", per_round)):
        rows.append([name, f"{wall:.2f}", f"{cpu:.2f}", f"{1000 * wall / n:.2f}"])
    print(f"{len(batch)} articles, {n} passages, embedded Chroma\n")
    print(table(["writes", "wall s", "CPU s", "ms per passage"], rows))


if __name__ == "__main__":
    main()
