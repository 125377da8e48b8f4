"""The JSON API over a real server: answers, streaming, uploads, limits, auth, one error shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.server_fixtures import API_KEY, SAMPLE_ARTICLES, SAMPLE_QUESTION, LiveServer, upload

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """Every failure has the one shape: {"error": {status, code, message, details}}."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"status", "code", "message", "details"}
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    if code:
        assert error["code"] == code
    return error


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_query_answers_with_citations_of_the_sample_article(live_server: LiveServer) -> None:
    r = httpx.post(f"{live_server.url}/api/query", json={"question": SAMPLE_QUESTION},
                   timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert not answer["abstained"]
    assert answer["citations"], answer
    assert "[1]" in answer["answer"]
    assert any("barbarism" in c["text"] for c in answer["citations"])
    for c in answer["citations"]:
        assert c["text"] and c["end"] > c["start"]


def test_query_as_of_a_date_still_answers_from_an_older_article(
        live_server: LiveServer) -> None:
    body = {"question": SAMPLE_QUESTION, "as_of": "2024-01-31"}  # the article is from 2016
    r = httpx.post(f"{live_server.url}/api/query", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert any("barbarism" in c["text"] for c in r.json()["citations"])


def test_stream_sends_text_then_one_final_answer_event(live_server: LiveServer) -> None:
    body = {"question": SAMPLE_QUESTION}
    with httpx.stream("POST", f"{live_server.url}/api/query/stream", json=body,
                      timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    names = [name for name, _ in events]
    assert names.count("answer") == 1 and names[-1] == "answer"
    assert "text" in names
    streamed = "".join(data["text"] for name, data in events if name == "text")
    final = events[-1][1]
    assert final["citations"] and streamed == final["answer"]
    plain = httpx.post(f"{live_server.url}/api/query", json=body, timeout=60).json()
    assert final["citations"] == plain["citations"]


def test_stream_final_event_has_empty_citations_when_nothing_matches(
        live_server: LiveServer) -> None:
    body = {"question": SAMPLE_QUESTION, "filters": {"published_from": "2031-01-01"}}
    r = httpx.post(f"{live_server.url}/api/query/stream", json=body, timeout=60)
    events = sse_events(r.text)
    assert [name for name, _ in events] == ["answer"]
    assert events[0][1]["abstained"] is True and events[0][1]["citations"] == []


@pytest.mark.parametrize("route", ["/api/query", "/api/query/stream", "/v1/chat/completions"])
def test_unknown_source_in_a_filter_is_422_naming_it(live_server: LiveServer,
                                                     route: str) -> None:
    body: dict[str, object] = {"filters": {"sources": ["no-such-source"]}}
    if route.startswith("/v1"):
        body["messages"] = [{"role": "user", "content": SAMPLE_QUESTION}]
    else:
        body["question"] = SAMPLE_QUESTION
    r = httpx.post(f"{live_server.url}{route}", json=body, timeout=60)
    error = assert_error(r, 422, "validation_error")
    assert "unknown source 'no-such-source'" in error["message"]
    assert error["message"].startswith("filters.sources:")


def test_impossible_date_in_a_filter_is_422_naming_the_field(live_server: LiveServer) -> None:
    body = {"question": SAMPLE_QUESTION, "filters": {"published_from": "2025-13-45"}}
    error = assert_error(httpx.post(f"{live_server.url}/api/query", json=body, timeout=60),
                         422, "validation_error")
    assert "published_from" in error["message"] and "not a date on the calendar" in error[
        "message"]
    body["filters"] = {"published_from": "2016-09-30", "published_to": "2016-09-01"}
    error = assert_error(httpx.post(f"{live_server.url}/api/query", json=body, timeout=60),
                         422, "validation_error")
    assert "filters" in error["message"] and "swap the two dates" in error["message"]


def test_follow_up_with_history_is_accepted(live_server: LiveServer) -> None:
    body = {"question": "And what did the French minister say?", "top_k": 3,
            "history": [{"role": "user", "content": SAMPLE_QUESTION},
                        {"role": "assistant", "content": "It is barbarism. [1]"}]}
    r = httpx.post(f"{live_server.url}/api/query", json=body, timeout=60)
    assert r.status_code == 200, r.text
    assert len(r.json()["passages"]) <= 3


@pytest.mark.parametrize("body, where", [
    ({"question": ""}, "question"),
    ({"question": "   "}, "question"),
    ({"question": "Who?", "top_k": 0}, "top_k"),
    ({"question": "Who?", "top_k": 51}, "top_k"),
    ({"question": "Who?", "collection": "../etc"}, "collection"),
    ({"question": "Who?", "filters": {"published_from": "last week"}}, "published_from"),
    ({"question": "Who?", "history": [{"role": "system", "content": "x"}]}, "history"),
    ({"question": "Who?", "unknown": 1}, "unknown"),
    ({"question": "Who?", "as_of": "last week"}, "as_of"),
    ({}, "question"),
])
def test_invalid_queries_are_422_saying_what_is_wrong(live_server: LiveServer,
                                                       body: dict, where: str) -> None:
    r = httpx.post(f"{live_server.url}/api/query", json=body, timeout=30)
    error = assert_error(r, 422, "validation_error")
    assert where in error["message"] or where in json.dumps(error["details"])


def test_malformed_json_is_422(live_server: LiveServer) -> None:
    r = httpx.post(f"{live_server.url}/api/query", content=b"{not json",
                   headers={"content-type": "application/json"}, timeout=30)
    assert_error(r, 422, "validation_error")


def test_unknown_routes_and_articles_are_404(live_server: LiveServer) -> None:
    assert_error(httpx.get(f"{live_server.url}/api/nothing-here"), 404, "not_found")
    assert_error(httpx.get(f"{live_server.url}/v1/nothing-here"), 404, "not_found")
    error = assert_error(httpx.delete(f"{live_server.url}/api/articles/no-such-id"), 404)
    assert "no-such-id" in error["message"]


def test_health_reports_store_embedder_and_answerer(live_server: LiveServer) -> None:
    health = httpx.get(f"{live_server.url}/api/health").json()
    assert health["status"] == "ok"
    assert health["store"]["reachable"] is True and health["store"]["passages"] > 0
    assert health["embedder"] and health["answerer"].startswith("extractive")


def test_upload_reports_each_file_then_lists_queries_and_removes(
        live_server: LiveServer, tmp_path) -> None:
    url, collection = live_server.url, "upload-test"
    sample = next(SAMPLE_ARTICLES.glob("*.txt"))
    files = [("files", (sample.name, sample.read_bytes(), "text/plain")),
             ("files", ("notes.odt", b"PK\x03\x04", "application/octet-stream")),
             ("files", ("empty.txt", b"   ", "text/plain"))]
    report = upload(url, files=files, data={"collection": collection})
    outcome = {f["name"]: f for f in report["files"]}
    assert outcome[sample.name]["status"] == "ok" and outcome[sample.name]["articles"] == 1
    assert outcome["notes.odt"]["status"] == "failed"
    assert "unsupported" in outcome["notes.odt"]["errors"][0]
    assert outcome["empty.txt"]["status"] == "failed"
    assert report["added"] == 1 and report["failed"] == 2 and report["passages"] > 0
    assert "/tmp" not in json.dumps(report)  # errors name the uploaded file, not its path

    listed = httpx.get(f"{url}/api/articles", params={"collection": collection}).json()
    assert [a["source"] for a in listed["articles"]] == [sample.name]
    article_id = listed["articles"][0]["id"]
    answer = httpx.post(f"{url}/api/query", json={"question": SAMPLE_QUESTION,
                                                  "collection": collection}, timeout=60).json()
    assert {c["article_id"] for c in answer["citations"]} == {article_id}

    again = upload(url, files=files[:1], data={"collection": collection})
    assert again["unchanged"] == 1 and again["passages"] == 0

    gone = httpx.delete(f"{url}/api/articles/{article_id}", params={"collection": collection})
    assert gone.status_code == 200
    assert httpx.get(f"{url}/api/articles", params={"collection": collection}).json()[
        "articles"] == []
    assert_error(httpx.delete(f"{url}/api/articles/{article_id}",
                              params={"collection": collection}), 404)


def test_upload_of_json_records_reports_bad_records(live_server: LiveServer) -> None:
    body = {"collection": "records-test", "records": [
        {"title": "Bridge opens", "text": "The new Elm Street bridge opened on Monday after "
         "two years of work, the city engineer said.", "url": "https://example.org/bridge",
         "published": "2024-03-04"},
        {"title": "No text"}]}
    report = upload(live_server.url, json=body)
    assert report["added"] == 1 and report["failed"] == 1
    assert report["files"][0]["status"] == "partial"
    assert "text" in report["files"][0]["errors"][0]


def test_upload_with_another_content_type_is_415(live_server: LiveServer) -> None:
    r = httpx.post(f"{live_server.url}/api/articles", content=b"hello",
                   headers={"content-type": "text/plain"})
    assert_error(r, 415)


# -- limits and auth (a server with RAG_API_KEY and small limits) ------------------------------


@pytest.mark.parametrize("method, path", [
    ("POST", "/api/query"), ("POST", "/api/query/stream"), ("GET", "/api/articles"),
    ("POST", "/api/articles"), ("DELETE", "/api/articles/x"), ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
])
def test_every_api_route_needs_the_bearer_token(secured_server: LiveServer, method: str,
                                                path: str) -> None:
    url = secured_server.url + path
    body = {"question": SAMPLE_QUESTION} if method == "POST" else None
    r = httpx.request(method, url, json=body)
    assert_error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    wrong = httpx.request(method, url, json=body, headers={"Authorization": "Bearer nope"})
    assert_error(wrong, 401, "unauthorized")


def test_right_token_is_let_through(secured_server: LiveServer) -> None:
    r = httpx.post(f"{secured_server.url}/api/query", json={"question": SAMPLE_QUESTION},
                   headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["citations"]


def test_health_without_token_says_only_the_status(secured_server: LiveServer) -> None:
    assert httpx.get(f"{secured_server.url}/api/health").json() == {"status": "ok"}
    full = httpx.get(f"{secured_server.url}/api/health", headers=AUTH).json()
    assert full["store"]["passages"] > 0


def test_question_over_the_length_limit_is_422(secured_server: LiveServer) -> None:
    r = httpx.post(f"{secured_server.url}/api/query", json={"question": "why " * 60},
                   headers=AUTH)
    error = assert_error(r, 422, "validation_error")
    assert "200" in error["message"]


def test_body_over_the_request_limit_is_413(secured_server: LiveServer) -> None:
    body = {"question": "Who?", "history": [{"role": "user", "content": "x" * 3000}] * 3}
    assert_error(httpx.post(f"{secured_server.url}/api/query", json=body, headers=AUTH),
                 413, "too_large")


def test_streamed_body_without_length_over_the_limit_is_413(secured_server: LiveServer) -> None:
    def chunks():
        yield b'{"question": "Who?", "history": ['
        for _ in range(40):
            yield b'{"role": "user", "content": "' + b"x" * 200 + b'"},'
        yield b'{"role": "user", "content": "x"}]}'

    r = httpx.post(f"{secured_server.url}/api/query", content=chunks(),
                   headers={**AUTH, "content-type": "application/json"})
    assert_error(r, 413, "too_large")


def test_upload_over_the_file_limit_is_413_and_stores_nothing(
        secured_server: LiveServer) -> None:
    big = ("A sentence about the harbour. " * 1000).encode()  # 30 KB, limit 20 KB
    r = httpx.post(f"{secured_server.url}/api/articles", headers=AUTH,
                   files=[("files", ("big.txt", big, "text/plain"))],
                   data={"collection": "limits-test"})
    error = assert_error(r, 413, "too_large")
    assert "big.txt" in error["message"]
    listed = httpx.get(f"{secured_server.url}/api/articles", headers=AUTH,
                       params={"collection": "limits-test"})
    assert_error(listed, 404, "collection_not_found")  # not even the collection was made


def test_too_many_files_in_one_upload_is_400(secured_server: LiveServer) -> None:
    files = [("files", (f"a{i}.txt", b"Some words here.", "text/plain")) for i in range(4)]
    r = httpx.post(f"{secured_server.url}/api/articles", headers=AUTH, files=files)
    assert_error(r, 400)


def test_docs_are_served_without_a_cdn(live_server: LiveServer) -> None:
    """(Without a key; with one, see test_attacks: the docs need it.)"""
    page = httpx.get(f"{live_server.url}/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text and "https://" not in page.text
    assert httpx.get(f"{live_server.url}/docs/static/swagger-ui-bundle.js").status_code == 200
    schema = httpx.get(f"{live_server.url}/openapi.json").json()
    for path in ("/api/query", "/api/query/stream", "/api/articles", "/api/health",
                 "/v1/chat/completions", "/v1/models"):
        assert path in schema["paths"]
    # no key set: nothing to unlock, so the page shows no lock icons
    assert "security" not in json.dumps(schema["paths"])
    assert "securitySchemes" not in schema.get("components", {})


def test_chat_and_its_upload_take_the_key_as_password(secured_server: LiveServer) -> None:
    url = secured_server.url
    assert httpx.post(f"{url}/gradio_api/upload").status_code == 401
    assert httpx.get(f"{url}/config").status_code == 401
    wrong = httpx.post(f"{url}/login", data={"username": "me", "password": "wrong"})
    assert wrong.status_code != 200 or not wrong.cookies
    with httpx.Client(base_url=url) as browser:
        assert browser.post("/login", data={"username": "me", "password": API_KEY}).json()[
            "success"] is True
        assert browser.get("/config").status_code == 200
