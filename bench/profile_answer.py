"""Profile the extractive answer end to end on a query_bench store (pyinstrument).

    python -m bench.profile_answer --size 10000
"""

from __future__ import annotations

import argparse

from bench.common import load_questions
from bench.query_bench import OUT
from index.embedder import MINILM_NAME, MiniLMEmbedder
from index.store import PassageStore, open_client
from rag.answerers import ExtractiveAnswerer
from rag.assistant import Assistant
from rag.citations import CitationChecker
from rag.gate import AnswerGate
from rag.retrieve import DenseRetriever
from ui.wiring import shared_language


def main() -> None:
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    store = PassageStore(open_client(OUT / f"store-{args.size}", None), "articles", MINILM_NAME)
    embedder = MiniLMEmbedder(query_cache=0)
    gate = AnswerGate(shared_language())
    assistant = Assistant(DenseRetriever(store, embedder), ExtractiveAnswerer(embedder, gate),
                          CitationChecker(embedder), gate)
    assistant.ask("warm up")
    profiler = Profiler(interval=0.002)
    with profiler:
        for question in load_questions()[:args.questions]:
            assistant.ask(question)
    print(profiler.output_text(unicode=False, color=False, show_all=False))


if __name__ == "__main__":
    main()
