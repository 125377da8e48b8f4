"""Crash safety at full size: kill -9 an ingest several times, rerun, compare with a clean one.

    python bench/crash_ingest.py ARTICLES.jsonl [--kills 3] [--clean] [--out bench/out/crash]

Each round starts `rag ingest` on the same data folder, waits until the progress bar passes
a random point, and kills it with SIGKILL; a last run finishes the ingest. Then the store is
checked: every stored passage belongs to an article in the catalog, every catalog record has
exactly its passages 0..n-1, the ids are those the splitter gives, and (with --clean) ids,
texts and catalog equal those of an uninterrupted ingest into a second folder. Prints one
JSON summary; exit 1 if any check failed. Takes several minutes on the 498 dev articles.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from index.clean import clean_article
from index.passages import split_article
from index.readers import read_paths
from index.store import PassageStore, open_client
from index.types import Article

BIN = Path(sys.executable).parent
PROGRESS = re.compile(r"(\d+)/(\d+) \[")
MODEL = "all-MiniLM-L6-v2-onnx-int8"


def rag(args: list[str], data: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RAG_") or k == "RAG_EMBED_THREADS"}
    env["RAG_DATA_DIR"] = str(data)
    return subprocess.Popen([str(BIN / "rag"), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_and_kill(articles: Path, data: Path, fraction: float, timeout: float) -> dict[str, Any]:
    """Start an ingest, SIGKILL it once it has embedded ``fraction`` of its passages."""
    process = rag(["ingest", str(articles)], data)
    assert process.stderr is not None
    fd, text, started = process.stderr.fileno(), "", time.monotonic()
    killed_at = None
    while time.monotonic() - started < timeout:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk.decode("utf-8", errors="replace")
        found = PROGRESS.findall(text)
        if found and int(found[-1][0]) >= fraction * int(found[-1][1]):
            process.send_signal(signal.SIGKILL)
            killed_at = f"{found[-1][0]}/{found[-1][1]}"
            break
    if process.poll() is None and killed_at is None:
        process.kill()
    process.communicate(timeout=60)
    return {"fraction": round(fraction, 2), "killed_at_passages": killed_at,
            "returncode": process.returncode, "seconds": round(time.monotonic() - started, 1)}


def finish(articles: Path, data: Path) -> dict[str, Any]:
    started = time.monotonic()
    process = rag(["ingest", "-q", str(articles)], data)
    out, err = process.communicate()
    return {"returncode": process.returncode, "summary": out.strip(), "stderr": err.strip()[-500:],
            "seconds": round(time.monotonic() - started, 1)}


def contents(data: Path) -> dict[str, Any]:
    """Catalog, passage ids and texts of a data folder (opened fresh in this process)."""
    store = PassageStore(open_client(data, None), "articles", MODEL, where=str(data))
    passages = {p.id: (p.article_id, p.number, p.text) for p in store.all_passages()}
    catalog = {a.id: (a.hash, a.passages) for a in store.articles()}
    return {"passages": passages, "catalog": catalog}


def check(got: dict[str, Any], expected_ids: set[str]) -> list[str]:
    problems = []
    per_article: dict[str, list[int]] = {}
    for article_id, number, _ in got["passages"].values():
        per_article.setdefault(article_id, []).append(number)
    for article_id, numbers in per_article.items():
        if article_id not in got["catalog"]:
            problems.append(f"{article_id}: passages stored but not in the catalog")
        elif sorted(numbers) != list(range(got["catalog"][article_id][1])):
            problems.append(f"{article_id}: passages {sorted(numbers)} but catalog says "
                            f"{got['catalog'][article_id][1]}")
    for article_id in set(got["catalog"]) - set(per_article):
        problems.append(f"{article_id}: in the catalog with no passages")
    if set(got["passages"]) != expected_ids:
        missing = len(expected_ids - set(got["passages"]))
        extra = len(set(got["passages"]) - expected_ids)
        problems.append(f"passage ids differ from the splitter's: {missing} missing, {extra} extra")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("articles", type=Path)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="also compare with a clean ingest")
    parser.add_argument("--out", type=Path, default=Path("bench/out/crash"))
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    shutil.rmtree(args.out, ignore_errors=True)
    crashed, clean = args.out / "crashed", args.out / "clean"
    rng = random.Random(args.seed)
    articles = [r for r in read_paths([args.articles], 100_000_000) if isinstance(r, Article)]
    unique = {a.id: clean_article(a) for a in articles}  # as ingest splits them
    expected = {p.id for a in unique.values() for p in split_article(a, 200, 40)}

    # Kill points spread over the run: each rerun only has what is left to do.
    kills = [run_and_kill(args.articles, crashed, rng.uniform(0.1, 0.9), args.timeout)
             for _ in range(args.kills)]
    last = finish(args.articles, crashed)
    got = contents(crashed)
    problems = check(got, expected)
    summary: dict[str, Any] = {"articles": len(unique), "expected_passages": len(expected),
                               "kills": kills, "final_run": last,
                               "stored_passages": len(got["passages"]),
                               "catalog_articles": len(got["catalog"])}
    if args.clean:
        summary["clean_run"] = finish(args.articles, clean)
        reference = contents(clean)
        if reference["passages"] != got["passages"]:
            problems.append("passages differ from the clean ingest")
        if reference["catalog"] != got["catalog"]:
            problems.append("catalog differs from the clean ingest")
    summary["problems"] = problems
    print(json.dumps(summary, indent=2))
    return 1 if problems or last["returncode"] != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
