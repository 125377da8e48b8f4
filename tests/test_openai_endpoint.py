"""The OpenAI-compatible endpoint, called with the real `openai` SDK, streaming and not."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.scripted_answerer import UNSUPPORTED
from tests.server_fixtures import API_KEY, SAMPLE_QUESTION, LiveServer, upload


def client(server: LiveServer, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_models_lists_the_articles_model(live_server: LiveServer) -> None:
    ids = [m.id for m in client(live_server).models.list()]
    assert ids == ["rag-articles"]


def test_completion_answers_with_citations_in_an_extra_field(live_server: LiveServer) -> None:
    completion = client(live_server).chat.completions.create(
        model="rag-articles", messages=[{"role": "user", "content": SAMPLE_QUESTION}])
    text = completion.choices[0].message.content
    assert text and "[1]" in text
    citations = completion.model_extra["citations"]
    assert citations and citations[0]["marker"] == 1
    assert any("barbarism" in c["text"] for c in citations)
    assert completion.model_extra["result"]["answer"] == text


def test_streamed_completion_sends_citations_once_in_the_final_chunk(
        live_server: LiveServer) -> None:
    stream = client(live_server).chat.completions.create(
        model="rag-articles", stream=True,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": SAMPLE_QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    with_citations = [c for c in chunks if (c.model_extra or {}).get("citations")]
    assert len(with_citations) == 1 and with_citations[0] is chunks[-1]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert text == chunks[-1].model_extra["result"]["answer"]


def test_collection_and_top_k_ride_in_extra_body(live_server: LiveServer) -> None:
    with pytest.raises(openai.NotFoundError) as caught:  # asking never creates a collection
        client(live_server).chat.completions.create(
            model="rag-articles", messages=[{"role": "user", "content": SAMPLE_QUESTION}],
            extra_body={"collection": "empty-openai-test"})
    assert caught.value.body["code"] == "collection_not_found"
    upload(live_server.url, json={"collection": "openai-extra-test", "records": [
        {"id": "ferry", "title": "Ferry to Grey Island", "text": "The ferry to Grey Island "
         "starts sailing on Monday, the harbour master of Port Elmwood said."},
        {"id": "bridge", "title": "Bridge in Elmwood", "text": "The Elmwood bridge will "
         "close for repairs in May, the city engineer said."}]})
    completion = client(live_server).chat.completions.create(
        model="rag-articles", messages=[{"role": "user", "content": "When does the ferry to "
                                         "Grey Island start sailing?"}],
        extra_body={"collection": "openai-extra-test", "top_k": 1})
    result = completion.model_extra["result"]
    assert [p["article_id"] for p in result["passages"]] == ["ferry"]
    assert {c["article_id"] for c in completion.model_extra["citations"]} == {"ferry"}


def test_last_message_must_be_the_users(live_server: LiveServer) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client(live_server).chat.completions.create(
            model="rag-articles", messages=[{"role": "assistant", "content": "Hello"}])
    assert "last message" in caught.value.body["message"]


def test_sdk_needs_the_servers_key_when_one_is_set(secured_server: LiveServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(secured_server, "wrong").models.list()
    completion = client(secured_server, API_KEY).chat.completions.create(
        model="rag-articles", messages=[{"role": "user", "content": SAMPLE_QUESTION}])
    assert completion.model_extra["citations"]


# -- an answerer that streams many chunks and says something unsupported --------------------


def test_api_stream_of_many_chunks_ends_with_the_checked_answer(
        scripted_server: LiveServer) -> None:
    r = httpx.post(f"{scripted_server.url}/api/query/stream",
                   json={"question": SAMPLE_QUESTION}, timeout=60)
    events = [(b.split("\n")[0].removeprefix("event: "),
               json.loads(b.split("\n")[1].removeprefix("data: ")))
              for b in r.text.strip().split("\n\n")]
    texts = [data["text"] for name, data in events if name == "text"]
    assert len(texts) > 10 and "moon landing" in "".join(texts)
    name, final = events[-1]
    assert name == "answer" and [n for n, _ in events].count("answer") == 1
    assert final["removed_sentences"] == 1
    assert "moon" not in final["answer"] and final["citations"]


def test_openai_stream_final_chunk_carries_the_checked_answer(
        scripted_server: LiveServer) -> None:
    chunks = list(client(scripted_server).chat.completions.create(
        model="rag-articles", stream=True,
        messages=[{"role": "user", "content": SAMPLE_QUESTION}]))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert UNSUPPORTED.split(" [")[0] in streamed
    result = chunks[-1].model_extra["result"]
    assert result["removed_sentences"] == 1 and "moon" not in result["answer"]
