"""Run inside `unshare --mount --map-root-user`: a small disk of its own (tmpfs), filled up
while the `rag` command and `rag serve` use a store on it. Prints what each step gave, as
JSON, for tests/test_attack_full_disk.py to judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import SAMPLE_DIR, RagServe, news_records, rag_env, run_rag, write_jsonl


def main(root: Path) -> dict[str, object]:
    disk = root / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64M", "tmpfs", str(disk)], check=True)
    data, env = disk / "data", rag_env(disk / "data")
    articles = write_jsonl(root / "more.jsonl", news_records(120)[80:])
    steps: dict[str, object] = {}
    first = run_rag("-q", "ingest", str(SAMPLE_DIR), env=env)
    steps["first"] = [first.returncode, first.stderr]
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    subprocess.run(["fallocate", "-l", str(free - 300_000), str(ballast)], check=True)
    full = run_rag("-q", "ingest", str(articles), env=env)
    steps["full"] = [full.returncode, full.stderr]
    server = RagServe(data, root / "serve.log").start()
    try:
        steps["health"] = httpx.get(f"{server.url}/api/health", timeout=60).json()
        asked = httpx.post(f"{server.url}/api/query", timeout=60,
                           json={"question": "Who called the Security Council meeting?"})
        steps["query"] = [asked.status_code, asked.json()]
    finally:
        server.stop()
    ballast.unlink()
    again = run_rag("-q", "ingest", str(articles), env=env)
    steps["freed"] = [again.returncode, again.stdout, again.stderr]
    listed = run_rag("list", "--json", env=env)
    steps["listed"] = len(json.loads(listed.stdout))
    subprocess.run(["umount", str(disk)], check=False)
    return steps


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
