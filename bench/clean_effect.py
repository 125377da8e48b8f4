"""Build an uncleaned copy of an ingested collection, to measure what boilerplate cleaning does.

Most passages are the same with and without cleaning, so their vectors are copied from the
cleaned collection and only the passages that differ are embedded (minutes instead of a full
re-embed). Then compare the two collections with bench/compare_retrievers.py. Run:

    python bench/clean_effect.py --data-dir /tmp/rqa --collection dev \\
        --articles ../shared/eval/realtimeqa-dev/articles.jsonl
    python bench/compare_retrievers.py --data-dir /tmp/rqa --collection dev-noclean ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from index.ingest import SplitOptions, embedding_text
from index.passages import split_article
from index.readers import read_paths
from index.store import PassageStore, open_client
from index.types import Article
from ui.settings import load_settings
from ui.wiring import build_embedder, embedder_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True, help="the cleaned collection")
    parser.add_argument("--articles", type=Path, required=True)
    args = parser.parse_args()
    settings = load_settings(None, data_dir=args.data_dir, collection=args.collection)
    options = SplitOptions(settings.passage_words, settings.overlap_words,
                           clean_boilerplate=False)
    client = open_client(args.data_dir, None)
    source = client.get_collection(args.collection)
    known: dict[tuple[str, str], list[float]] = {}
    for offset in range(0, source.count(), 2000):
        got = source.get(include=["embeddings", "documents", "metadatas"], limit=2000,
                         offset=offset)
        for vec, doc, meta in zip(got["embeddings"], got["documents"], got["metadatas"],
                                  strict=True):
            known[(str(meta["article_id"]), doc or "")] = list(vec)
    target = PassageStore(client, f"{args.collection}-noclean", embedder_name(settings))
    embedder = build_embedder(settings)
    articles = [a for a in read_paths([args.articles], 100_000_000) if isinstance(a, Article)]
    reused = embedded = 0
    for article in tqdm(articles, unit="article"):
        passages = split_article(article, options.max_words, options.overlap_words)
        missing = [p for p in passages if (article.id, p.text) not in known]
        fresh = embedder.embed([embedding_text(article, p, options) for p in missing])
        new = {p.text: v for p, v in zip(missing, fresh, strict=True)}
        vectors = np.array([known.get((article.id, p.text), new.get(p.text)) for p in passages],
                           dtype=np.float32)
        target.write_articles([(article, passages, vectors)])
        reused += len(passages) - len(missing)
        embedded += len(missing)
    print(f"{target.collection_name}: {reused} vectors reused, {embedded} embedded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
