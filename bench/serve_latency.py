"""Latency of the served API over the sample article, and the server's memory.

Starts the real app (uvicorn on a free loopback port, in this process) on a temporary data
folder holding examples/articles, then times /api/query, the first event of
/api/query/stream and /v1/chat/completions, one client at a time and several at once.

    .venv/bin/python bench/serve_latency.py [--requests 40] [--concurrency 4]

Figures depend on the machine's load: run it on an idle machine to compare.
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index.ingest import ingest_paths  # noqa: E402
from ui.server import create_app  # noqa: E402
from ui.settings import Settings  # noqa: E402
from ui.wiring import build  # noqa: E402

QUESTIONS = [
    "What did the US ambassador to the UN say Russia was doing in Syria?",
    "Who called the Security Council meeting about Aleppo?",
    "How many civilians have died in the shelling of Aleppo?",
    "What did the French foreign minister say about Russia and Iran?",
    "Which countries accused Russia of violating the ceasefire?",
    "What did the joint statement on Sunday say?",
    "What is happening to the humanitarian convoys?",
    "Who backs the Syrian regime besides Russia?",
]


def start(app: object) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    while not server.started:
        time.sleep(0.05)
    return url, server, thread


def timed(fn: object, n: int, concurrency: int) -> list[float]:
    def one(i: int) -> float:
        start = time.perf_counter()
        fn(QUESTIONS[i % len(QUESTIONS)])  # type: ignore[operator]
        return time.perf_counter() - start

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


def report(name: str, seconds: list[float], wall: float) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"{name:<44} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms   "
          f"p95 {p95:7.1f} ms   {len(ms) / wall:6.1f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        started = time.perf_counter()
        components = build(settings)
        ingest_paths([ROOT / "examples" / "articles"], components.store, components.embedder,
                     max_bytes=10_000_000, progress=False)
        app = create_app(settings, components)
        url, server, thread = start(app)
        print(f"startup (build + ingest sample + app): {time.perf_counter() - started:.1f} s")
        client = httpx.Client(base_url=url, timeout=120)

        def query(q: str) -> None:
            client.post("/api/query", json={"question": q}).raise_for_status()

        def first_event(q: str) -> None:
            with client.stream("POST", "/api/query/stream", json={"question": q}) as r:
                next(r.iter_lines())

        def openai(q: str) -> None:
            client.post("/v1/chat/completions", json={
                "model": "rag-articles", "messages": [{"role": "user", "content": q}],
            }).raise_for_status()

        for name, fn in [("POST /api/query", query),
                         ("POST /api/query/stream (first event)", first_event),
                         ("POST /v1/chat/completions", openai)]:
            for concurrency in (1, args.concurrency):
                wall = time.perf_counter()
                seconds = timed(fn, args.requests, concurrency)
                report(f"{name}, {concurrency} client(s)", seconds,
                       time.perf_counter() - wall)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process: {rss:.0f} MB")
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
