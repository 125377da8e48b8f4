"""The streamed answer's first event through `rag serve`, at 10k passages.

Starts the real `rag serve` (its own process, loopback port) on the store `bench.query_bench`
builds (``bench/out/store-SIZE``, built first if missing), asks each dev question once
(new to the server: nothing cached) on ``POST /api/query/stream`` and times, from sending
the request: the first Server-Sent Event, and the final ``answer`` event. One client at a
time; the server's CPU seconds over the run come from /proc.

    python -m bench.first_event --size 10000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import httpx

from bench.common import load_questions, median, percentile, table
from bench.query_bench import OUT
from bench.two_servers import cpu_seconds
from tests.helpers import RagServe


def stream_times(url: str, question: str, client: httpx.Client) -> tuple[float, float]:
    """Seconds to the first event and to the answer event of one streamed question."""
    start = time.perf_counter()
    first = 0.0
    with client.stream("POST", f"{url}/api/query/stream", json={"question": question}) as got:
        assert got.status_code == 200, got.read()
        for line in got.iter_lines():
            if line.startswith("event:") and not first:
                first = time.perf_counter() - start
            if line.startswith("event: answer"):
                return first, time.perf_counter() - start
    raise AssertionError("no answer event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000)
    args = parser.parse_args()
    path = OUT / f"store-{args.size}"
    if not (path / "build.json").exists():
        subprocess.run([sys.executable, "-m", "bench.query_bench", "--sizes", str(args.size)],
                       check=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    server = RagServe(path, OUT / "first-event.log").start()
    assert server.process is not None
    questions = load_questions()
    try:
        with httpx.Client(timeout=60) as client:
            stream_times(server.url, "warm up the model and the indexes", client)
            cpu = cpu_seconds(server.process.pid)
            times = [stream_times(server.url, q, client) for q in questions]
            cpu = cpu_seconds(server.process.pid) - cpu
    finally:
        server.stop()
    first = [t[0] * 1000 for t in times]
    answer = [t[1] * 1000 for t in times]
    print(table(["passages", "questions", "first event p50 ms", "p95", "answer event p50 ms",
                 "p95", "server CPU s"],
                [[args.size, len(times), round(median(first)), round(percentile(first, 95)),
                  round(median(answer)), round(percentile(answer, 95)), f"{cpu:.1f}"]]))
    print(f"\nload average before {load}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
