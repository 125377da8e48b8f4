"""Ingest throughput: the embedder alone (the floor), our ingest, and LlamaIndex's pipeline.

All three run in one process on the same passage texts with the same loaded embedder, in
interleaved rounds, so the ratios compare pipeline overhead rather than machine load.
Then: re-ingest of the unchanged articles (must embed nothing) and of the corpus with 10% of
its articles changed.

    python -m bench.ingest_bench --articles 10 --rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import CountingEmbedder, load_articles, measure, table, timer
from index.embedder import LazyEmbedder, as_llama_index
from index.ingest import SplitOptions, embedding_text, ingest_results
from index.passages import split_article
from index.store import PassageStore, open_client
from index.types import Article


def new_store(root: Path, name: str, model: str) -> PassageStore:
    return PassageStore(open_client(root / name, None), "articles", model)


def llama_collection(path: Path) -> Any:
    """An empty Chroma collection for LlamaIndex's store (opened outside the timing, as ours)."""
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    return client.get_or_create_collection("articles", embedding_function=None)


def llama_index_pipeline(collection: Any, embedder: Any, texts: list[str],
                         articles: list[Article]) -> int:
    """``VectorStoreIndex.from_documents`` into Chroma, one Document per passage.

    Metadata is kept out of the embedded text so both pipelines embed identical strings.
    """
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore  # imported before timing

    store = ChromaVectorStore(chroma_collection=collection)
    by_title = {a.title: a for a in articles}
    docs = [Document(text=t, metadata={"title": t.split("\n", 1)[0],
                                       "source": by_title.get(t.split("\n", 1)[0],
                                                              articles[0]).source},
                     excluded_embed_metadata_keys=["title", "source"]) for t in texts]
    VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(
        vector_store=store), embed_model=as_llama_index(embedder), show_progress=False)
    return int(collection.count())


PIPELINES = ["floor", "ours", "llama"]


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest round's wall and the least CPU: the figures least inflated by other load."""
    return min(w for w, _ in runs), min(c for _, c in runs)


def changed(articles: list[Article], every: int) -> list[Article]:
    """Every ``every``-th article gets an extra closing sentence (same id, new hash)."""
    return [dataclasses.replace(a, text=a.text + "\n\nThis article was updated.")
            if i % every == 0 else a for i, a in enumerate(articles)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=30, help="articles to ingest")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all)")
    parser.add_argument("--batch", type=int, default=32, help="embedding batch size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per pipeline")
    args = parser.parse_args()

    with timer() as import_s:  # llama-index's imports take seconds: kept out of its timing
        import llama_index.core
        import llama_index.vector_stores.chroma  # noqa: F401
    articles = load_articles(limit=args.articles)
    options = SplitOptions()
    texts = [embedding_text(a, p, options) for a in articles
             for p in split_article(a, options.max_words, options.overlap_words)]
    with timer() as load_s:
        embedder = CountingEmbedder(threads=args.threads, batch_size=args.batch)
    embedder.embed(texts[:8])  # warm-up: first onnxruntime call allocates its buffers
    n = len(texts)
    print(f"{len(articles)} articles, {n} passages; model load {load_s():.2f} s; "
          f"llama-index imports {import_s():.1f} s (not counted below)\n")

    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in PIPELINES}
        for r in range(args.rounds):  # interleaved, order rotated: load drift hits all three
            for name in PIPELINES[r % 3:] + PIPELINES[:r % 3]:
                if name == "floor":
                    wall, cpu, _ = measure(lambda: embedder.embed(texts))
                elif name == "ours":
                    store = new_store(root, f"ours{r}", embedder.name)
                    wall, cpu, report = measure(partial(
                        ingest_results, articles, store, embedder, options=options,
                        progress=False))
                    assert report.passages == n, (report.passages, n)
                else:
                    collection = llama_collection(root / f"llama{r}")
                    wall, cpu, stored = measure(partial(
                        llama_index_pipeline, collection, embedder, texts, articles))
                    assert stored == n, (stored, n)
                runs[name].append((wall, cpu))
        floor = best(runs["floor"])
        ours, llama = best(runs["ours"]), best(runs["llama"])

        def row(name: str, wall: float, cpu: float, note: str = "") -> list[Any]:
            return [name, f"{wall:.1f}", f"{n / wall:.1f}", f"{floor[0] / wall:.2f}",
                    f"{cpu:.1f}", f"{floor[1] / cpu:.2f}", note]

        walls = {k: ", ".join(f"{w:.0f}" for w, _ in v) for k, v in runs.items()}
        rows.append(row("embedder alone (floor)", *floor, f"wall s per round: {walls['floor']}"))
        rows.append(row("ours (index.ingest)", *ours,
                        f"{llama[0] / ours[0]:.2f}x LlamaIndex (wall), "
                        f"{llama[1] / ours[1]:.2f}x (CPU); rounds: {walls['ours']}"))
        rows.append(row("LlamaIndex from_documents + ChromaVectorStore", *llama,
                        f"rounds: {walls['llama']}"))
        print(table(["pipeline", "wall s", "passages/s", "of floor (wall)", "CPU s",
                     "of floor (CPU)", "note"], rows))

        # Re-ingest as `rag ingest` runs it: a new process builds the embedder, then ingests.
        with timer() as eager:
            fresh = CountingEmbedder(threads=args.threads)
            again = ingest_results(articles, store, fresh, options=options, progress=False)
        lazy = LazyEmbedder(embedder.name, lambda: CountingEmbedder(threads=args.threads))
        with timer() as lazy_s:
            again = ingest_results(articles, store, lazy, options=options, progress=False)
        assert again.unchanged == len(articles) and not lazy.loaded
        first = ours[0] + load_s()
        edited = changed(articles, 10)
        with timer() as tenth:
            edit = ingest_results(edited, store, embedder, options=options, progress=False)
        print()
        print(table(["run", "seconds", "passages embedded", "speed-up vs first ingest"], [
            ["first ingest (model load + ingest)", f"{first:.2f}", n, "1x"],
            ["re-ingest unchanged, model loaded eagerly", f"{eager():.3f}", fresh.texts,
             f"{first / eager():.0f}x"],
            ["re-ingest unchanged, model loaded lazily (rag ingest)", f"{lazy_s():.3f}",
             "0 (model not loaded)" if not lazy.loaded else "?",
             f"{first / lazy_s():.0f}x"],
            [f"re-ingest, {edit.replaced} of {len(articles)} articles changed",
             f"{tenth():.2f}", f"{edit.embedded} of their {edit.passages} passages",
             f"{first / tenth():.1f}x"],
        ]))


if __name__ == "__main__":
    main()
