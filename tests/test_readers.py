"""Reading articles from files: formats, metadata, and failures reported by name."""

from __future__ import annotations

import json
from pathlib import Path

from index.readers import read_paths
from index.types import Article, ReadFailure

LIMIT = 1_000_000


def _read(*paths: Path) -> tuple[list[Article], list[ReadFailure]]:
    results = list(read_paths(paths, LIMIT))
    return ([r for r in results if isinstance(r, Article)],
            [r for r in results if isinstance(r, ReadFailure)])


def test_text_file_title_is_its_first_non_empty_line(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("\n\n  Storm hits coast  \n\nThe storm arrived at dawn.\n")
    (tmp_path / "b.md").write_text("# Budget passes\n\nThe budget passed on Tuesday.\n")
    articles, failures = _read(tmp_path)
    assert not failures
    assert sorted(a.title for a in articles) == ["Budget passes", "Storm hits coast"]
    assert all(a.source.endswith((".txt", ".md")) for a in articles)


def test_html_gives_main_text_and_metadata(tmp_path: Path) -> None:
    body = " ".join(["The council approved the new bridge after a long debate."] * 8)
    (tmp_path / "page.html").write_text(f"""<html><head><title>Bridge approved</title>
<meta name="author" content="Jane Doe"><meta property="og:site_name" content="City News">
<meta property="article:published_time" content="2022-06-14T09:00:00Z"></head>
<body><nav>Home | Sports | Weather</nav><article><h1>Bridge approved</h1><p>{body}</p>
<p>{body}</p></article><footer>Copyright City News</footer></body></html>""")
    articles, failures = _read(tmp_path / "page.html")
    assert not failures
    [article] = articles
    assert article.title == "Bridge approved"
    assert "council approved the new bridge" in article.text
    assert "Home | Sports" not in article.text
    assert article.published == "2022-06-14"
    assert "Jane Doe" in article.authors


def test_json_and_jsonl_records_keep_their_fields(tmp_path: Path) -> None:
    record = {"id": "r1", "title": "T", "body": "Some text here.", "url": "https://ex.com/a",
              "published": "2022-06-17T10:00:00", "authors": ["A", "B"], "source": "Ex"}
    (tmp_path / "one.json").write_text(json.dumps(record))
    (tmp_path / "many.jsonl").write_text(
        json.dumps({"text": "First article text.", "url": "https://www.site.org/x"}) + "\n\n"
        + json.dumps({"text": "Second article text.", "id": "r3"}) + "\n")
    articles, failures = _read(tmp_path)
    assert not failures
    by_id = {a.id: a for a in articles}
    assert by_id["r1"].published == "2022-06-17" and by_id["r1"].authors == "A, B"
    assert by_id["r1"].text == "Some text here." and by_id["r1"].source == "Ex"
    first = next(a for a in articles if a.url == "https://www.site.org/x")
    assert first.source == "site.org" and len(first.id) == 16
    assert "r3" in by_id


def test_bad_files_are_reported_by_name_and_the_rest_are_read(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Good article\n\nIt has text.")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "broken.json").write_text('{"text": "unterminated')
    (tmp_path / "lines.jsonl").write_text('{"text": "ok line"}\n{not json}\n{"title": "no text"}\n')
    articles, failures = _read(tmp_path)
    assert sorted(a.text for a in articles) == ["Good article\n\nIt has text.", "ok line"]
    reasons = {Path(f.where.split(" line ")[0]).name + (" line " + f.where.split(" line ")[1]
               if " line " in f.where else ""): f.reason for f in failures}
    assert "empty" in reasons["empty.txt"]
    assert "binary" in reasons["binary.txt"]
    assert "invalid JSON" in reasons["broken.json"]
    assert "invalid JSON" in reasons["lines.jsonl line 2"]
    assert "'text'" in reasons["lines.jsonl line 3"]


def test_missing_path_and_oversized_file_are_failures(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("word " * 300_000)
    _, failures = _read(tmp_path / "nope.txt", big)
    assert [Path(f.where).name for f in failures] == ["nope.txt", "big.txt"]
    assert "no such file" in failures[0].reason
    assert "limit" in failures[1].reason and "RAG_MAX_FILE_MB" in failures[1].reason


def test_same_text_with_different_spacing_gets_the_same_id(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Title\n\nSome   text.\n")
    (tmp_path / "b.txt").write_text("Title\nSome text.")
    articles, _ = _read(tmp_path)
    assert articles[0].id == articles[1].id
