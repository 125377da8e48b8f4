"""The extractive answerer's cost and what capping its embedded sentences changes.

On the same retrieved passages for every dev question, compose answers embedding every
candidate sentence (the reference) and only the best ``max_embedded`` by word overlap:
CPU per answer, sentences embedded, answers identical to the reference, and answers that
contain a gold answer string. Needs the 1k store from ``bench.query_bench``.

    python -m bench.extractive_bench --caps 0 8 12 16 24
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench.common import QUESTIONS, CountingEmbedder, table
from bench.query_bench import OUT
from index.embedder import MINILM_NAME
from index.store import PassageStore, open_client
from rag.answerers import ExtractiveAnswerer, ExtractiveOptions
from rag.gate import AnswerGate
from rag.retrieve import DenseRetriever
from ui.wiring import shared_language


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[0, 8, 12, 16, 24],
                        help="max_embedded values; 0 means no cap (the reference)")
    parser.add_argument("--size", type=int, default=1000, help="which query_bench store")
    args = parser.parse_args()
    records = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    store = PassageStore(open_client(OUT / f"store-{args.size}", None), "articles", MINILM_NAME)
    embedder = CountingEmbedder()
    retriever = DenseRetriever(store, embedder)
    retrieved = [retriever.retrieve(r["question"], 5) for r in records]
    reference: list[str] = []
    rows: list[list[Any]] = []
    for cap in args.caps:
        answerer = ExtractiveAnswerer(embedder, AnswerGate(shared_language()),
                                      ExtractiveOptions(max_embedded=cap or None),
                                      cache_size=0)
        embedder.texts, cpu, texts = 0, time.process_time(), []
        for r, passages in zip(records, retrieved, strict=True):
            texts.append(answerer.compose(r["question"], passages).text)
        cpu = time.process_time() - cpu
        reference = reference or texts
        same = sum(a == b for a, b in zip(texts, reference, strict=True))
        gold = sum(any(g.strip("“”\"").lower() in t.lower() for g in r["answers"])
                   for r, t in zip(records, texts, strict=True))
        rows.append([cap or "all", f"{1000 * cpu / len(records):.0f}",
                     f"{embedder.texts / len(records):.1f}", f"{same}/{len(records)}",
                     f"{sum(bool(t) for t in texts)}", f"{gold}/{len(records)}"])
    print(table(["max_embedded", "CPU ms per answer", "sentences embedded per answer",
                 "identical to 'all'", "answered", "contains a gold answer"], rows))


if __name__ == "__main__":
    main()
