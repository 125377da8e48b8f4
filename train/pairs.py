"""Training pairs for the answer-sentence model: (question, title | sentence, label).

Labels are distant, as the training set's README says: a sentence holding an answer string
is a positive. Negatives are what the model must learn to tell apart from the answer: the
sentences of the same and same-topic articles that share the most words with the question
("near"), sentences that hold one of the quiz's wrong options ("option"), and a few others of
the same articles ("other"). Same-topic articles are found the way the product finds them,
by BM25 over the whole training corpus.

    python -m train.pairs --data ../shared/train/realtimeqa-train --out train/out/pairs.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bm25s
from tqdm import tqdm

from index.clean import is_boilerplate
from index.passages import sentence_spans
from rag.terms import content_terms, flat, stem_set
from train.scorer import pair_text

SEED = 13
SAME_TOPIC = 8  # articles retrieved per question besides its gold ones
MAX_POSITIVE = 4
MAX_NEAR = 6
MAX_OPTION = 3
MAX_OTHER = 2
MIN_WORDS, MAX_WORDS = 5, 80


@dataclass(frozen=True)
class Sentence:
    title: str
    text: str


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def digest(*paths: Path) -> str:
    """sha256 over the files, recorded beside the model so a retrain can be matched."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def _sentences(article: dict[str, Any]) -> list[Sentence]:
    text = article.get("text") or ""
    out = []
    for a, b in sentence_spans(text):
        s = " ".join(text[a:b].split())
        if MIN_WORDS <= len(s.split()) <= MAX_WORDS and not is_boilerplate(s):
            out.append(Sentence(article.get("title") or "", s))
    return out


def _holds(text: str, needle: str) -> bool:
    """Whole-word, case- and quote-insensitive containment."""
    n = flat(needle)
    return bool(n) and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", flat(text)) is not None


def build(data: Path, seed: int = SEED) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    articles = list(read_jsonl(data / "articles.jsonl"))
    by_id = {a["id"]: a for a in articles}
    by_url = {a.get("url") or a["id"]: a for a in articles}
    corpus = [content_terms(f"{a.get('title') or ''} {a.get('text') or ''}") for a in articles]
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    cache: dict[str, list[Sentence]] = {}
    questions = list(read_jsonl(data / "questions.jsonl"))
    for q in tqdm(questions, desc="pairs", unit="question"):
        gold = [by_url.get(u) or by_id.get(u) for u in q.get("gold_urls", [])]
        ids = [a["id"] for a in gold if a]
        k = min(SAME_TOPIC + len(ids), len(articles))
        hits, _ = retriever.retrieve([content_terms(q["question"])], k=k, show_progress=False)
        ids += [articles[i]["id"] for i in hits[0] if articles[i]["id"] not in ids]
        pool: list[Sentence] = []
        for aid in ids[:SAME_TOPIC + len(gold)]:
            if aid not in cache:
                cache[aid] = _sentences(by_id[aid])
            pool.extend(cache[aid])
        yield from _pairs(q, pool, rng)


def _pairs(q: dict[str, Any], pool: list[Sentence],
           rng: random.Random) -> Iterator[dict[str, Any]]:
    answers = [a for a in q.get("answers", []) if len(flat(a)) >= 2]
    wrong = [c for c in q.get("choices", []) if c not in q.get("answers", [])
             and len(flat(c)) >= 2]
    if not answers:
        return
    terms = stem_set(q["question"])
    scored = sorted(dict.fromkeys(pool), key=lambda s: -len(terms & stem_set(s.text)))
    positive = [s for s in scored if any(_holds(s.text, a) for a in answers)]
    rest = [s for s in scored if s not in set(positive)]
    if not positive:
        return
    option = [s for s in rest if any(_holds(s.text, w) for w in wrong)][:MAX_OPTION]
    near = [s for s in rest if s not in set(option)][:MAX_NEAR]
    others = [s for s in rest if s not in set(option) | set(near)]
    other = rng.sample(others, min(MAX_OTHER, len(others)))
    week = q.get("date", "")[:7]
    for kind, group, label in (("positive", positive[:MAX_POSITIVE], 1), ("near", near, 0),
                               ("option", option, 0), ("other", other, 0)):
        for s in group:
            yield {"qid": q["id"], "week": week, "question": q["question"],
                   "text": pair_text(s.title, s.text), "label": label, "kind": kind}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/train/realtimeqa-train"),
                        help="folder with questions.jsonl and articles.jsonl")
    parser.add_argument("--out", type=Path, default=Path("train/out/pairs.jsonl"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with args.out.open("w", encoding="utf-8") as out:
        for row in build(args.data, args.seed):
            counts[row["kind"]] = counts.get(row["kind"], 0) + 1
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    meta = {"data_sha256": digest(args.data / "questions.jsonl", args.data / "articles.jsonl"),
            "seed": args.seed, "pairs": counts}
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
