"""The `rag` command end to end, as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_DIR, free_port, rag_env, run_rag

QUESTIONS = ["Who brokered the ceasefire?", "Who won the 2018 FIFA World Cup?"]


@pytest.mark.parametrize("command", [[], ["ingest"], ["ask"], ["list"], ["remove"]])
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    result = run_rag(*command, "--help", env=rag_env(tmp_path))
    assert result.returncode == 0
    assert "usage: rag" in result.stdout


def test_ingest_ask_list_remove(tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data")
    first = run_rag("ingest", str(SAMPLE_DIR), env=env)
    assert first.returncode == 0, first.stderr
    assert "1 added" in first.stdout
    assert "all-MiniLM-L6-v2" in first.stderr and "Chroma" in first.stderr  # says what is used
    again = run_rag("ingest", str(SAMPLE_DIR), env=env)
    assert "0 added, 1 unchanged" in again.stdout and "passages written: 0" in again.stdout

    asked = run_rag("ask", "--json", *QUESTIONS, env=env)
    assert asked.returncode == 0, asked.stderr
    results = [json.loads(line) for line in asked.stdout.splitlines()]
    assert [r["question"] for r in results] == QUESTIONS
    cited, abstained = results
    assert not cited["abstained"] and "Moscow and Washington" in cited["answer"]
    assert set(cited["citations"][0]) >= {"marker", "article_id", "title", "source", "url",
                                          "published", "passage_id", "text", "start", "end",
                                          "score"}
    assert abstained["abstained"] and abstained["citations"] == []

    listed = run_rag("list", "--json", env=env)
    [article] = json.loads(listed.stdout)
    assert set(article) == {"id", "title", "source", "url", "published", "passages"}
    assert article["passages"] >= 1

    removed = run_rag("remove", article["id"], env=env)
    assert removed.returncode == 0
    assert json.loads(run_rag("list", "--json", env=env).stdout) == []
    assert run_rag("remove", article["id"], env=env).returncode == 1


def test_plain_ask_prints_the_answer_then_the_cited_passages(tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data")
    run_rag("ingest", "-q", str(SAMPLE_DIR), env=env)
    out = run_rag("ask", "Who brokered the ceasefire?", env=env).stdout
    answer, _, sources = out.partition("\n\n")
    assert answer.rstrip().endswith("[1]")
    assert sources.startswith("[1] Syria: UN pressures Russia")
    assert "brokered earlier this month" in sources


def test_collections_keep_corpora_apart(tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "bees.txt").write_text("Bees\n\nHoneybees pollinate crops in spring.")
    run_rag("ingest", "-q", str(SAMPLE_DIR), env=env)
    run_rag("ingest", "-q", "--collection", "bees", str(tmp_path / "other"), env=env)
    default = json.loads(run_rag("list", "--json", env=env).stdout)
    bees = json.loads(run_rag("list", "--json", "--collection", "bees", env=env).stdout)
    assert [a["title"] for a in bees] == ["Bees"]
    assert [a["title"] for a in default] != ["Bees"] and len(default) == 1


def test_failed_file_gives_exit_1_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.txt").write_text("Fine\n\nA fine article.")
    (tmp_path / "in" / "bad.jsonl").write_text("{nope\n")
    result = run_rag("ingest", "-q", str(tmp_path / "in"), env=rag_env(tmp_path / "data"))
    assert result.returncode == 1
    assert "bad.jsonl line 1" in result.stderr and "1 added" in result.stdout


def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data", RAG_CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    result = run_rag("list", env=env, timeout=120)
    assert result.returncode == 2
    assert "cannot open the Chroma store" in result.stderr
    assert "Traceback" not in result.stderr


def test_asking_an_empty_store_says_to_ingest_first(tmp_path: Path) -> None:
    result = run_rag("ask", "anything?", env=rag_env(tmp_path / "data"))
    assert result.returncode == 2 and "rag ingest" in result.stderr


def test_what_a_new_user_types_gets_one_clear_line(tmp_path: Path) -> None:
    env = rag_env(tmp_path / "data")
    missing = run_rag("ingest", "-q", str(tmp_path / "nothere.txt"), env=env)
    assert missing.returncode == 1
    assert missing.stderr.count("nothere.txt") == 1, missing.stderr  # reported once
    assert run_rag("ingest", "-q", str(SAMPLE_DIR), env=env).returncode == 0

    both = run_rag("ask", *QUESTIONS, env=env)
    assert both.returncode == 0, both.stderr
    first, second = (both.stdout.index(f"Q: {q}") for q in QUESTIONS)
    assert first == 0 and first < both.stdout.index("Moscow and Washington") < second

    for args, expected in [(["ask", ""], "rag: error: question: must not be empty"),
                           (["eval", str(tmp_path / "missing.jsonl")],
                            f"rag: error: {tmp_path / 'missing.jsonl'}: no such file"),
                           (["ask", "--source", "bogus.example", "Who?"],
                            "rag: error: filters.sources: unknown source 'bogus.example'"),
                           (["ask", "--since", "2016-09-30", "--until", "2016-09-01", "Who?"],
                            "rag: error: --since/--until: the date range starts (2016-09-30) "
                            "after it ends (2016-09-01): swap the two dates")]:
        result = run_rag(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines()  # what it uses aside
                 if not line.startswith(("rag: store:", "rag: answerer:"))]
        assert len(lines) == 1 and lines[0].startswith(expected), (args, result.stderr)
    bogus = run_rag("ask", "--bogus", "Who?", env=env)
    assert bogus.returncode == 2 and bogus.stderr.startswith("usage: rag ask")
    assert "unrecognized arguments: --bogus" in bogus.stderr
    since = run_rag("ask", "--since", "2025-13-45", "Who?", env=env)
    assert since.returncode == 2 and "not a date on the calendar" in since.stderr
    listed = json.loads(run_rag("list", "--json", env=env).stdout)
    assert [a["source"] for a in listed] == ["aleppo-un-russia-2016.txt"]  # a name, no path


def test_an_answer_only_renumbered_by_the_check_is_printed_once(capsys) -> None:
    from rag.result import Answer, Citation, RetrievedPassage
    from ui.cli import print_streamed_answer

    def passage(n: int) -> dict[str, object]:
        return {"passage_id": f"a#{n}", "article_id": "a", "title": f"Title {n}",
                "source": "s", "text": f"Passage {n} text.", "start": 0, "end": 10,
                "score": 0.5}

    cited = Citation(**passage(3), marker=1)
    answer = Answer(question="Q?", answer="Mara Quill arranged it. [1]", abstained=False,
                    citations=[cited], passages=[RetrievedPassage(**passage(n))
                                                 for n in (1, 2, 3)], answerer="model")
    print_streamed_answer(iter(["Mara Quill arranged it. [3]", answer]))
    out = capsys.readouterr().out
    assert out.count("Mara Quill arranged it.") == 1, out
    assert "[citations renumbered: [3] is [1]]" in out and "[1] Title 3" in out


def test_rag_list_counts_in_words_and_cuts_titles_between_words() -> None:
    from ui.cli import _shortened, plural

    assert (plural(1, "passage"), plural(2, "passage"), plural(0, "article")) == (
        "1 passage", "2 passages", "0 articles")
    title = "Security Council meets on Aleppo as the ceasefire collapses and aid stalls again"
    cut = _shortened(title, 40)
    assert len(cut) <= 40 and cut.endswith("…") and title.startswith(cut[:-1])
    assert title[len(cut) - 1] == " "  # cut where a word ends, never inside one
    assert _shortened("Short title", 40) == "Short title"


def test_log_lines_during_an_ingest_are_printed_above_its_progress_bars(
        tmp_path: Path) -> None:
    import re

    done = run_rag("ingest", str(SAMPLE_DIR), env=rag_env(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    pieces = re.split(r"[\r\n]", done.stderr)
    assert any("embedding model" in p for p in pieces)
    assert all(p.startswith("rag: ") for p in pieces if "rag: " in p), done.stderr
