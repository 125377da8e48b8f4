"""The application service, called as the front ends call it: reads create nothing, writes
take the data folder's lock, and what a request names is checked once, here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.embedder import MiniLMEmbedder
from tests.server_fixtures import settings_for
from ui.errors import CollectionEmpty, CollectionNotFound, InvalidInput, LockTimeout
from ui.service import ArticleService, Filters
from ui.wiring import build_shared, write_lock

RECORD = {"id": "bees", "title": "Bees return to Varsa", "source": "varsa.example",
          "published": "2024-05-02",
          "text": "The beekeepers' guild of Varsa said forty hives now stand on the rooftops."}


def test_reads_through_the_service_never_create_a_collection(tmp_path: Path) -> None:
    service = ArticleService.from_settings(settings_for(tmp_path / "data"), answers=False)
    assert service.collections() == []
    with pytest.raises(CollectionNotFound):
        service.articles()
    assert service.describe()["articles"] == 0 and service.example_questions() == []
    with pytest.raises(CollectionEmpty, match="rag ingest"):  # one check, every front end
        service.ask("Who won?")
    with pytest.raises(CollectionNotFound):  # a collection the request named: not there
        service.ask("Who won?", collection="other")
    assert service.collections() == []


def test_filters_and_questions_are_checked_by_the_service(tmp_path: Path,
                                                          embedder: MiniLMEmbedder) -> None:
    settings = settings_for(tmp_path / "data")
    service = ArticleService(build_shared(settings, embedder=embedder))
    service.ingest_records([RECORD])
    assert service.sources() == ["varsa.example"]
    with pytest.raises(InvalidInput, match=r"filters.sources: unknown source 'nowhere'"):
        service.ask("How many hives?", filters=Filters(sources=["nowhere"]))
    with pytest.raises(InvalidInput, match="question: must not be empty"):
        service.ask("  ")
    answer = service.ask("How many hives stand on the rooftops of Varsa?",
                         filters=Filters(sources=["varsa.example"]))
    assert answer.passages and {p.source for p in answer.passages} == {"varsa.example"}


def test_eval_with_articles_waits_for_the_data_folders_lock(tmp_path: Path,
                                                            embedder: MiniLMEmbedder) -> None:
    """`rag eval --articles` writes an eval collection: it takes the lock like every write."""
    settings = settings_for(tmp_path / "data", lock_timeout=0)
    service = ArticleService(build_shared(settings, embedder=embedder))
    articles = tmp_path / "articles.jsonl"
    articles.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "1", "question": "How many hives?",
                                     "answers": ["forty"]}) + "\n", encoding="utf-8")
    with write_lock(settings), pytest.raises(LockTimeout):  # another writer holds it
        service.evaluate(questions, articles, answers=False)
    found = service.evaluate(questions, articles, answers=False)
    assert found["metrics"]["n_questions"] == 1 and "-eval-" in found["collection"]


def test_the_chat_header_says_how_many_passages_wait_for_their_vectors(
        tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    """`rag ingest --no-wait` leaves passages searchable by their words only; the chat's
    header says how many, and says nothing once the second stage has embedded them."""
    from ui.chat import header

    service = ArticleService(build_shared(settings_for(tmp_path / "data"), embedder=embedder))
    articles = tmp_path / "bees.jsonl"
    articles.write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    first = service.ingest_sources([str(articles)], wait=False)
    assert first.waiting > 0
    shown = header(service)
    assert "1 of 1 passage is waiting for vectors: until then it is found by words" in shown
    answer = service.ask("How many hives stand on the rooftops of Varsa?")
    assert not answer.abstained and "forty" in answer.answer  # from its words alone
    second = service.ingest_sources([str(articles)])  # nothing new: embeds what waits
    assert second.waiting == 0 and second.embedded == first.waiting
    assert "waiting" not in header(service)


def test_closing_the_write_queue_finishes_the_running_job_and_fails_the_waiting() -> None:
    """On shutdown the job under way ends normally; queued ones fail with a reason the
    client can act on, their uploaded files removed; nothing new is taken."""
    import threading

    from ui.jobs import QueueFull, WriteQueue

    writes = WriteQueue(capacity=5)
    release = threading.Event()
    started = threading.Event()
    removed: list[str] = []

    def slow(job: object) -> dict[str, object]:
        started.set()
        release.wait(30)
        return {"ok": True}

    running = writes.submit("ingest", "articles", slow)
    assert started.wait(30)
    waiting = [writes.submit("ingest", "articles", lambda job: {"ok": True},
                             cleanup=lambda n=n: removed.append(f"upload-{n}"))
               for n in range(2)]
    closer = threading.Thread(target=writes.close)
    closer.start()
    closer.join(0.5)
    assert closer.is_alive()  # it waits for the running job
    release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert running.status == "done" and running.result == {"ok": True}
    for job in waiting:
        assert job.status == "failed" and "send it again" in str(job.error)
    assert sorted(removed) == ["upload-0", "upload-1"]
    with pytest.raises(QueueFull, match="stopping"):
        writes.submit("ingest", "articles", lambda job: {}, cleanup=lambda: removed.append("x"))
    assert removed[-1] == "x"


def test_a_passage_waiting_for_its_vector_is_not_pushed_down_for_it(
        tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    """Asked while the second stage has not embedded it yet, the article whose words match
    best comes first: a passage missing only its dense rank takes its BM25 rank there,
    instead of losing to a same-topic passage that has both ranks."""
    service = ArticleService(build_shared(settings_for(tmp_path / "data"), embedder=embedder))
    service.ingest_records([
        {"id": "ferry-old", "title": "Brora ferry timetable", "source": "a.example",
         "text": "The Brora ferry will sail every two hours this summer, the harbour office "
                 "said. Tickets for the Brora ferry can be bought on board."},
        {"id": "bridge", "title": "Lowden bridge works", "source": "a.example",
         "text": "Work on the Lowden bridge starts in May and lasts until the autumn."}])
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({
        "id": "ferry-new", "title": "Night ferry", "source": "b.example",
        "text": "A night ferry between Brora and Lowden will sail at midnight on Fridays, "
                "the ferry company Grey Line said."}) + "\n", encoding="utf-8")
    assert service.ingest_sources([str(new)], wait=False).waiting > 0
    answer = service.ask("When will the night ferry between Brora and Lowden sail?")
    assert answer.passages[0].article_id == "ferry-new", [p.article_id for p in answer.passages]
    assert not answer.abstained and "midnight" in answer.answer
