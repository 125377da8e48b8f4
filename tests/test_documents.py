"""PDF and Word files, made here with real writer libraries, read through LlamaIndex's file
readers; a PDF citation names its page."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from index.documents import MAX_DOCX_UNPACKED
from index.passages import split_article
from index.readers import read_paths
from index.types import Article, ReadFailure
from tests.helpers import rag_env, run_rag
from tests.web_site import (
    PDF_PAGE_ONE,
    PDF_PAGE_TWO,
    make_docx,
    make_encrypted_pdf,
    make_pdf,
    make_scanned_pdf,
)

LIMIT = 5_000_000


def read(*paths: Path) -> list[Article | ReadFailure]:
    return list(read_paths(paths, LIMIT))


def test_pdf_pages_are_joined_and_each_page_keeps_its_range(tmp_path: Path) -> None:
    [article] = read(make_pdf(tmp_path / "harbour.pdf", [PDF_PAGE_ONE, PDF_PAGE_TWO]))
    assert isinstance(article, Article)
    assert article.title == "Harbour report"
    assert article.authors == "Port Elmwood Harbour Board"
    assert len(article.pages) == 2
    first, second = (article.text[a:b] for a, b in article.pages)
    assert first.startswith("Harbour report of Port Elmwood") and "Oona" not in first
    assert "Captain Oona Reyes" in second and "grain" not in second
    # Printed lines are joined back into sentences (no line break mid-sentence).
    assert "Captain Oona Reyes, who took office in March." in second


def test_passages_of_a_pdf_never_cross_a_page_and_carry_it(tmp_path: Path) -> None:
    [article] = read(make_pdf(tmp_path / "harbour.pdf", [PDF_PAGE_ONE, PDF_PAGE_TWO]))
    assert isinstance(article, Article)
    passages = split_article(article, max_words=200, overlap_words=40)
    assert {p.page for p in passages} == {1, 2}
    for passage in passages:
        start, end = article.pages[passage.page - 1]
        assert start <= passage.start and passage.end <= end
        assert article.text[passage.start:passage.end] == passage.text


def test_docx_text_title_and_author_come_from_the_document(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "minutes.docx", "Council minutes, 3 June",
                     ["The council of Varsa met on Monday.", "It approved the tram budget."])
    [article] = read(path)
    assert isinstance(article, Article)
    assert article.title == "Council minutes, 3 June" and article.authors == "Varsa Council"
    assert "It approved the tram budget." in article.text and article.pages == ()


def test_bad_pdfs_and_docx_fail_alone_with_a_message_that_says_what_to_do(
        tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", [PDF_PAGE_TWO])
    make_scanned_pdf(tmp_path / "scanned.pdf", tmp_path)
    make_encrypted_pdf(tmp_path / "locked.pdf", good)
    (tmp_path / "truncated.pdf").write_bytes(good.read_bytes()[:700])
    (tmp_path / "fake.pdf").write_text("this is not a PDF at all, only text")
    (tmp_path / "fake.docx").write_text("nor is this a Word file")
    (tmp_path / "old.docx").write_bytes(_zip({"hello.txt": b"a zip without a document"}))
    (tmp_path / "bomb.docx").write_bytes(_zip({"word/document.xml": b"<" * (
        MAX_DOCX_UNPACKED + 1)}))
    make_docx(tmp_path / "good.docx", "Ferry news", ["The ferry sails on Monday."])
    results = read(tmp_path)
    articles = sorted(Path(r.source).name for r in results if isinstance(r, Article))
    assert articles == ["good.docx", "good.pdf"]
    reasons = {Path(r.where).name: r.reason for r in results if isinstance(r, ReadFailure)}
    assert "scanned PDF" in reasons["scanned.pdf"] and "OCR" in reasons["scanned.pdf"]
    assert "password-protected" in reasons["locked.pdf"]
    assert "truncated" in reasons["truncated.pdf"]
    assert "damaged or truncated PDF" in reasons["fake.pdf"]
    assert "not a Word document" in reasons["fake.docx"]
    assert "no word/document.xml" in reasons["old.docx"]
    assert "zip bomb" in reasons["bomb.docx"]


def test_a_pdf_over_the_size_limit_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    big = make_pdf(tmp_path / "big.pdf", [PDF_PAGE_ONE] * 40)
    [failure] = list(read_paths([big], big.stat().st_size - 1))
    assert isinstance(failure, ReadFailure) and "RAG_MAX_FILE_MB" in failure.reason


def test_a_pdf_of_more_pages_than_read_fails_before_its_text_is_extracted(
        tmp_path: Path) -> None:
    from fpdf import FPDF

    from index.documents import MAX_PDF_PAGES

    pdf = FPDF()
    pdf.set_font("helvetica", size=8)
    for n in range(MAX_PDF_PAGES + 1):
        pdf.add_page()
        pdf.text(10, 10, f"page {n}")
    pdf.output(str(tmp_path / "long.pdf"))
    [failure] = read(tmp_path / "long.pdf")
    assert isinstance(failure, ReadFailure)
    assert f"{MAX_PDF_PAGES + 1} pages, more than the {MAX_PDF_PAGES}" in failure.reason


def test_pdf_answer_on_page_two_is_cited_with_its_page(tmp_path: Path) -> None:
    """The whole way through the command: ingest a two-page PDF and a Word file, ask about
    what only page 2 says, get a citation naming page 2."""
    env = rag_env(tmp_path / "data")
    pdf = make_pdf(tmp_path / "harbour.pdf", [PDF_PAGE_ONE, PDF_PAGE_TWO])
    docx = make_docx(tmp_path / "minutes.docx", "Council minutes",
                     ["The council of Varsa approved the tram budget on Monday."])
    ingested = run_rag("-q", "ingest", str(pdf), str(docx), env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert "2 added" in ingested.stdout
    asked = run_rag("ask", "--json", "Who is the new harbour master of Port Elmwood?",
                    env=env)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and "Oona Reyes" in answer["answer"]
    [citation] = answer["citations"]
    assert citation["page"] == 2 and "Oona Reyes" in citation["text"]
    assert citation["title"] == "Harbour report"
    text = run_rag("ask", "Who is the new harbour master of Port Elmwood?", env=env).stdout
    assert "p. 2" in text  # the terminal shows the page too
    docx_answer = json.loads(run_rag("ask", "--json", "What did the council of Varsa approve?",
                                     env=env).stdout)
    assert docx_answer["citations"] and docx_answer["citations"][0]["page"] is None


def _zip(members: dict[str, bytes]) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _understated(members: dict[str, bytes], claimed: int) -> bytes:
    """A zip whose headers (local and central) claim ``claimed`` bytes for every member."""
    import struct

    data = bytearray(_zip(members))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        while at != -1:
            data[at + offset:at + offset + 4] = struct.pack("<I", claimed)
            at = data.find(signature, at + 4)
    return bytes(data)


def test_a_docx_whose_zip_headers_understate_its_size_is_refused_without_inflating_it(
        tmp_path: Path) -> None:
    import resource

    body = b"<w:document>" + b"<w:t>A</w:t>" * (300_000_000 // 12) + b"</w:document>"
    (tmp_path / "liar.docx").write_bytes(_understated({"word/document.xml": body}, 1000))
    del body
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    [failure] = read(tmp_path)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert isinstance(failure, ReadFailure), failure
    assert "zip bomb" in failure.reason or "damaged" in failure.reason, failure.reason
    assert grown_mb < 100, f"reading it grew the process by {grown_mb:.0f} MB"
