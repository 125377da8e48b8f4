"""Query latency, peak memory and disk size at 1k, 10k and 100k passages.

The 1k store holds real passages of the evaluation articles with their real vectors. Larger
stores add copies of them: each copy's vector is the original plus noise (renormalised) and
its text has its sentences rotated, so the store's and retrieval's costs are measured without
embedding 100k passages. Each size is built in one subprocess and queried in a fresh one, so
the query process's peak RSS is that of a server holding that store.

    python -m bench.query_bench --sizes 1000 10000 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.common import (
    dir_size_mb,
    load_articles,
    load_questions,
    median,
    peak_rss_mb,
    percentile,
    table,
    timer,
)
from index.embedder import MINILM_NAME, MiniLMEmbedder, Vectors
from index.ingest import SplitOptions, embedding_text
from index.passages import sentence_spans, split_article
from index.store import PassageStore, open_client
from index.types import Article, Passage

OUT = Path(__file__).resolve().parent / "out"
BASE = 1000  # real passages with real vectors; larger sizes are copies of these


def base_passages() -> tuple[list[Article], list[list[Passage]], Vectors]:
    """The first ~BASE real passages and their vectors (cached in bench/out/ once computed)."""
    articles: list[Article] = []
    split: list[list[Passage]] = []
    for article in load_articles():
        passages = split_article(article)
        articles.append(article)
        split.append(passages)
        if sum(len(p) for p in split) >= BASE:
            break
    cache = OUT / f"base-vectors-{sum(len(p) for p in split)}.npy"
    if cache.exists():
        return articles, split, np.load(cache)
    options = SplitOptions()
    texts = [embedding_text(a, p, options) for a, ps in zip(articles, split, strict=True)
             for p in ps]
    print(f"embedding {len(texts)} real passages once (cached in {cache})", file=sys.stderr)
    vectors = MiniLMEmbedder().embed(texts)
    OUT.mkdir(exist_ok=True)
    np.save(cache, vectors)
    return articles, split, vectors


def varied(article: Article, copy: int) -> Article:
    """A copy with its own id and its sentences rotated, so texts differ between copies."""
    spans = sentence_spans(article.text)
    k = copy % max(1, len(spans))
    parts = [article.text[a:b] for a, b in spans[k:] + spans[:k]]
    return dataclasses.replace(article, id=f"{article.id}~{copy}", text="\n".join(parts),
                               title=f"{article.title} ({copy})")


def build(size: int, path: Path) -> dict[str, Any]:
    """Write ``size`` passages into a fresh store at ``path`` through PassageStore."""
    articles, split, vectors = base_passages()
    rng = np.random.default_rng(0)
    store = PassageStore(open_client(path, None), "articles", MINILM_NAME)
    written, copy = 0, 0
    with timer() as elapsed:
        while written < size:
            batch, offset = [], 0
            for article, passages in zip(articles, split, strict=True):
                n = len(passages)
                base = vectors[offset:offset + n]
                offset += n
                if written + n > size:
                    break
                if copy == 0:
                    batch.append((article, passages, base))
                else:
                    doc = varied(article, copy)
                    copies = split_article(doc)[:n]  # rotated text may pack into fewer
                    noisy = base[:len(copies)] + rng.normal(
                        0, 0.6 / np.sqrt(base.shape[1]), (len(copies), base.shape[1]))
                    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
                    batch.append((doc, copies, noisy.astype(np.float32)))
                    n = len(copies)
                written += n
            if not batch:
                break
            for s in range(0, len(batch), 200):
                store.write_articles(batch[s:s + 200])
            copy += 1
    return {"size": store.passage_count(), "build_s": round(elapsed(), 1),
            "build_rss_mb": round(peak_rss_mb()), "disk_mb": round(dir_size_mb(path), 1)}


class UncachedQueries:
    """The embedder with every question embedded afresh, for retrieval timings."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.name = inner.name
        self._inner = inner

    def embed(self, texts: Sequence[str], progress: Any = None) -> Vectors:
        return self._inner.embed(texts, progress)

    def embed_query(self, text: str) -> Vectors:
        return self._inner.embed([text])[0]


Mode = Literal["hybrid", "dense", "bm25"]


def query(path: Path, runs: int, mode: Mode = "hybrid",
          candidates: int | None = None) -> dict[str, Any]:
    """Latencies of retrieval and of the extractive answer, with fresh question embeddings."""
    from index.lexical import LexicalIndex
    from rag.answerers import ExtractiveAnswerer
    from rag.assistant import Assistant
    from rag.citations import CitationChecker
    from rag.gate import AnswerGate
    from rag.retrieve import FusionOptions, HybridRetriever
    from ui.wiring import shared_language

    with timer() as open_s:  # includes building the BM25 index on the first query
        store = PassageStore(open_client(path, None), "articles", MINILM_NAME)
        embedder = MiniLMEmbedder()  # as the server builds it, query cache included
        lexical = LexicalIndex(store, path / "bm25" / "articles")
        # The default retrieval (hybrid: dense + BM25 + whole-article BM25, fused).
        options = FusionOptions() if candidates is None else FusionOptions(candidates=candidates)
        retriever = HybridRetriever(store, embedder, lexical, options, mode=mode)
        gate = AnswerGate(shared_language())
        assistant = Assistant(retriever, ExtractiveAnswerer(embedder, gate),
                              CitationChecker(embedder), gate, top_k=5)
        uncached = HybridRetriever(store, UncachedQueries(embedder), lexical, options,
                                   mode=mode)
        assistant.ask("warm up the store and the model")
    questions = load_questions() * runs  # passes after the first hit the caches
    store_ms, retrieve_ms, answer_ms, answered = [], [], [], 0
    for q in questions:
        with timer() as t:  # first sight of the question: it is embedded once, then cached
            answer = assistant.ask(q)
        answer_ms.append(t() * 1000)
        answered += not answer.abstained
        with timer() as t:
            uncached.retrieve(q, 5)
        retrieve_ms.append(t() * 1000)
        vector = embedder.embed_query(q.strip())
        with timer() as t:
            store.query(vector, 5)
        store_ms.append(t() * 1000)

    def stats(ms: list[float]) -> list[float]:
        return [round(median(ms), 1), round(percentile(ms, 95), 1)]

    return {"open_s": round(open_s(), 2), "queries": len(questions),
            "store": stats(store_ms), "retrieve": stats(retrieve_ms),
            "answer": stats(answer_ms), "answered": answered,
            "query_rss_mb": round(peak_rss_mb())}


def child(args: list[str]) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its last stdout line is the JSON result."""
    out = subprocess.run([sys.executable, "-m", "bench.query_bench", *args], check=True,
                         capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=1, help="passes over the 56 questions")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached stores")
    parser.add_argument("--retriever", choices=["hybrid", "dense", "bm25"], default="hybrid",
                        help="retrieval mode to time (default: hybrid, the product default)")
    parser.add_argument("--candidates", type=int, default=None,
                        help="passages each ranking contributes (default: RAG_CANDIDATES' "
                        "default)")
    parser.add_argument("--step", choices=["build", "query"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "build":
        print(json.dumps(build(args.sizes[0], args.path)))
        return
    if args.step == "query":
        print(json.dumps(query(args.path, args.runs, args.retriever, args.candidates)))
        return
    base_passages()  # embed the real passages once, outside the timed children
    rows = []
    for size in args.sizes:
        path = OUT / f"store-{size}"
        meta = path / "build.json"
        if args.rebuild or not meta.exists():
            shutil.rmtree(path, ignore_errors=True)
            built = child(["--step", "build", "--sizes", str(size), "--path", str(path)])
            meta.write_text(json.dumps(built))
        built = json.loads(meta.read_text())
        got = child(["--step", "query", "--sizes", str(size), "--path", str(path),
                     "--runs", str(args.runs), "--retriever", args.retriever,
                     *(["--candidates", str(args.candidates)] if args.candidates else [])])
        print(json.dumps({**built, **got}), file=sys.stderr)
        rows.append([built["size"], *got["store"], *got["retrieve"], *got["answer"],
                     f"{got['answered']}/{got['queries']}", got["query_rss_mb"],
                     built["disk_mb"], built["build_s"], built["build_rss_mb"]])
    print(table(["passages", "Chroma query p50 ms", "p95", "retrieval p50 ms", "p95",
                 "extractive answer p50 ms", "p95", "answered", "query peak RSS MB",
                 "Chroma on disk MB", "build s", "build peak RSS MB"], rows))


if __name__ == "__main__":
    main()
