"""The chat's formatting and streaming, called in-process on real components."""

from __future__ import annotations

import re
from pathlib import Path

from tests.scripted_answerer import scripted_components
from tests.server_fixtures import SAMPLE_QUESTION, settings_for
from ui.chat import (
    EMPTY_STORE,
    _articles,
    _respond,
    answer_markdown,
    chat_filters,
    filter_message,
    sources_html,
)
from ui.service import ArticleService
from ui.wiring import build

HOSTILE = '<img src=x onerror="alert(1)"> [link](javascript:alert(1)) ![i](http://x/i.png)'


def test_chat_replaces_streamed_text_with_the_checked_answer(sample_dir: Path,
                                                             embedder) -> None:
    settings = settings_for(sample_dir)
    service = ArticleService(scripted_components(settings, embedder))
    updates = list(_respond(service, SAMPLE_QUESTION, None))
    assert len(updates) > 10  # shown while streaming
    assert any("moon landing" in u[0][-1]["content"] for u in updates[1:-1])
    messages, sources, state, box, problem = updates[-1]
    final = messages[-1]["content"]
    assert "moon" not in final and "1 unsupported sentence removed" in final
    assert state["turns"][-1]["removed"] == 1 and state["turns"][-1]["citations"]
    assert "<mark>" in sources and box == "" and problem == ""


def test_chat_says_nothing_is_ingested_yet(tmp_path: Path, embedder) -> None:
    service = ArticleService(build(settings_for(tmp_path), embedder=embedder))
    *_, (messages, _, state, _, _) = _respond(service, "Who won?", None)
    assert messages[-1]["content"] == EMPTY_STORE
    assert state["turns"][-1]["content"] == EMPTY_STORE


def test_follow_up_keeps_the_history_of_the_chat(sample_dir: Path, embedder) -> None:
    service = ArticleService(build(settings_for(sample_dir), embedder=embedder))
    *_, (_, _, state, _, _) = _respond(service, SAMPLE_QUESTION, None)
    *_, (messages, _, state, _, _) = _respond(service, "What did the French minister say?",
                                           state)
    assert [t["role"] for t in state["turns"]] == ["user", "assistant"] * 2
    assert len(messages) == 4


def test_sources_panel_escapes_article_text_and_marks_the_cited_sentence() -> None:
    text = f"First sentence here. {HOSTILE} is quoted. Last one."
    citation = {"marker": 1, "title": "<b>Title</b>", "source": "<i>src</i>",
                "published": "2024-01-02", "url": "javascript:alert(1)", "text": text,
                "start": 100, "end": 100 + len(text), "highlights": [[100, 120]]}
    html = sources_html([citation])
    assert "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;img" in html and "href" not in html  # only http(s) urls become links
    assert "<mark>First sentence here.</mark>" in html
    linked = sources_html([{**citation, "url": "https://example.org/a?b=1&c=\"2\""}])
    assert 'href="https://example.org/a?b=1&amp;c=&quot;2&quot;"' in linked


def test_answers_in_the_chat_are_shown_literally() -> None:
    shown = answer_markdown({"content": f"{HOSTILE} [1]", "citations": [
        {"marker": 1, "title": "*Title*"}]})
    assert re.search(r"(?<!\\)[<>\[\]()!*]", shown) is None  # every markup char escaped
    assert "\\<img" in shown and "\\[1\\]" in shown


FERRY = ("The harbour master of Port Elmwood said the new ferry to Grey Island will start "
         "sailing on Monday after two years of delays. Each ferry will carry 300 passengers "
         "a day.")


def _two_sources(tmp_path: Path, embedder) -> ArticleService:
    service = ArticleService(build(settings_for(tmp_path), embedder=embedder))
    service.ingest_records([
        {"id": "a", "title": "Ferry to Grey Island", "text": FERRY, "source": "coast.example",
         "published": "2022-06-10"},
        {"id": "b", "title": "Grey Island ferry starts", "text": FERRY + " Tickets are cheap.",
         "source": "island.example", "published": "2022-07-10"}])
    return service


def test_chat_filter_row_lists_sources_and_restricts_the_answer(tmp_path: Path,
                                                                embedder) -> None:
    service = _two_sources(tmp_path, embedder)
    _, _, source_choices = _articles(service)
    assert [c[0] for c in source_choices.choices] == ["coast.example", "island.example"]
    question = "When will the ferry to Grey Island start sailing?"
    for chosen, low, high, expected in [(["island.example"], "", "", "b"),
                                        ([], "2022-06-01", "2022-06-30", "a")]:
        *_, (_, _, state, _, _) = _respond(service, question, None, (chosen, low, high))
        cited = state["turns"][-1]["citations"]
        assert cited and {c["article_id"] for c in cited} == {expected}


def test_chat_filter_row_explains_an_impossible_date_next_to_the_box(tmp_path: Path,
                                                                   embedder) -> None:
    service = _two_sources(tmp_path, embedder)
    for low, high, box in [("June 2022", "", "Published from"),
                           ("2022-01-01", "2025-13-45", "Published to")]:
        *_, (messages, _, state, question, problem) = _respond(
            service, "When does the ferry sail?", None, ([], low, high))
        assert box in problem and "not a date on the calendar" in problem, problem
        assert question == "When does the ferry sail?"  # kept, to send again once fixed
        assert messages == [] and state["turns"] == []  # never asked, never abstained
    assert filter_message("2025-13-45", "") != "" and filter_message("2022-06-30", "") == ""
    assert chat_filters(None, " ", "") is None
    assert "swap the two dates" in filter_message("2022-06-30", "2022-06-01")


def test_chat_says_a_source_the_collection_lacks_is_unknown(tmp_path: Path, embedder) -> None:
    service = _two_sources(tmp_path, embedder)
    *_, (_, _, state, _, problem) = _respond(
        service, "When does the ferry sail?", None, (["nowhere.example"], "", ""))
    assert "unknown source" in problem and "nowhere" in problem
    assert state["turns"] == []


def test_example_questions_come_from_the_collection(tmp_path: Path, embedder) -> None:
    service = _two_sources(tmp_path, embedder)
    found = service.example_questions()
    assert found[0] == "What happened in “Grey Island ferry starts”?"  # the most recent
    assert len(found) == 2
