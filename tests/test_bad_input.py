"""Bad input is reported by name with what is wrong, and never stops the rest of a run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.readers import read_paths
from index.types import Article, ReadFailure
from tests.helpers import ROOT, open_store, rag_env, run_rag

MB = 1_000_000
GOOD_TEXT = ("Harbour Lights\n\nThe harbour authority of Port Ellen opened a new lighthouse on "
             "Tuesday. Engineers said the lamp can be seen from forty kilometres away.\n")


def _failures(results: list[Article | ReadFailure]) -> dict[str, str]:
    return {Path(r.where.split(" line ")[0]).name + (" line " + r.where.split(" line ")[1]
                                                      if " line " in r.where else ""): r.reason
            for r in results if isinstance(r, ReadFailure)}


@pytest.fixture()
def bad_folder(tmp_path: Path) -> Path:
    """A folder holding one file of every kind of bad input, and a few good ones."""
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    (folder / "latin1.txt").write_bytes(
        "Café in Zürich\n\nThe café on the Limmat served crème brûlée to the mayor of Zürich "
        "on Friday. Its owner, Señor Muñoz, said the recipe is older than the bridge.\n"
        .encode("latin-1"))
    (folder / "utf16-bom.txt").write_text(
        "Glacier report\n\nThe Aletsch glacier lost eleven metres of ice this summer, "
        "glaciologists in Brig reported. The retreat was the fastest they have measured.\n",
        encoding="utf-16")
    (folder / "utf16-nobom.md").write_bytes(
        "# Orchard news\n\nFarmers near Kraków picked a record apple harvest in September. "
        "The cooperative sold most of it to juice makers in Łódź.\n".encode("utf-16-le"))
    (folder / "mixed.jsonl").write_text("\n".join([
        json.dumps({"id": "rec-1", "title": "Bridge vote", "text": "The council of Moorhaven "
                    "voted to repair the old stone bridge. Work starts in March."}),
        '{"id": "rec-2", "title": "broken", "text": "unterminated',
        json.dumps({"id": "rec-3", "title": "No text field"}),
        json.dumps({"id": "rec-4", "title": "Ferry timetable", "text": "The Islay ferry "
                    "will sail twice a day from May. Tickets go on sale next week."}),
    ]) + "\n", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("  \n\n\t \n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64)
    with (folder / "huge.txt").open("wb") as handle:  # 50 MB of real text, written in one go
        handle.write(b"All work and no play makes Jack a dull boy. " * (50 * MB // 44 + 1))
    (folder / "broken.json").write_text('{"title": "x", "text": "y",,}', encoding="utf-8")
    (folder / "deep.json").write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    (folder / "no-body.html").write_text("<html><head><title>Only a head</title></head></html>",
                                         encoding="utf-8")
    (folder / "empty-body.htm").write_text("<!doctype html><html><body>\n</body></html>",
                                           encoding="utf-8")
    os.mkfifo(folder / "pipe.txt")  # reading it would block forever
    (folder / "dangling.txt").symlink_to(folder / "missing-target.txt")
    (folder / "self.txt").symlink_to(folder / "self.txt")
    (folder / "loop").symlink_to(folder)  # a folder that contains itself
    sub = folder / "sub"
    sub.mkdir()
    (sub / "back").symlink_to("..")
    (sub / "nested.txt").write_text("Nested valley\n\nShepherds in the Glen Coe valley moved "
                                    "their flocks to lower ground before the snow.\n",
                                    encoding="utf-8")
    return folder


EXPECTED_FAILURES = {
    "empty.txt": "empty file",
    "blank.md": "empty file",
    "binary.txt": "binary file",
    "huge.txt": "over the 25 MB limit",
    "broken.json": "invalid JSON at line 1",
    "deep.json": "nested too deeply",
    "no-body.html": "no article text",
    "empty-body.htm": "no article text",
    "pipe.txt": "not a regular file (a named pipe)",
    "dangling.txt": "broken symbolic link",
    "self.txt": "symbolic link loop",
    "mixed.jsonl line 2": "invalid JSON",
    "mixed.jsonl line 3": "no 'text' or 'body'",
    "loop": "symlink loop",
    "back": "symlink loop",
}
EXPECTED_TITLES = {"Harbour Lights", "Café in Zürich", "Glacier report", "Orchard news",
                   "Bridge vote", "Ferry timetable", "Nested valley"}


def test_every_bad_file_is_named_with_its_reason(bad_folder: Path) -> None:
    results = list(read_paths([bad_folder], max_bytes=25 * MB))
    failures = _failures(results)
    for name, reason in EXPECTED_FAILURES.items():
        assert name in failures, f"{name} was not reported; got {sorted(failures)}"
        assert reason in failures[name], (name, failures[name])
    assert set(failures) == set(EXPECTED_FAILURES)
    titles = {r.title for r in results if isinstance(r, Article)}
    assert titles == EXPECTED_TITLES


def test_latin1_and_utf16_files_are_read_as_the_same_text(bad_folder: Path) -> None:
    articles = {r.title: r for r in read_paths([bad_folder], max_bytes=25 * MB)
                if isinstance(r, Article)}
    assert "crème brûlée to the mayor of Zürich" in articles["Café in Zürich"].text
    assert "Señor Muñoz" in articles["Café in Zürich"].text
    assert "Aletsch glacier lost eleven metres" in articles["Glacier report"].text
    assert "Kraków" in articles["Orchard news"].text and "Łódź" in articles["Orchard news"].text
    assert all("\x00" not in a.text and "\ufffd" not in a.text for a in articles.values())


def test_size_limit_is_configurable_and_named(tmp_path: Path) -> None:
    at_limit = tmp_path / "at-limit.txt"
    at_limit.write_text("Limit check. " + "word " * 397 + "\n", encoding="utf-8")
    size = at_limit.stat().st_size
    assert isinstance(next(read_paths([at_limit], max_bytes=size)), Article)
    refused = next(read_paths([at_limit], max_bytes=size - 1))
    assert isinstance(refused, ReadFailure)
    assert f"over the {(size - 1) / MB:.3g} MB limit" in refused.reason
    assert "RAG_MAX_FILE_MB" in refused.reason


def test_missing_path_and_single_broken_link_are_named(tmp_path: Path) -> None:
    link = tmp_path / "gone.txt"
    link.symlink_to(tmp_path / "never-existed.txt")
    results = list(read_paths([tmp_path / "nope.txt", link], max_bytes=MB))
    assert [(Path(r.where).name, r.reason.split(" (")[0]) for r in results
            if isinstance(r, ReadFailure)] == [("nope.txt", "no such file or folder"),
                                                ("gone.txt", "broken symbolic link")]


@pytest.fixture()
def shared_tmp() -> Iterator[Path]:
    """A temporary folder another user can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="rag-perm-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        path.chmod(0o755)
    shutil.rmtree(folder)


def test_unreadable_file_and_folder_are_reported_not_skipped(shared_tmp: Path) -> None:
    """Permission denied, checked as an unprivileged user (root can read anything)."""
    (shared_tmp / "readable.txt").write_text(GOOD_TEXT, encoding="utf-8")
    secret = shared_tmp / "secret.txt"
    secret.write_text("Secret\n\nNobody but the owner may read this file at all.\n",
                      encoding="utf-8")
    secret.chmod(0o000)
    locked = shared_tmp / "locked"
    locked.mkdir()
    (locked / "inside.txt").write_text(GOOD_TEXT, encoding="utf-8")
    locked.chmod(0o000)
    # Import as the current user, then drop to 'nobody' when root (root reads anything).
    script = ("import json, os, sys\nfrom index.readers import read_paths\n"
              "if os.geteuid() == 0:\n    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
              "print(json.dumps([[type(r).__name__, getattr(r, 'where', None) or r.source, "
              "getattr(r, 'reason', getattr(r, 'title', ''))] "
              "for r in read_paths([sys.argv[1]], 10**6)]))")
    done = subprocess.run([sys.executable, "-c", script, str(shared_tmp)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    rows = json.loads(done.stdout)
    by_name = {Path(where).name: (kind, text) for kind, where, text in rows}
    assert by_name["readable.txt"] == ("Article", "Harbour Lights")
    assert by_name["secret.txt"] == ("ReadFailure", "cannot read file: Permission denied")
    assert by_name["locked"] == ("ReadFailure", "cannot read folder: Permission denied")
    assert len(rows) == 3


def test_cli_ingests_good_files_and_names_each_bad_one(bad_folder: Path,
                                                         tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = run_rag("ingest", str(bad_folder), env=rag_env(data, RAG_MAX_FILE_MB="40"))
    assert done.returncode == 1, done.stderr  # 1: some files failed, the rest were ingested
    failed = [line for line in done.stderr.splitlines() if line.startswith("rag: failed: ")]
    assert len(failed) == len(EXPECTED_FAILURES), failed
    for name, reason in EXPECTED_FAILURES.items():
        reason = "over the 40 MB limit" if name == "huge.txt" else reason
        assert any(name in line and reason in line for line in failed), (name, failed)
    assert "Traceback" not in done.stderr
    assert f"{len(EXPECTED_TITLES)} added" in done.stdout
    assert f"{len(EXPECTED_FAILURES)} failed" in done.stdout
    stored = open_store(data).articles()
    assert {a.title for a in stored} == EXPECTED_TITLES
    assert all(a.passages >= 1 for a in stored)
