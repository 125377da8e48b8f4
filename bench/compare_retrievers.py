"""Side by side on the same passages and embedder: LlamaIndex's plain VectorStoreIndex
retriever (what a newcomer writes) against our dense, BM25 and hybrid retrieval.

Ingest the articles once (re-ingest is a no-op), then run, e.g.:

    rag --data-dir /tmp/rqa --collection dev ingest ../shared/eval/realtimeqa-dev/articles.jsonl
    python bench/compare_retrievers.py --data-dir /tmp/rqa --collection dev \\
        --questions ../shared/eval/realtimeqa-dev/questions.jsonl

The LlamaIndex row gets the very passages and vectors stored in Chroma (TextNodes carrying
their embeddings, title in metadata), so it does not spend minutes re-embedding what the
same model already embedded; its query goes through our embedder wrapped by
``index.embedder.as_llama_index``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from index.embedder import Embedder, as_llama_index
from index.filters import Filters
from rag.answerers import ExtractiveAnswerer
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.eval import Ask, EvalReport, evaluate, load_questions
from rag.gate import AnswerGate
from rag.result import RetrievedPassage
from rag.retrieve import Retriever
from ui.settings import load_settings
from ui.wiring import build_embedder, build_retriever, build_store, shared_language


class LlamaIndexRetriever:
    """``VectorStoreIndex(nodes).as_retriever()``: in-memory exact cosine over our passages."""

    name = "llama-index VectorStoreIndex"

    def __init__(self, client: Any, collection: str, embedder: Embedder) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import TextNode

        nodes: list[TextNode] = []
        chroma = client.get_collection(collection)
        for offset in range(0, chroma.count(), 2000):
            got = chroma.get(include=["embeddings", "documents", "metadatas"], limit=2000,
                             offset=offset)
            for pid, vec, doc, meta in zip(got["ids"], got["embeddings"], got["documents"],
                                           got["metadatas"], strict=True):
                nodes.append(TextNode(id_=pid, text=doc or "", embedding=[float(x) for x in vec],
                                      metadata={**meta}))
        self._index = VectorStoreIndex(nodes, embed_model=as_llama_index(embedder))

    def retrieve(self, question: str, k: int, filters: Filters | None = None,
                 as_of: date | None = None) -> list[RetrievedPassage]:
        hits = self._index.as_retriever(similarity_top_k=k).retrieve(question)
        out = []
        for hit in hits:
            m = hit.node.metadata
            text = hit.node.get_content()
            out.append(RetrievedPassage(
                passage_id=hit.node.node_id, article_id=str(m.get("article_id", "")),
                title=str(m.get("title", "")), source=str(m.get("source", "")),
                url=str(m.get("url", "")), published=str(m.get("published", "")), text=text,
                start=int(m.get("start", 0)), end=int(m.get("end", 0)),
                score=float(hit.score or 0.0)))
        return out


def run(retriever: Retriever, questions: Path, embedder: Embedder, top_k: int,
        answers: bool, use_dates: bool = False) -> tuple[dict[str, Any], float]:
    gate = AnswerGate(shared_language())
    assistant = Assistant(retriever, ExtractiveAnswerer(embedder, gate), CitationChecker(embedder),
                          gate, top_k)
    ask: Ask | None = (
        (lambda q, d, history, filters: assistant.ask(q, top_k, filters, history, as_of=d))
        if answers else None)
    started = time.perf_counter()
    report: EvalReport = evaluate(load_questions(questions), retriever.retrieve, ask,
                                  use_dates=use_dates)
    return report.metrics(), time.perf_counter() - started


def table(rows: Sequence[tuple[str, dict[str, Any]]], keys: Sequence[str]) -> str:
    lines = ["| retriever | " + " | ".join(keys) + " |",
             "|---|" + "---|" * len(keys)]
    for name, m in rows:
        cells = ["-" if m[k] is None else f"{m[k]:.3f}" if isinstance(m[k], float)
                 else str(m[k]) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--no-answers", action="store_true", help="retrieval metrics only")
    parser.add_argument("--only", nargs="*", default=None,
                        help="rows to run: llama-index dense bm25 hybrid")
    args = parser.parse_args()
    settings = load_settings(None, data_dir=args.data_dir, collection=args.collection)
    store = build_store(settings)
    embedder = build_embedder(settings)
    wanted = args.only or ["llama-index", "dense", "bm25", "hybrid"]
    rows: list[tuple[str, dict[str, Any]]] = []
    for name in wanted:
        retriever: Retriever
        if name == "llama-index":
            from index.store import open_client

            retriever = LlamaIndexRetriever(open_client(args.data_dir, None), args.collection,
                                            embedder)
        else:
            retriever = build_retriever(settings.model_copy(update={"retriever": name}),
                                        store, embedder)
        metrics, seconds = run(retriever, args.questions, embedder, args.top_k,
                               not args.no_answers)
        print(f"{retriever.name}: {seconds:.0f} s", file=sys.stderr)
        rows.append((retriever.name, metrics))
    keys = ["hits@1", "hits@5", "hits@10", "mrr@10", "ansin@5"]
    if not args.no_answers:
        keys += ["answer_accuracy", "citation_precision"]
    keys += ["retrieval_p50_ms", "retrieval_p95_ms"]
    print(table(rows, keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
