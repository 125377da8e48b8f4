"""The BM25 index at 100k passages: rebuilt from Chroma, or loaded from disk (memory-mapped).

A second `rag serve` of the same data folder (or one that restarts) loads the index the
first one saved instead of rebuilding it. Each step runs in a fresh interpreter on the
store `bench.query_bench` builds (``bench/out/store-SIZE``, built first if missing):

- *rebuild*: read every passage from Chroma, tokenise, index, save (what a stale index costs)
- *load (mmap)*: what `LexicalIndex` does with a saved index whose stamp is current
- *load (in memory)*: the same files read whole (bm25s without ``mmap``), for comparison

Then 56 dev questions are ranked on the loaded index (p50 ms).

    python -m bench.bm25_load --size 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import load_questions, median, peak_rss_mb, table
from bench.query_bench import OUT

STEPS = ["rebuild", "load (mmap)", "load (in memory)"]


def step(name: str, path: Path) -> dict[str, Any]:
    from index.embedder import MINILM_NAME
    from index.lexical import LexicalIndex
    from index.store import PassageStore, open_client

    store = PassageStore(open_client(path, None), "articles", MINILM_NAME, create=False)
    folder = path / "bm25" / "articles"
    base_rss = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    lexical = LexicalIndex(store, folder)
    if name == "load (in memory)":
        import bm25s

        meta = json.loads((folder / "passages.json").read_text())
        bm25s.BM25.load(str(folder / "passages"))
        bm25s.BM25.load(str(folder / "articles"))
        built = {"ids": len(meta["ids"]), "rebuilds": 0}
    else:
        lexical.rank("warm up", 5, 5)
        built = {"ids": len(lexical._current().ids), "rebuilds": lexical.rebuilds}
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ranks = []
    if name != "load (in memory)":
        for question in load_questions():
            start = time.perf_counter()
            lexical.rank(question, 50, 50)
            ranks.append((time.perf_counter() - start) * 1000)
    return {"wall": round(wall, 2), "cpu": round(cpu, 2), **built,
            "rss_mb": round(peak_rss_mb()), "added_rss_mb": round(peak_rss_mb() - base_rss),
            "rank_p50_ms": round(median(ranks), 1) if ranks else None}


def child(name: str, path: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.bm25_load", "--step", name,
                          "--path", str(path)], check=True, capture_output=True,
                         text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.path)))
        return
    path = OUT / f"store-{args.size}"
    if not (path / "build.json").exists():
        subprocess.run([sys.executable, "-m", "bench.query_bench", "--sizes", str(args.size)],
                       check=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    shutil.rmtree(path / "bm25", ignore_errors=True)  # the first step rebuilds from Chroma
    rows = []
    for name in STEPS:
        got = child(name, path)
        rows.append([name, got["ids"], got["wall"], got["cpu"], got["added_rss_mb"],
                     got["rss_mb"], got["rank_p50_ms"] or "-"])
        print(name, got, file=sys.stderr)
    size = sum(f.stat().st_size for f in (path / "bm25").rglob("*") if f.is_file()) / 1e6
    print(table(["step", "passages", "wall s", "CPU s", "RSS added MB", "peak RSS MB",
                 "rank p50 ms (passages + articles)"], rows))
    print(f"\nindex on disk {size:.0f} MB; load average before {load}, after "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; children's CPU "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime:.0f} s user")


if __name__ == "__main__":
    main()
