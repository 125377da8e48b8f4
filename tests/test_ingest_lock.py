"""Two writers on one data folder serialise through a lock, or fail clearly; never corrupt."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from index.lock import LockTimeout, WriteLock
from tests.helpers import (
    SAMPLE_DIR,
    news_records,
    probe_store,
    rag_env,
    run_rag,
    start_rag,
    stop_process,
    write_jsonl,
)


def test_second_writer_waits_for_the_first_and_is_told_why(tmp_path: Path) -> None:
    messages: list[str] = []
    order: list[str] = []
    first = WriteLock(tmp_path, timeout=5)
    first.acquire()

    def second() -> None:
        with WriteLock(tmp_path, timeout=30, on_wait=messages.append, poll=0.05):
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    assert order == [] and thread.is_alive()  # still waiting
    order.append("first done")
    first.release()
    thread.join(timeout=10)
    assert order == ["first done", "second"]
    assert len(messages) == 1
    assert f"pid {os.getpid()}" in messages[0] and str(tmp_path) in messages[0]


def test_lock_wait_gives_up_after_the_timeout(tmp_path: Path) -> None:
    with WriteLock(tmp_path, timeout=0):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="RAG_LOCK_TIMEOUT"):
            WriteLock(tmp_path, timeout=0.3, poll=0.05).acquire()
        assert 0.3 <= time.monotonic() - started < 3
    with WriteLock(tmp_path, timeout=0):  # released on exit: free again
        pass


def test_cli_ingest_fails_clearly_when_the_folder_is_busy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with WriteLock(data, timeout=0):
        done = run_rag("ingest", str(SAMPLE_DIR), env=rag_env(data, RAG_LOCK_TIMEOUT="0"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"rag: error: another ingest (pid {os.getpid()}) is writing to "
                                f"{data}")
    assert not (data / "chroma").exists()  # it never opened the store


def test_two_ingests_at_once_serialise_and_both_land(tmp_path: Path) -> None:
    records = news_records(60)[40:48]
    first = write_jsonl(tmp_path / "first.jsonl", records[:4])
    second = write_jsonl(tmp_path / "second.jsonl", records[4:])
    data = tmp_path / "data"
    env = rag_env(data)
    processes = [start_rag("ingest", str(path), env=env) for path in (first, second)]
    try:
        outputs = [p.communicate(timeout=240) for p in processes]
    finally:
        for process in processes:
            stop_process(process)
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outputs]
    # They overlap: one waits for the other, to store (the write lock) or to embed (one
    # embedder per data folder); the first to get in never waits.
    waited = [err for _, err in outputs if "is writing to" in err or "is embedding" in err]
    assert len(waited) == 1, "exactly one of them waited for the other"
    assert all("4 added" in out for out, _ in outputs)
    probed = probe_store(data)
    assert len(probed["catalog"]) == 8
    assert probed["stored"] == probed["catalog"]


def test_server_upload_takes_turns_with_other_writers(tmp_path: Path, embedder) -> None:
    """An upload while another writer holds the folder waits, then says 503 'busy' in the
    error shape; once the folder is free the same upload succeeds."""
    import httpx

    from tests.server_fixtures import serve_components, settings_for, upload

    data = tmp_path / "data"
    server = serve_components(settings_for(data, lock_timeout=0.5), embedder)
    records = {"records": news_records(60)[40:41]}
    try:
        with WriteLock(data, timeout=0):
            busy = httpx.post(f"{server.url}/api/articles", json=records, timeout=60,
                              params={"wait": 30})
        assert busy.status_code == 503, busy.text
        assert busy.json()["error"]["code"] == "busy"
        assert "RAG_LOCK_TIMEOUT" in busy.json()["error"]["message"]
        free = upload(server.url, json=records)
        assert free["added"] == 1, free
    finally:
        server.stop()
