"""A Chroma server down at start or killed mid-run: one clear error line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import (
    SAMPLE_DIR,
    ChromaServer,
    OutputWatcher,
    free_port,
    news_records,
    rag_env,
    run_rag,
    start_rag,
    stop_process,
    write_jsonl,
)

pytest_plugins = ["tests.robustness_fixtures"]


def error_lines(stderr: str) -> list[str]:
    """What the user sees besides progress bars and info logs."""
    return [line for line in stderr.replace("\r", "\n").splitlines()
            if line.startswith("rag: error") or "Traceback" in line or "Error" in line[:20]]


def test_every_command_fails_in_one_line_when_the_server_is_down(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = rag_env(tmp_path / "data", RAG_CHROMA_URL=url)
    for args in (["ingest", str(SAMPLE_DIR)], ["ask", "Who brokered the ceasefire?"],
                 ["list"], ["remove", "some-id"]):
        done = run_rag(*args, env=env, timeout=120)
        assert done.returncode == 2, (args, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith(f"rag: error: cannot open the Chroma store at {url}")
        assert "chroma run" in lines[0]  # says how to fix it


def test_ingest_stops_cleanly_when_the_server_dies_and_resumes_when_it_is_back(
        chroma: ChromaServer, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "dev.jsonl", news_records(34))
    env = rag_env(tmp_path / "data", RAG_CHROMA_URL=chroma.url)
    process = start_rag("ingest", str(path), env=env)
    try:
        watcher = OutputWatcher(process)
        # Embedding has started (the bar is drawn), so nothing is written yet: kill the store.
        assert watcher.wait_for(lambda text: "embedding (" in text, timeout=180)
        chroma.kill()
        _, rest = process.communicate(timeout=120)
    finally:
        stop_process(process)
    stderr = watcher.text + rest
    assert process.returncode == 2, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"rag: error: the Chroma store at {chroma.url} stopped answering")

    chroma.start()  # same folder, same port
    again = run_rag("ingest", "-q", str(path), env=env)
    assert again.returncode == 0, again.stderr
    listed = run_rag("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 34
