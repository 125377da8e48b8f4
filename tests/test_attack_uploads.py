"""Attacks on the ways articles get in, each against a real `rag serve` on loopback: the
chat's upload handler (real Gradio queue calls), re-uploads, a flood of uploads while the
store is busy, huge bodies, odd names and ids."""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from index.lock import WriteLock
from tests.helpers import ROOT, SAMPLE_DIR, RagServe, file_value, gradio_call, rag_env, run_rag
from ui.chat import NOT_UPLOADED

README_LINE = "Ask questions about a collection of articles and get short answers"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagServe]:
    """`rag serve` over the sample article, with Gradio's cache and the temp folder in
    places of the test's own, so what lands there can be inspected."""
    root = tmp_path_factory.mktemp("attack-uploads")
    data = root / "data"
    assert run_rag("-q", "ingest", str(SAMPLE_DIR), env=rag_env(data)).returncode == 0
    (root / "tmp").mkdir()
    server = RagServe(data, root / "serve.log", GRADIO_TEMP_DIR=str(root / "gradio"),
                      TMPDIR=str(root / "tmp"), RAG_MAX_FILE_MB="2", RAG_WRITE_QUEUE="4")
    yield server.start()
    server.stop()


def articles(server: RagServe, collection: str | None = None) -> list[dict[str, Any]]:
    params = {"collection": collection} if collection else {}
    listed = httpx.get(f"{server.url}/api/articles", params=params, timeout=30)
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()["articles"]
    return found


def upload_files(server: RagServe, files: list[tuple[str, bytes]], collection: str,
                 wait: float = 120) -> dict[str, Any]:
    """POST /api/articles and wait for the job; returns its result."""
    response = httpx.post(f"{server.url}/api/articles", params={"wait": wait},
                          files=[("files", (n, b, "text/plain")) for n, b in files],
                          data={"collection": collection}, timeout=wait + 30)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def files_holding(folder: Path, text: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()
            and text.encode() in p.read_bytes()]


# -- 1. the chat's upload handler --------------------------------------------------------------


def outcome_text(message: dict[str, Any]) -> str:
    """What the page shows for a call: the outcome box, or Gradio's error."""
    output = message["output"]
    assert isinstance(output, dict)
    if not message.get("success"):
        return str(output.get("error"))
    return str(output["data"][0])


def test_chat_upload_refuses_server_paths_alike_and_copies_nothing(served: RagServe,
                                                                    tmp_path: Path) -> None:
    before = articles(served)
    cache = Path(served.env["GRADIO_TEMP_DIR"])
    named = {"readme": ROOT / "README.md", "missing": tmp_path / "no-such-file.md",
             "in-cache": cache / ("0" * 64) / "x.md"}
    shown = {key: outcome_text(gradio_call(served.url, "ingest", [[file_value(str(path))], None]))
             for key, path in named.items()}
    # The same words whether the file exists or not: the page is no probe of the disk.
    assert shown["readme"].replace(str(named["readme"]), "P") == \
        shown["missing"].replace(str(named["missing"]), "P")
    assert "added" not in shown["readme"] and "1 article" not in shown["readme"]
    assert NOT_UPLOADED in shown["in-cache"].replace("\\", "")
    assert articles(served) == before
    assert not files_holding(cache, README_LINE)  # Gradio copied nothing into its cache
    for path in named.values():
        assert httpx.get(f"{served.url}/gradio_api/file={path}").status_code in (403, 404)
    answer = httpx.post(f"{served.url}/api/query", timeout=60, json={
        "question": "Which folder holds the embedded Chroma store (RAG_DATA_DIR)?"}).json()
    assert all("RAG_DATA_DIR" not in p["text"] for p in answer["passages"])


def test_chat_ingests_only_this_browsers_upload_then_deletes_gradios_copy(
        served: RagServe) -> None:
    text = b"The Varsa lighthouse was repainted red and white in May, the keeper said."
    with httpx.Client(timeout=60) as mine, httpx.Client(timeout=60) as other:
        sent = mine.post(f"{served.url}/gradio_api/upload",
                         files=[("files", ("lighthouse.txt", text, "text/plain"))])
        assert sent.status_code == 200 and mine.cookies.get("rag_uploader")
        [path] = sent.json()
        assert Path(path).is_file()

        stolen = gradio_call(served.url, "ingest", [[file_value(path)], None], client=other)
        assert NOT_UPLOADED in outcome_text(stolen).replace("\\", "")
        assert Path(path).is_file()  # the owner's upload is untouched

        done = gradio_call(served.url, "ingest", [[file_value(path)], None], client=mine)
        assert "1 added" in outcome_text(done)
        assert not Path(path).exists() and not Path(path).parent.exists()
        assert not files_holding(Path(served.env["GRADIO_TEMP_DIR"]), "Varsa lighthouse")
        assert mine.get(f"{served.url}/gradio_api/file={path}").status_code in (403, 404)

        replayed = gradio_call(served.url, "ingest", [[file_value(path)], None], client=mine)
        assert NOT_UPLOADED in outcome_text(replayed).replace("\\", "")
    assert any(a["source"] == "lighthouse.txt" for a in articles(served))


# -- 2. re-uploading a record file ----------------------------------------------------------------


def records(*ids: str) -> bytes:
    return "".join(json.dumps({"id": i, "title": f"Report {i}", "text": f"Report {i}: the "
                              f"council of Varsa approved budget line {i} on Tuesday."}) + "\n"
                   for i in ids).encode()


def test_reupload_of_a_record_file_keeps_every_record(served: RagServe) -> None:
    first = upload_files(served, [("reports.jsonl", records("a", "b", "c", "d", "e"))],
                         "reupload-test")
    assert first["added"] == 5
    second = upload_files(served, [("reports.jsonl", records("a", "b", "c", "d", "e", "f"))],
                          "reupload-test")
    assert (second["added"], second["unchanged"], second["replaced"]) == (1, 5, 0)
    assert sorted(a["id"] for a in articles(served, "reupload-test")) == list("abcdef")
    third = upload_files(served, [("reports.jsonl", records("b"))], "reupload-test")
    assert (third["added"], third["unchanged"], third["replaced"]) == (0, 1, 0)
    assert len(articles(served, "reupload-test")) == 6  # a shorter file deletes nothing


def test_changed_jsonl_reports_missing_records_and_prunes_only_when_asked(
        tmp_path: Path) -> None:
    env, path = rag_env(tmp_path / "data"), tmp_path / "reports.jsonl"
    path.write_bytes(records("a", "b", "c"))
    assert run_rag("-q", "ingest", str(path), env=env).returncode == 0
    path.write_bytes(records("a", "b", "d"))
    kept = run_rag("-q", "ingest", str(path), env=env)
    assert kept.returncode == 0, kept.stderr
    assert "1 stored article(s) from it are no longer in it; kept" in kept.stderr
    assert "--prune" in kept.stderr
    listed = json.loads(run_rag("list", "--json", env=env).stdout)
    assert sorted(a["id"] for a in listed) == ["a", "b", "c", "d"]
    pruned = run_rag("-q", "ingest", "--prune", str(path), env=env)
    assert pruned.returncode == 0 and "1 pruned" in pruned.stdout
    listed = json.loads(run_rag("list", "--json", env=env).stdout)
    assert sorted(a["id"] for a in listed) == ["a", "b", "d"]


# -- 4. a flood of uploads while another writer holds the store -------------------------------


def test_waiting_uploads_never_starve_questions(served: RagServe) -> None:
    data = Path(served.env["RAG_DATA_DIR"])
    statuses: list[int] = []
    retry_after: list[str] = []
    lock = threading.Lock()

    def send(n: int) -> str | None:
        body = {"collection": "flood-test", "records": [
            {"id": f"flood-{n}", "text": f"Flood report {n}: the river in Varsa rose by "
             f"{n} centimetres overnight, the water board said."}]}
        response = httpx.post(f"{served.url}/api/articles", json=body, timeout=30)
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 503:
                retry_after.append(response.headers.get("retry-after", ""))
        return str(response.json()["id"]) if response.status_code == 202 else None

    with WriteLock(data, timeout=0):  # a long `rag ingest` elsewhere
        with ThreadPoolExecutor(max_workers=45) as pool:
            started = time.monotonic()
            jobs = [j for j in pool.map(send, range(45)) if j]
            answered_in = time.monotonic() - started
        query_started = time.monotonic()
        answer = httpx.post(f"{served.url}/api/query", timeout=25,
                            json={"question": "Who called the Security Council meeting?"})
        query_seconds = time.monotonic() - query_started
        assert answer.status_code == 200 and answer.json()["citations"]
        waiting = httpx.get(f"{served.url}/api/jobs/{jobs[-1]}", timeout=10).json()
        assert waiting["status"] in ("queued", "running")
    print(f"\n45 uploads answered in {answered_in:.1f} s, query {query_seconds:.2f} s")
    assert answered_in < 20 and set(statuses) <= {202, 503}
    assert statuses.count(202) == len(jobs) >= 4
    assert retry_after and all(v.isdigit() for v in retry_after)
    deadline = time.monotonic() + 180
    for job_id in jobs:  # once the other writer is done, every accepted upload is stored
        while (state := httpx.get(f"{served.url}/api/jobs/{job_id}").json())[
                "status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state["status"] == "done" and state["result"]["added"] == 1, state
    assert len(articles(served, "flood-test")) == len(jobs)


# -- 8, 9. bodies past the limits -------------------------------------------------------------


def raw_post(server: RagServe, path: str, headers: dict[str, str], body_bytes: int,
             prefix: bytes = b"", chunk: bytes = b"x" * 65536) -> tuple[str, int]:
    """Send a POST over a raw socket, watching for an answer while the body goes out:
    ``prefix``, then ``chunk`` again and again. Returns the status line and how many body
    bytes were sent before the answer came."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
                *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        sock.sendall("\r\n".join(head).encode())
        sent = 0
        chunked = headers.get("Transfer-Encoding") == "chunked"
        while sent < body_bytes:
            if select.select([sock], [], [], 0)[0]:
                break
            piece = (prefix if sent == 0 and prefix else chunk)[:body_bytes - sent]
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.settimeout(30)
        answer = sock.recv(65536).decode("latin-1")
        return answer.split("\r\n", 1)[0], sent


def test_oversized_upload_is_refused_before_it_is_read(served: RagServe) -> None:
    temp = Path(served.env["TMPDIR"])
    status, sent = raw_post(served, "/api/articles", {
        "Content-Type": "multipart/form-data; boundary=xyz",
        "Content-Length": str(470 * 10**6)}, body_bytes=470 * 10**6)
    assert " 413 " in status and sent < 10 * 10**6
    # No declared length: the file part is cut off at the per-file limit (2 MB here).
    prefix = (b"--xyz\r\nContent-Disposition: form-data; name=\"files\"; "
              b"filename=\"huge.txt\"\r\nContent-Type: text/plain\r\n\r\n")
    status, sent = raw_post(served, "/api/articles", {
        "Content-Type": "multipart/form-data; boundary=xyz", "Transfer-Encoding": "chunked"},
        body_bytes=200 * 10**6, prefix=prefix, chunk=b"y" * 65536)
    assert " 413 " in status and sent < 20 * 10**6
    time.sleep(0.5)
    assert sum(p.stat().st_size for p in temp.rglob("*") if p.is_file()) < 10**6


def test_chat_routes_have_a_body_limit_too(served: RagServe) -> None:
    status, sent = raw_post(served, "/gradio_api/queue/join", {
        "Content-Type": "application/json", "Content-Length": str(155 * 10**6)},
        body_bytes=155 * 10**6)
    assert " 413 " in status and sent < 10 * 10**6
    status, _ = raw_post(served, "/gradio_api/queue/join", {
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        body_bytes=5 * 10**6)
    assert " 413 " in status
    assert httpx.get(f"{served.url}/api/health").json()["status"] == "ok"


# -- 12, 13. names and ids ------------------------------------------------------------------------


def test_uploads_named_in_other_scripts_stay_apart(served: RagServe) -> None:
    tokyo = "東京.txt", b"Tokyo opened a new tram line on Friday, the city said."
    beijing = "北京.txt", b"Beijing opened a new park on Saturday, officials said."
    result = upload_files(served, [tokyo, beijing], "unicode-test")
    assert [f["name"] for f in result["files"]] == ["東京.txt", "北京.txt"]
    again = upload_files(served, [("東京.txt", tokyo[1] + b" It is 9 km long.")],
                         "unicode-test")
    assert again["replaced"] == 1
    stored = articles(served, "unicode-test")
    assert sorted(a["source"] for a in stored) == ["北京.txt", "東京.txt"]
    odd = upload_files(served, [("../../e\u202evil.txt", b"Some text of an article.")],
                       "unicode-test")
    assert odd["files"][0]["name"] == "e_vil.txt"  # no path, no bidi override


def test_a_repeated_id_in_one_request_is_a_failure_naming_it(served: RagServe) -> None:
    body = {"collection": "dup-test", "records": [
        {"id": "same", "text": "The first text of the ferry report, written on Monday."},
        {"id": "same", "text": "A second, different text that claims the same id."}]}
    response = httpx.post(f"{served.url}/api/articles", params={"wait": 60}, json=body,
                          timeout=90)
    result = response.json()["result"]
    assert result["added"] == 1 and result["failed"] == 1
    [outcome] = result["files"]
    assert outcome["status"] == "partial" and outcome["articles"] == 1
    assert any("record 2" in e and "same id 'same'" in e for e in outcome["errors"])
    jsonl = upload_files(served, [("twice.jsonl", records("x", "x"))], "dup-test")
    assert any("twice.jsonl line 2" in e for e in jsonl["files"][0]["errors"])


def test_ids_with_slashes_can_be_removed_over_http(served: RagServe) -> None:
    body = {"collection": "slash-test", "records": [
        {"id": "news/2024/ferry", "text": "The ferry to Grey Island starts on Monday."}]}
    assert httpx.post(f"{served.url}/api/articles", params={"wait": 60}, json=body,
                      timeout=90).json()["status"] == "done"
    gone = httpx.delete(f"{served.url}/api/articles/news/2024/ferry",
                        params={"collection": "slash-test"}, timeout=60)
    assert gone.status_code == 200 and gone.json()["removed"] is True
    assert articles(served, "slash-test") == []


def test_a_token_without_spaces_is_cut_into_passages_of_bounded_size(served: RagServe) -> None:
    body = {"collection": "token-test", "records": [
        {"id": "blob", "text": "Harbour data follows. " + "z" * 300_000}]}
    result = httpx.post(f"{served.url}/api/articles", params={"wait": 120}, json=body,
                        timeout=150).json()["result"]
    assert result["added"] == 1 and result["passages"] > 100
    answer = httpx.post(f"{served.url}/api/query", timeout=60, json={
        "question": "harbour data", "collection": "token-test"}).json()
    assert answer["passages"] and max(len(p["text"]) for p in answer["passages"]) <= 2400


def test_upload_folders_of_a_killed_server_are_removed_at_start(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    dead = temp / "rag-upload-999999-abc"  # no such process
    alive = temp / f"rag-upload-{os.getpid()}-def"  # this test's own process
    for folder in (dead, alive):
        (folder / "0").mkdir(parents=True)
        (folder / "0" / "a.txt").write_text("left behind")
    server = RagServe(tmp_path / "data", tmp_path / "serve.log", TMPDIR=str(temp)).start()
    server.stop()
    assert not dead.exists() and alive.exists()


def test_a_server_killed_mid_upload_loses_nothing_when_it_is_uploaded_again(
        tmp_path: Path) -> None:
    """The documented recovery after a crash, upload again, once lost 4 of 32 articles."""
    import signal

    from tests.helpers import news_records, probe_store

    data = tmp_path / "data"
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in news_records(120)[80:112])
    server = RagServe(data, tmp_path / "serve.log").start()
    try:
        sent = httpx.post(f"{server.url}/api/articles", timeout=60,
                          files=[("files", ("week.jsonl", lines, "application/json"))])
        job = sent.json()["url"]
        deadline = time.monotonic() + 120
        while httpx.get(server.url + job).json()["progress"]["done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)  # mid-embedding
        server.process.wait(timeout=30)
    finally:
        server.stop()
    server = RagServe(data, tmp_path / "serve2.log").start()
    try:
        again = httpx.post(f"{server.url}/api/articles", params={"wait": 240}, timeout=300,
                           files=[("files", ("week.jsonl", lines, "application/json"))])
        assert again.status_code == 200, again.text
        assert again.json()["result"]["failed"] == 0
    finally:
        server.stop()
    probed = probe_store(data)
    assert len(probed["catalog"]) == 32
    assert probed["stored"] == probed["catalog"] == probed["bm25"]
