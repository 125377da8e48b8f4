"""Concurrent queries through the HTTP server: throughput and latency with 1, 4 and 16 clients.

Starts ``rag serve`` as its own process on a free loopback port over a query_bench store
(run ``python -m bench.query_bench --sizes 10000`` first), then for each client count runs
that many async httpx clients posting /api/query, bounded in time. Two workloads: new
questions (a fresh server per level, each dev question once) and steady load (one server,
the dev questions with varied lead-ins, looping, so retrieved sentences repeat).

    python -m bench.load_bench --size 10000 --clients 1 4 16 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import load_questions, median, percentile, table
from bench.query_bench import OUT

LEAD_INS = ["", "Tell me: ", "Quick question: ", "I wonder: ", "Do you know: ",
            "Please answer: ", "One more: ", "Question: "]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_COLLECTION": "articles",
           "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost",
           "RAG_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL)


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 180) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the server did not become ready")


def server_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of the server process."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


async def run_level(url: str, clients: int, seconds: float, questions: list[str],
                    once: bool = False) -> tuple[list[float], int, float, list[float]]:
    """``clients`` loops posting questions until the time is up (or, with ``once``, every
    question was asked): answer latencies (ms), errors, elapsed seconds, and latencies of
    /api/health probed meanwhile (an event loop blocked by CPU-bound work would show here)."""
    latencies: list[float] = []
    probes: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    cursor = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, cursor
        while time.monotonic() < deadline and not (once and cursor >= len(questions)):
            question = questions[cursor % len(questions)]
            cursor += 1
            start = time.perf_counter()
            try:
                response = await http.post(f"{url}/api/query", json={"question": question})
                ok = response.status_code == 200 and "answer" in response.json()
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1

    busy = True

    async def probe(http: httpx.AsyncClient) -> None:
        while busy and time.monotonic() < deadline:
            start = time.perf_counter()
            await http.get(f"{url}/api/health")
            probes.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http, \
            httpx.AsyncClient(timeout=120) as side:
        start = time.perf_counter()
        prober = asyncio.create_task(probe(side))
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - start
        busy = False
        await prober
    return latencies, errors, elapsed, probes


def row(clients: int, result: tuple[list[float], int, float, list[float]],
        pid: int) -> list[Any]:
    latencies, errors, elapsed, probes = result
    rss, peak = server_rss_mb(pid)
    return [clients, len(latencies), errors, f"{len(latencies) / elapsed:.2f}",
            f"{median(latencies):.0f}" if latencies else "-",
            f"{percentile(latencies, 95):.0f}" if latencies else "-",
            f"{median(probes):.0f} / {percentile(probes, 95):.0f}" if probes else "-",
            f"{rss:.0f}", f"{peak:.0f}"]


HEADERS = ["clients", "answers", "errors", "answers/s", "p50 ms", "p95 ms",
           "/api/health p50 / p95 ms during load", "server RSS MB", "server peak RSS MB"]


class Server:
    """``rag serve`` on a free loopback port, stopped on exit."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = start_server(data_dir, self.port)

    def __enter__(self) -> Server:
        self.ready_s = wait_ready(self.url, self.process)
        httpx.post(f"{self.url}/api/query", json={"question": "warm up"}, timeout=120)
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10000, help="which query_bench store")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=30, help="time limit of each level")
    args = parser.parse_args()
    data_dir = OUT / f"store-{args.size}"
    if not (data_dir / "chroma").exists():
        raise SystemExit(f"no store at {data_dir}: run python -m bench.query_bench first")
    dev = load_questions()
    print(f"{args.size} passages; at most {args.seconds:.0f} s per level\n")
    cold = []
    for clients in args.clients:  # a fresh server per level: every question and sentence new
        with Server(data_dir) as server:
            result = asyncio.run(run_level(server.url, clients, args.seconds, dev, once=True))
            cold.append(row(clients, result, server.process.pid))
    print("New questions (fresh server per level, each of the 56 dev questions once):\n")
    print(table(HEADERS, cold))
    questions = [lead + q for lead in LEAD_INS for q in dev]
    warm = []
    with Server(data_dir) as server:
        for clients in args.clients:
            warm.append(row(clients, asyncio.run(
                run_level(server.url, clients, args.seconds, questions)), server.process.pid))
    print("\nSteady load (one server, the dev questions with 8 lead-ins, looping; retrieved "
          "sentences repeat, so the answerer's sentence cache is warm):\n")
    print(table(HEADERS, warm))


if __name__ == "__main__":
    main()
