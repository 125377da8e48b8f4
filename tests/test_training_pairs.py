"""The training recipe's data step (train/pairs.py), on questions and articles written here:
answer sentences are positives, sentences holding a wrong quiz option and same-topic
sentences are negatives, and the data digest and seed are recorded."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import write_jsonl
from train.pairs import main

ARTICLES = [
    {"id": "a1", "url": "https://n.test/a1", "title": "Taiwan and Thailand on equal marriage",
     "text": "Taiwan became the first place in Asia to legalise same-sex marriage in 2019. "
             "Thailand became the third place in Asia to do so this week. Hundreds of "
             "couples registered their marriages in Bangkok on the first day."},
    {"id": "a2", "url": "https://n.test/a2", "title": "Bangkok weddings",
     "text": "Couples queued outside district offices in Bangkok on Thursday morning. "
             "Officials said more than 1,400 marriages were registered across the country."},
    {"id": "a3", "url": "https://n.test/a3", "title": "Ferry repaint in Brora",
     "text": "The ferries of Brora will be repainted in teal and silver over the winter. "
             "The council said the work would cost 48,000 euros in total this year."},
]
QUESTIONS = [
    {"id": "q1", "question": "Which country was the first in Asia to legalise same-sex "
     "marriage?", "answers": ["Taiwan"], "choices": ["Taiwan", "Thailand", "Japan", "Nepal"],
     "gold_urls": ["https://n.test/a1"], "date": "2024/06/20"},
    {"id": "q2", "question": "How much will the work on the Brora ferries cost?",
     "answers": ["48,000 euros"], "choices": ["48,000 euros", "12,000 euros", "1 million"],
     "gold_urls": ["https://n.test/a3"], "date": "2024/11/02"},
]


def test_pairs_label_answers_wrong_options_and_same_topic_sentences(tmp_path: Path) -> None:
    data = tmp_path / "train"
    data.mkdir()
    write_jsonl(data / "articles.jsonl", ARTICLES)
    write_jsonl(data / "questions.jsonl", QUESTIONS)
    out = tmp_path / "pairs.jsonl"
    main(["--data", str(data), "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    q1 = [r for r in rows if r["qid"] == "q1"]
    positives = [r["text"] for r in q1 if r["label"] == 1]
    assert positives and all("Taiwan" in t for t in positives)
    # the sentence naming a wrong option ("third place ... Thailand") is a hard negative
    assert any("third place" in r["text"] and r["kind"] == "option" and r["label"] == 0
               for r in q1)
    assert all("Taiwan" not in r["text"].split(" | ", 1)[1] for r in q1 if r["label"] == 0)
    q2 = [r for r in rows if r["qid"] == "q2"]
    assert [r["label"] for r in q2 if "48,000 euros" in r["text"]] == [1]
    # every pair carries the article title before the sentence
    assert all(" | " in r["text"] for r in rows)
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert len(meta["data_sha256"]) == 64 and meta["seed"] == 13
    assert meta["pairs"]["positive"] == sum(r["label"] for r in rows)
