"""Questions while uploads wait: /api/query latency with nothing waiting, then with 45
uploads queued behind another writer that holds the data folder (a long `rag ingest`).

Before writes were queued, each waiting upload held a server thread for up to
RAG_LOCK_TIMEOUT and questions timed out; now an upload is answered at once (202, or 503
with Retry-After when the queue is full) and questions should not notice.

    python -m bench.upload_flood --uploads 45 --clients 4 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import load_questions, median, percentile, table
from bench.load_bench import Server, run_level
from index.lock import WriteLock

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "articles"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def flood(url: str, count: int) -> tuple[list[float], list[int], list[str]]:
    """``count`` uploads at once: their answer times (ms), statuses, and accepted job ids."""
    async def one(http: httpx.AsyncClient, n: int) -> tuple[float, int, str]:
        body = {"collection": "flood-bench", "records": [
            {"id": f"flood-{n}-{time.time_ns()}", "text": f"Flood report {n}: the river "
             f"in Varsa rose by {n} centimetres overnight, the water board said."}]}
        start = time.perf_counter()
        response = await http.post(f"{url}/api/articles", json=body)
        job = response.json().get("id", "") if response.status_code == 202 else ""
        return (time.perf_counter() - start) * 1000, response.status_code, job

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=count)) \
            as http:
        done = await asyncio.gather(*(one(http, n) for n in range(count)))
    return [d[0] for d in done], [d[1] for d in done], [d[2] for d in done if d[2]]


def settle(url: str, jobs: list[str], timeout: float = 600) -> tuple[float, int]:
    """Seconds until every job has finished, and how many ended 'done'."""
    start = time.monotonic()
    done = 0
    for job in jobs:
        while True:
            state = httpx.get(f"{url}/api/jobs/{job}", timeout=30).json()["status"]
            if state in ("done", "failed"):
                done += state == "done"
                break
            if time.monotonic() - start > timeout:
                raise RuntimeError("the queued uploads did not finish")
            time.sleep(0.1)
    return time.monotonic() - start, done


def query_row(name: str, result: tuple[list[float], int, float, list[float]],
              cpu: float, base: float | None) -> list[Any]:
    latencies, errors, elapsed, _ = result
    p95 = percentile(latencies, 95) if latencies else float("nan")
    ratio = f"{p95 / base:.2f}" if base else "1.00"
    return [name, len(latencies), errors, f"{median(latencies):.0f}", f"{p95:.0f}", ratio,
            f"{elapsed:.1f}", f"{cpu:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=45)
    parser.add_argument("--clients", type=int, default=4, help="concurrent question askers")
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="rag-flood-")) / "data"
    env = {**os.environ, "RAG_DATA_DIR": str(data)}
    subprocess.run([sys.executable, "-m", "ui.cli", "-q", "ingest", str(SAMPLE)], env=env,
                   check=True)
    questions = load_questions()
    with Server(data) as server:
        pid = server.process.pid
        before = cpu_seconds(pid)
        quiet = asyncio.run(run_level(server.url, args.clients, args.seconds, questions))
        quiet_cpu = cpu_seconds(pid) - before
        with WriteLock(data, timeout=0):  # another writer holds the folder
            sent, statuses, jobs = asyncio.run(flood(server.url, args.uploads))
            before = cpu_seconds(pid)
            busy = asyncio.run(run_level(server.url, args.clients, args.seconds, questions))
            busy_cpu = cpu_seconds(pid) - before
        drained, stored = settle(server.url, jobs)
    base = percentile(quiet[0], 95)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); {args.clients} clients asking "
          f"for {args.seconds:.0f} s per phase\n")
    print(table(["phase", "answers", "errors", "p50 ms", "p95 ms", "p95 vs quiet",
                 "seconds", "server CPU s"],
                [query_row("nothing waiting", quiet, quiet_cpu, None),
                 query_row(f"{args.uploads} uploads waiting on the lock", busy, busy_cpu,
                           base)]))
    print(f"\n{args.uploads} uploads sent at once while the folder was locked: "
          f"{statuses.count(202)} accepted (202), {statuses.count(503)} told to retry "
          f"(503), {len(statuses) - statuses.count(202) - statuses.count(503)} other; "
          f"answered in p50 {median(sent):.0f} ms, p95 {percentile(sent, 95):.0f} ms, "
          f"max {max(sent):.0f} ms.")
    print(f"After the lock was released the {len(jobs)} accepted uploads were stored in "
          f"{drained:.1f} s ({stored} done).")


if __name__ == "__main__":
    main()
