"""Attacks on the server itself, each against a real `rag serve` on loopback (or the `rag`
command where the fault was there): another site's page posting into the store, reads that
created collections, a weak key, guessing, damaged derived files, a missing library."""

from __future__ import annotations

import base64
import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser

from tests.browser_helpers import launch_chromium
from tests.helpers import BIN, ROOT, SAMPLE_DIR, RagServe, rag_env, run_rag

KEY = "attack-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
RECORD = {"records": [{"id": "planted", "text": "Planted: the mayor of Varsa resigned today."}]}


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("attack-server") / "data"
    assert run_rag("-q", "ingest", str(SAMPLE_DIR), env=rag_env(data)).returncode == 0
    return data


@pytest.fixture(scope="module")
def keyed(sample_data: Path) -> Iterator[RagServe]:
    """`rag serve` with a key, a small brake on guessing and one extra allowed origin."""
    server = RagServe(sample_data, sample_data.parent / "keyed.log", RAG_API_KEY=KEY,
                      RAG_AUTH_FAILURES_PER_MINUTE="6",
                      RAG_ALLOWED_ORIGINS="https://dashboard.example.org")
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def open_server(sample_data: Path) -> Iterator[RagServe]:
    """`rag serve` without a key, as most people run it on their own machine."""
    server = RagServe(sample_data, sample_data.parent / "open.log")
    yield server.start()
    server.stop()


def collections(server: RagServe) -> list[str]:
    found: list[str] = httpx.get(f"{server.url}/api/collections", headers=AUTH,
                                 timeout=30).json()["collections"]
    return found


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


# -- 5. another site's page cannot write --------------------------------------------------------


def test_writes_from_another_origin_are_refused(open_server: RagServe) -> None:
    url = f"{open_server.url}/api/articles"
    for headers in ({"Origin": "http://evil.example"},
                    {"Referer": "http://evil.example/page.html"}, {"Origin": "null"}):
        refused = httpx.post(url, json=RECORD, headers=headers, timeout=30)
        assert refused.status_code == 403 and error_code(refused) == "forbidden_origin"
    chat = httpx.post(f"{open_server.url}/gradio_api/queue/join", json={"data": []},
                      headers={"Origin": "http://evil.example"}, timeout=30)
    assert chat.status_code == 403
    same = httpx.post(url, json={"collection": "origin-test", **RECORD}, timeout=30,
                      headers={"Origin": open_server.url})
    assert same.status_code == 202  # the server's own page may
    plain = httpx.post(f"{open_server.url}/api/query", json={"question": "Who resigned?"},
                       timeout=60)
    assert plain.status_code == 200  # clients that are not browsers send no Origin


def test_listed_origins_may_write(keyed: RagServe) -> None:
    allowed = httpx.post(f"{keyed.url}/api/articles", json={"collection": "listed", **RECORD},
                         timeout=30, headers={**AUTH,
                                              "Origin": "https://dashboard.example.org"})
    assert allowed.status_code == 202


def test_a_name_rebound_to_loopback_reaches_nothing(open_server: RagServe,
                                                   sample_data: Path) -> None:
    """DNS rebinding: a page on rebind.test makes its name resolve to 127.0.0.1; its
    requests carry its own Host and a matching Origin, so only the Host gives it away."""
    port = open_server.url.rsplit(":", 1)[1]
    rebound = {"Host": f"rebind.test:{port}", "Origin": f"http://rebind.test:{port}"}
    for method, path, body in [("POST", "/api/articles", RECORD), ("GET", "/api/articles", None),
                               ("POST", "/api/query", {"question": "Who resigned?"}),
                               ("GET", "/", None)]:
        refused = httpx.request(method, f"{open_server.url}{path}", json=body, headers=rebound,
                                timeout=30)
        assert refused.status_code == 400 and error_code(refused) == "host_not_allowed", path
        assert "rebind.test" in refused.json()["error"]["message"]
        assert "RAG_ALLOWED_HOSTS" in refused.json()["error"]["message"]
    for host in ("localhost", "127.0.0.1"):
        assert httpx.get(f"{open_server.url}/api/articles", headers={"Host": f"{host}:{port}"},
                         timeout=30).status_code == 200
    listed = RagServe(sample_data, sample_data.parent / "hosts.log",
                      RAG_ALLOWED_HOSTS="rebind.test").start()
    try:
        port = listed.url.rsplit(":", 1)[1]
        assert httpx.get(f"{listed.url}/api/articles", headers={"Host": f"rebind.test:{port}"},
                         timeout=30).status_code == 200  # a name the deployment serves
    finally:
        listed.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launch_chromium()


@pytest.mark.browser
def test_a_page_on_another_origin_cannot_plant_an_article(open_server: RagServe,
                                                          browser: Browser,
                                                          tmp_path: Path) -> None:
    """The CSRF as a browser does it: a page of another origin (another port) posts a
    multipart upload with mode 'no-cors', which needs no permission from us."""
    (tmp_path / "index.html").write_text(f"""<!doctype html><html><body><script>
const form = new FormData();
form.append("collection", "csrf-test");
form.append("files", new Blob(["Planted: the mayor of Varsa resigned today."]), "x.txt");
fetch("{open_server.url}/api/articles", {{method: "POST", mode: "no-cors", body: form}})
  .then(() => document.title = "sent", () => document.title = "sent");
</script></body></html>""")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
        page.wait_for_function("document.title === 'sent'", timeout=30_000)
        page.close()
    finally:
        evil.shutdown()
    listed = httpx.get(f"{open_server.url}/api/articles", params={"collection": "csrf-test"})
    assert listed.status_code == 404  # nothing stored, not even the collection


# -- 6. reads never create collections -----------------------------------------------------


def test_reads_of_unknown_collections_create_nothing(keyed: RagServe) -> None:
    before = collections(keyed)
    for n in range(60):
        assert httpx.get(f"{keyed.url}/api/health", params={"collection": f"probe{n}"},
                         timeout=30).status_code in (200, 404, 429)
    for request in (
            lambda: httpx.get(f"{keyed.url}/api/health", params={"collection": "probe-x"},
                              headers=AUTH, timeout=30),
            lambda: httpx.get(f"{keyed.url}/api/articles", params={"collection": "probe-y"},
                              headers=AUTH, timeout=30),
            lambda: httpx.post(f"{keyed.url}/api/query", headers=AUTH, timeout=30,
                               json={"question": "Who?", "collection": "probe-z"})):
        response = request()
        assert response.status_code == 404 and error_code(response) == "collection_not_found"
    assert collections(keyed) == before
    made = httpx.post(f"{keyed.url}/api/articles", params={"wait": 60}, headers=AUTH,
                      json={"collection": "made-on-purpose", **RECORD}, timeout=90)
    assert made.status_code == 200
    assert collections(keyed) == sorted([*before, "made-on-purpose"])


def test_collection_names_chroma_refuses_are_422_not_500(keyed: RagServe) -> None:
    for name in ("a..b", "1.2.3.4", "x__y"):
        response = httpx.get(f"{keyed.url}/api/articles", params={"collection": name},
                             headers=AUTH, timeout=30)
        assert response.status_code == 422 and error_code(response) == "validation_error"


# -- 7. a key that protects nothing -----------------------------------------------------------


@pytest.mark.parametrize("key", ["", "short-key"])
def test_serve_refuses_an_empty_or_short_key(tmp_path: Path, key: str) -> None:
    done = subprocess.run([str(BIN / "rag"), "serve", "--port", "1"], cwd=ROOT,
                          env=rag_env(tmp_path / "data", RAG_API_KEY=key),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "RAG_API_KEY: must be at least 16 characters" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_key_with_spaces_around_it_works_and_one_no_header_can_carry_is_refused() -> None:
    from ui.settings import SettingsError, load_settings

    pasted = load_settings(api_key=f"  {KEY}\n")
    assert pasted.api_key is not None and pasted.api_key.get_secret_value() == KEY
    with pytest.raises((SettingsError, ValueError), match="printable ASCII"):
        load_settings(api_key="clé-secrète-très-longue-2026")


# -- low: guessing, docs, filters, long messages ---------------------------------------------


def test_guessing_the_key_is_slowed_to_a_few_tries_a_minute(sample_data: Path,
                                                           tmp_path: Path) -> None:
    server = RagServe(sample_data, tmp_path / "guess.log", RAG_API_KEY=KEY,
                      RAG_AUTH_FAILURES_PER_MINUTE="6").start()
    try:
        logins = [httpx.post(f"{server.url}/login", data={"username": "me",
                                                          "password": f"guess-{n}"})
                  for n in range(3)]
        assert all(r.status_code == 400 for r in logins)  # the chat's login counts too
        statuses = [httpx.get(f"{server.url}/api/articles", timeout=30,
                              headers={"Authorization": f"Bearer guess-{n}"}).status_code
                    for n in range(6)]
        assert statuses == [401, 401, 401, 429, 429, 429]
        blocked = httpx.get(f"{server.url}/api/articles", headers=AUTH, timeout=30)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert blocked.json()["error"]["code"] == "too_many_requests"
    finally:
        server.stop()


def test_docs_need_the_key_when_one_is_set(sample_data: Path, tmp_path: Path) -> None:
    server = RagServe(sample_data, tmp_path / "docs.log", RAG_API_KEY=KEY).start()
    try:
        for path in ("/docs", "/openapi.json"):
            refused = httpx.get(server.url + path, timeout=30)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic")
            basic = base64.b64encode(f"anyone:{KEY}".encode()).decode()
            for headers in (AUTH, {"Authorization": f"Basic {basic}"}):
                assert httpx.get(server.url + path, headers=headers).status_code == 200
    finally:
        server.stop()


def test_unknown_filter_keys_and_impossible_dates_are_422(open_server: RagServe) -> None:
    for filters in ({"sorces": ["x"]}, {"published_from": "2020-13-45"},
                    {"published_to": "2021-02-29"}):
        response = httpx.post(f"{open_server.url}/api/query", timeout=30,
                              json={"question": "Who?", "filters": filters})
        assert response.status_code == 422, response.text
        assert error_code(response) == "validation_error"
    assert httpx.get(f"{open_server.url}/api/articles", params={"colection": "x"},
                     timeout=30).status_code == 422  # a misspelt parameter is no default


def test_every_openai_message_is_held_to_the_length_limit(open_server: RagServe) -> None:
    body = {"model": "rag-articles", "messages": [
        {"role": "user", "content": "x " * 15_000}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "Who called the meeting?"}]}
    response = httpx.post(f"{open_server.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 422 and "messages.0" in response.json()["error"]["message"]


def test_the_embeddings_route_is_held_like_every_other(keyed: RagServe,
                                                       open_server: RagServe) -> None:
    """POST /v1/embeddings runs the model for whoever asks: it needs the key when one is
    set, refuses other sites' pages, and bounds what one request may make it compute."""
    url = "/v1/embeddings"
    one = {"input": "Who brokered the ceasefire?"}
    assert httpx.post(keyed.url + url, json=one, timeout=30).status_code == 401
    done = httpx.post(keyed.url + url, json=one, headers=AUTH, timeout=30)
    assert done.status_code == 200 and len(done.json()["data"][0]["embedding"]) == 384
    for bad in ({"input": ["a"] * 257}, {"input": ""}, {"input": ["x" * 20_001]},
                {"input": "a", "encoding_format": "hex"}, {"input": ["y " * 1950] * 256}):
        refused = httpx.post(keyed.url + url, json=bad, headers=AUTH, timeout=30)
        assert refused.status_code == 422, (bad, refused.text[:200])
    other = httpx.post(open_server.url + url, json=one, timeout=30,
                       headers={"Origin": "https://evil.example"})
    assert other.status_code == 403 and error_code(other) == "forbidden_origin"
    huge = httpx.post(open_server.url + url, json={"input": ["x" * 10_000] * 200},
                      timeout=30)
    assert huge.status_code == 413


def test_a_deployment_can_switch_the_embeddings_route_off(sample_data: Path) -> None:
    server = RagServe(sample_data, sample_data.parent / "no-embed.log",
                      RAG_EMBEDDINGS_API="false").start()
    try:
        off = httpx.post(f"{server.url}/v1/embeddings", json={"input": "Who?"}, timeout=30)
        assert off.status_code == 404 and "RAG_EMBEDDINGS_API" in off.text
        assert httpx.post(f"{server.url}/api/query", json={"question": "Who resigned?"},
                          timeout=60).status_code == 200  # the rest still answers
    finally:
        server.stop()


def test_rag_remove_of_an_unknown_id_says_so_and_exits_1(sample_data: Path) -> None:
    done = run_rag("remove", "no-such-article", env=rag_env(sample_data))
    assert done.returncode == 1 and "no article with id 'no-such-article'" in done.stderr


# -- 10. a damaged derived index is rebuilt -------------------------------------------------


def damage(folder: Path, how: str) -> None:
    passages = folder / "passages"
    if how == "truncated":
        (passages / "data.csc.index.npy").write_bytes(b"")
    elif how == "trimmed ids":
        meta = json.loads((folder / "passages.json").read_text())
        meta["ids"] = meta["ids"][:-1]
        (folder / "passages.json").write_text(json.dumps(meta))
    elif how == "wrong shape":
        np.save(passages / "indices.csc.index.npy", np.zeros((3, 3), dtype=np.int32))
    elif how == "edited count":
        params = json.loads((passages / "params.index.json").read_text())
        params["num_docs"] = params["num_docs"] + 5
        (passages / "params.index.json").write_text(json.dumps(params))


@pytest.mark.parametrize("how", ["truncated", "trimmed ids", "wrong shape", "edited count"])
def test_a_damaged_bm25_index_is_rebuilt_not_a_500_forever(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    env = rag_env(data)
    assert run_rag("-q", "ingest", str(SAMPLE_DIR), env=env).returncode == 0
    assert run_rag("-q", "ask", "Who called the meeting?", env=env).returncode == 0
    folder = data / "bm25" / "articles"
    damage(folder, how)
    server = RagServe(data, tmp_path / "serve.log").start()
    try:
        for _ in range(2):
            answer = httpx.post(f"{server.url}/api/query", timeout=60, json={
                "question": "Who called the Security Council meeting about Aleppo?"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["citations"]
    finally:
        server.stop()
    meta = json.loads((folder / "passages.json").read_text())
    assert len(meta["ids"]) == len(meta["article_ids"]) == 3  # rebuilt whole
    assert "damaged" in (tmp_path / "serve.log").read_text()


# -- 3. a reader whose library is missing -----------------------------------------------------


WITHOUT_HTML_CLEAN = ("import sys; sys.modules['lxml_html_clean'] = None; "
                      "from ui.cli import main; raise SystemExit(main(sys.argv[1:]))")


def test_html_without_its_cleaner_library_fails_alone(tmp_path: Path) -> None:
    """As with an older pip that ignored the `lxml[html_clean]` extra."""
    (tmp_path / "page.html").write_text("<html><body><article><p>The Varsa ferry sails on "
                                        "Monday, the harbour master said.</p></article>"
                                        "</body></html>")
    (tmp_path / "note.txt").write_text("The Varsa bridge opens in May, the engineer said.")
    done = subprocess.run([sys.executable, "-c", WITHOUT_HTML_CLEAN, "-q", "ingest",
                           str(tmp_path / "page.html"), str(tmp_path / "note.txt")],
                          cwd=ROOT, env=rag_env(tmp_path / "data"), capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "page.html: the .html reader cannot be loaded" in done.stderr
    assert "lxml_html_clean" in done.stderr
    assert "1 added" in done.stdout and "1 failed" in done.stdout
