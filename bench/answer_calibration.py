"""The data behind the extractive answerer's choice: every candidate sentence it weighs on
the answer dev sets (those the answerability gate accepts), with the features it is judged
by, and how rules on them would do.

    python -m bench.answer_calibration --data-dir /work/evaldata --dump cands.jsonl
    python -m bench.answer_calibration --load cands.jsonl --choose-on 2025

``--dump`` retrieves every row as the assistant does (as of its date, without its excluded
articles) and writes one line per row with its candidates. ``--load`` then tries, for each
way of scoring a candidate (a few, each with one weight at most), every abstention threshold
on the set named by ``--choose-on``, picks the threshold that maximises (answered correctly
on positives) + (abstained on negatives), and reports the same rule on the other set: a rule
is judged by the set it was not chosen on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.answer_sets import write_sets
from rag.answerers import ExtractiveAnswerer
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
                    features = answerer.features(row.question, candidates) if candidates \
                        else {}
                    lines.write(json.dumps({
                        "set": name, "part": part, "id": row.id, "question": row.question,
                        "answers": list(row.answers),
                        "in_top5": any(contains_answer(p.text, row.answers)
                                       for p in passages[:5]),
                        "candidates": [{"text": c.text, "passage": c.passage,
                                        "right": contains_answer(c.text, row.answers),
                                        **{k: round(float(v[i]), 4)
                                           for k, v in features.items()}}
                                       for i, c in enumerate(candidates)]}) + "\n")
            print(f"{name}: done", file=sys.stderr)


Score = Callable[[Row, float], float]
RULES: dict[str, Score] = {
    "current: 0.7 cos + 0.3 lexical": lambda c, w: 0.7 * c["cosine"] + 0.3 * c["lexical"]
    + c["prior"],
    "cos + w focus": lambda c, w: c["cosine"] + w * c["focus"],
    "cos + w lexical": lambda c, w: c["cosine"] + w * c["lexical"],
    "focus + w cos": lambda c, w: c["focus"] + w * c["cosine"],
}
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def outcome(rows: Sequence[Row], score: Score, weight: float,
            threshold: float) -> dict[str, float]:
    """Answered correctly (positives), abstained (negatives) under a rule."""
    right = abstained = positives = negatives = 0
    for row in rows:
        cands = [c for c in row["candidates"] if c["cosine"] > -1]
        best = max(cands, key=lambda c: score(c, weight)) if cands else None
        answers = best is not None and score(best, weight) >= threshold
        if row["part"] == "positives":
            positives += 1
            right += bool(answers and best is not None and best["right"])
        else:
            negatives += 1
            abstained += not answers
    return {"accuracy": right / max(1, positives), "abstention": abstained / max(1, negatives)}


def choose(rows: Sequence[Row], score: Score) -> tuple[float, float, dict[str, float]]:
    """The weight and threshold maximising accuracy + abstention on ``rows``."""
    best: tuple[float, float, dict[str, float]] | None = None
    for weight in WEIGHTS:
        values = sorted({round(score(c, weight), 3) for r in rows for c in r["candidates"]
                         if c["cosine"] > -1})
        for threshold in [-1.0, *values[::max(1, len(values) // 200)]]:
            got = outcome(rows, score, weight, threshold)
            if best is None or got["accuracy"] + got["abstention"] > sum(best[2].values()):
                best = (weight, threshold, got)
    assert best is not None
    return best


def report(rows: Sequence[Row], choose_on: str) -> None:
    sets = sorted({r["set"] for r in rows})
    negatives = sorted({r["part"] for r in rows} - {"positives"})
    print(f"chosen on {choose_on}, negatives: {', '.join(negatives)}\n")
    print("| rule | weight | threshold | " + " | ".join(
        f"{s} accuracy | {s} abstention" for s in sets) + " |")
    print("|---|---|---|" + "---|---|" * len(sets))
    for name, score in RULES.items():
        weight, threshold, _ = choose([r for r in rows if r["set"] == choose_on], score)
        cells = []
        for s in sets:
            got = outcome([r for r in rows if r["set"] == s], score, weight, threshold)
            cells += [f"{got['accuracy']:.3f}", f"{got['abstention']:.3f}"]
        print(f"| {name} | {weight} | {threshold:.3f} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--choose-on", default="2025", help="the set rules are chosen on")
    parser.add_argument("--parts", default="positives,answerless,negatives")
    args = parser.parse_args(argv)
    if args.dump:
        dump(args.data_dir, args.dump, args.sets.split(","))
    path = args.load or args.dump
    parts = set(args.parts.split(","))
    rows = [r for r in map(json.loads, path.read_text().splitlines()) if r["part"] in parts]
    report(rows, args.choose_on)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
