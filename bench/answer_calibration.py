"""The data behind the extractive answerer's choice: every candidate sentence it weighs on
the answer dev sets (those the answerability gate accepts), with the features it is judged
by, and how rules on them would do.

    python -m bench.answer_calibration --data-dir ../evaldata --dump cands.jsonl
    python -m bench.answer_calibration --load cands.jsonl

``--dump`` retrieves every row as the assistant does (as of its date, without its excluded
articles) and writes one line per row with its candidates and the one the answerer chose.
``--load`` then prints, for every abstention threshold (``min_score``), the share of
answerable rows answered rightly and of unanswerable rows abstained on, per set: the
trade-off ``RAG_ANSWER_MIN_SCORE`` sets (docs/answers.md says how the default was chosen).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.answer_sets import write_sets
from rag.answerers import ExtractiveAnswerer, ExtractiveOptions
from rag.eval import contains_answer, load_questions
from ui.evaluation import open_eval
from ui.settings import load_settings
from ui.wiring import build_embedder

PARTS = ("positives", "answerless", "negatives")
Row = dict[str, Any]


def dump(data_dir: Path, out: Path, sets: Sequence[str]) -> None:
    settings = load_settings(data_dir=data_dir)
    found = write_sets(data_dir / "answer-sets", sets)
    embedder = build_embedder(settings)
    with out.open("w", encoding="utf-8") as lines:
        for name in sets:
            components = open_eval(settings, found[name].articles, embedder=embedder)
            assistant = components.assistant
            answerer = assistant.answerer
            assert isinstance(answerer, ExtractiveAnswerer)
            for part in PARTS:
                if part not in found[name].parts:
                    continue
                for row in load_questions(found[name].parts[part]):
                    passages = assistant.retriever.retrieve(row.question, settings.top_k,
                                                            row.filters(), row.as_of)
                    candidates = answerer._candidates(row.question, passages)
                    titles = [p.title for p in passages]
                    features = answerer.features(row.question, candidates, titles) \
                        if candidates else {}
                    chosen: dict[str, Any] = {}
                    if candidates:
                        scores = answerer._score(row.question, candidates, titles)
                        features["score"] = scores
                        best = int(np.argmax(scores))
                        short = answerer._short(answerer.gate.frame(row.question),
                                                candidates[best])
                        chosen = {"index": best, "short": short,
                                  "right": contains_answer(candidates[best].text, row.answers)
                                  or bool(short and contains_answer(short, row.answers))}
                    lines.write(json.dumps({
                        "set": name, "part": part, "id": row.id, "question": row.question,
                        "answers": list(row.answers),
                        "in_top5": any(contains_answer(p.text, row.answers)
                                       for p in passages[:5]),
                        "chosen": chosen,
                        "candidates": [{"text": c.text, "passage": c.passage,
                                        "right": contains_answer(c.text, row.answers),
                                        **{k: round(float(v[i]), 4)
                                           for k, v in features.items()}}
                                       for i, c in enumerate(candidates)]}) + "\n")
            print(f"{name}: done", file=sys.stderr)


def decide(row: Row, threshold: float) -> tuple[bool, bool]:
    """(answers, answers rightly) for a row when the answerer abstains below ``threshold``
    (its chosen sentence's score, as ExtractiveAnswerer computes it)."""
    chosen = row["chosen"]
    if not chosen:
        return False, False
    score = row["candidates"][chosen["index"]]["score"]
    return score >= threshold, score >= threshold and bool(chosen["right"])


def outcome(rows: Sequence[Row], threshold: float) -> dict[str, float]:
    """Answered correctly (of positives) and abstained (of negatives) at a threshold."""
    pos = [r for r in rows if r["part"] == "positives"]
    neg = [r for r in rows if r["part"] != "positives"]
    right = sum(decide(r, threshold)[1] for r in pos)
    answered = sum(decide(r, threshold)[0] for r in neg)
    return {"accuracy": right / max(1, len(pos)),
            "abstention": 1 - answered / max(1, len(neg))}


THRESHOLDS = [round(-1.0 + 0.05 * i, 2) for i in range(0, 37)]


def report(rows: Sequence[Row], current: float) -> None:
    """The whole curve on every set: what a threshold gives where it was not chosen."""
    sets = sorted({r["set"] for r in rows})
    print("| min_score | " + " | ".join(f"{s} accuracy | {s} abstention" for s in sets)
          + " |")
    print("|---|" + "---|---|" * len(sets))
    for t in [t for t in THRESHOLDS if t >= 0.2]:
        cells = [f"{v:.3f}" for s in sets
                 for v in outcome([r for r in rows if r["set"] == s], t).values()]
        mark = " (default)" if abs(t - current) < 1e-9 else ""
        print(f"| {t}{mark} | " + " | ".join(cells) + " |")
    top = [r for r in rows if r["part"] == "positives"]
    reachable = np.mean([any(c["right"] for c in r["candidates"]) for r in top])
    print(f"\npositives with a right candidate after the gate: {reachable:.3f}; with the "
          f"answer in the top 5 passages: {np.mean([r['in_top5'] for r in top]):.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="persistent data folder (dump)")
    parser.add_argument("--dump", type=Path, help="write the candidates here")
    parser.add_argument("--load", type=Path, help="read candidates written by --dump")
    parser.add_argument("--sets", default="dev,2025")
    parser.add_argument("--parts", default="positives,answerless,negatives")
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.data_dir, args.dump, args.sets.split(","))
    path = args.load or args.dump
    parts = set(args.parts.split(","))
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if r["part"] in parts]
    report(rows, ExtractiveOptions().min_score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
