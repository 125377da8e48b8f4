"""Two `rag serve` processes on one `chroma run`: freshness delay and errors under ingest.

Both servers share one data folder (one machine: one BM25 index on disk, one embedder at a
time) and one Chroma server. Measured:

1. *freshness*: an article uploaded through server A (``?wait=60``: returns once stored),
   then a question about it asked of server B every 0.1 s until B cites it; the delay is
   from the upload request to B's first citing answer;
2. *ingest while answering*: N dev articles uploaded through A in one job while two clients
   ask B and A the dev questions, until the job is done and every passage is embedded;
   answers, errors (any status but 200), passages returned twice, latency.

    python -m bench.two_servers --fresh 10 --articles 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import ARTICLES, QUESTIONS, load_questions, median, percentile, table
from tests.helpers import ChromaServer, RagServe


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def freshness(a: RagServe, b: RagServe, n: int) -> list[list[Any]]:
    rows, delays, stored = [], [], []
    for i in range(n):
        word = f"zorvex{i}"
        record = {"id": f"fresh-{i}", "title": f"Town of {word.title()} counts its storks",
                  "source": "fresh.example", "published": "2024-05-02",
                  "text": f"Volunteers in the town of {word.title()} counted {300 + i} white "
                          f"storks this spring, the local bird club said on Tuesday."}
        question = f"How many white storks were counted in {word.title()}?"
        start = time.perf_counter()
        got = httpx.post(f"{a.url}/api/articles", params={"wait": 60},
                         json={"records": [record]}, timeout=90)
        assert got.status_code == 200, got.text
        stored.append(time.perf_counter() - start)
        while time.perf_counter() - start < 60:
            answer = httpx.post(f"{b.url}/api/query", json={"question": question},
                                timeout=60).json()
            if any(c["article_id"] == record["id"] for c in answer["citations"]):
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"server B never cited {record['id']}")
        delays.append(time.perf_counter() - start)
    rows.append(["upload stored by A (wait=60 returns)", n, f"{median(stored):.2f}",
                 f"{max(stored):.2f}"])
    rows.append(["upload to B's first citing answer", n, f"{median(delays):.2f}",
                 f"{max(delays):.2f}"])
    return rows


def ingest_while_answering(a: RagServe, b: RagServe, articles: int) -> dict[str, Any]:
    records = [json.loads(line) for line in ARTICLES.read_text().splitlines()[:articles]]
    questions = load_questions(QUESTIONS)
    stop = threading.Event()
    latencies: list[float] = []
    counts = {"answers": 0, "errors": 0, "duplicates": 0}
    lock = threading.Lock()

    def client(server: RagServe, offset: int) -> None:
        n = offset
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    got = http.post(f"{server.url}/api/query",
                                    json={"question": questions[n % len(questions)]})
                    ok = got.status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - start
                n += 1
                with lock:
                    counts["answers" if ok else "errors"] += 1
                    if ok:
                        latencies.append(elapsed)
                        ids = [p["passage_id"] for p in got.json()["passages"]]
                        counts["duplicates"] += len(ids) - len(set(ids))

    clients = [threading.Thread(target=client, args=(server, k)) for k, server in
               enumerate((b, a))]
    for thread in clients:
        thread.start()
    start = time.perf_counter()
    job = httpx.post(f"{a.url}/api/articles", json={"records": records}, timeout=120).json()
    searchable = embedded = None
    while True:
        state = httpx.get(f"{a.url}/api/jobs/{job['id']}", timeout=30).json()
        waiting = httpx.get(f"{b.url}/api/health", timeout=30).json()["store"]["waiting"]
        if state["status"] != "queued" and state["status"] != "running" and searchable is None:
            searchable = time.perf_counter() - start
        if searchable is not None and waiting == 0:
            embedded = time.perf_counter() - start
            break
        time.sleep(0.5)
    stop.set()
    for thread in clients:
        thread.join()
    ms = [x * 1000 for x in latencies]
    return {**counts, "job": state["status"], "searchable_s": round(searchable, 1),
            "embedded_s": round(embedded or 0, 1), "p50_ms": round(median(ms)),
            "p95_ms": round(percentile(ms, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", type=int, default=10, help="single-article uploads timed")
    parser.add_argument("--articles", type=int, default=100, help="articles of the big upload")
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chroma = ChromaServer(root / "chroma")
        chroma.start()
        env = {"RAG_CHROMA_URL": chroma.url, "RAG_EMBED_THREADS": "0"}
        a = RagServe(root / "data", root / "a.log", **env).start()
        b = RagServe(root / "data", root / "b.log", **env).start()
        assert a.process is not None and b.process is not None
        cpu0 = cpu_seconds(a.process.pid), cpu_seconds(b.process.pid)
        try:
            rows = freshness(a, b, args.fresh)
            result = ingest_while_answering(a, b, args.articles)
            cpu = (cpu_seconds(a.process.pid) - cpu0[0], cpu_seconds(b.process.pid) - cpu0[1])
        finally:
            a.stop()
            b.stop()
            chroma.stop()
    print(f"load average before {load}", file=sys.stderr)
    print(table(["step", "times", "p50 s", "max s"], rows))
    print()
    print(table(["articles uploaded to A", "job", "stored (s)", "all embedded (s)",
                 "answers (A and B)", "errors", "passages returned twice", "answer p50 ms",
                 "p95 ms", "server CPU s (A, B)"],
                [[args.articles, result["job"], result["searchable_s"], result["embedded_s"],
                  result["answers"], result["errors"], result["duplicates"], result["p50_ms"],
                  result["p95_ms"], f"{cpu[0]:.0f}, {cpu[1]:.0f}"]]))
    print(f"\nload average before {load}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
