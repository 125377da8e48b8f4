"""Time to searchable and time to fully embedded for a corpus, through `rag ingest`.

Each row runs the real command in a fresh process on a fresh data folder, as a user would,
and reports wall seconds and the CPU seconds of the command (user + system, all threads):
``rag ingest --no-wait`` (the first stage: stored and searchable by their words), one
question with `rag ask` (answered from BM25 alone: no vector exists yet), then ``rag ingest``
of the same file (the second stage: every waiting passage embedded). One row per embedding
runtime: ``onnxruntime`` is today's embedder, ``auto`` the default (OpenVINO here).

    python -m bench.two_stage_ingest                      # the dev corpus (498 articles)
    python -m bench.two_stage_ingest --runtimes auto       # the default runtime only
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ARTICLES, table

BIN = Path(sys.executable).parent
QUESTION = "Which wildly popular show was recently green lit for a new season?"


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of a `rag` command, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "rag"), *args], env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"rag {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, cpu, done.stdout


def environment(data: Path, runtime: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_DATA_DIR=str(data), RAG_EMBED_RUNTIME=runtime, GRADIO_ANALYTICS_ENABLED="0")
    return env


def passages(stdout: str) -> int:
    found = re.search(r"passages written: (\d+)", stdout)
    return int(found.group(1)) if found else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=Path, default=ARTICLES)
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "auto"])
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.articles}; load average {load}", file=sys.stderr)
    rows: list[list[Any]] = []
    for runtime in args.runtimes:
        with tempfile.TemporaryDirectory() as tmp:
            env = environment(Path(tmp) / "data", runtime)
            w1, c1, out1 = run(["-q", "ingest", "--no-wait", str(args.articles)], env)
            n = passages(out1)
            aw, _, asked = run(["-q", "ask", "--json", QUESTION], env)
            answer = json.loads(asked.splitlines()[-1])
            w2, c2, _ = run(["-q", "ingest", str(args.articles)], env)
            rows.append([runtime, n, f"{w1:.1f}", f"{c1:.1f}", f"{w1 + w2:.1f}",
                         f"{c1 + c2:.1f}", f"{n / w2:.1f}",
                         f"{aw:.1f} s: {str(answer['short_answer'] or answer['answer'])[:40]}"])
            print(rows[-1], file=sys.stderr)
    print(table(["runtime", "passages", "searchable: wall s", "CPU s",
                 "fully embedded: wall s", "CPU s", "embedded passages/s (wall)",
                 f"rag ask after stage 1 (BM25 only): {QUESTION}"], rows))
    print(f"\nload average before {load}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
