"""`python -m bench.answer_eval` on our own set: real ingest, real assistant, one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.answer_eval import COLUMNS, main
from bench.answer_sets import OWN_PARTS
from rag.eval import METRIC_KEYS


def test_answer_eval_measures_every_part_and_reuses_its_collection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "rows.jsonl"
    assert main(["--data-dir", str(tmp_path), "--sets", "own", "--json", "-q",
                 "--rows", str(rows)]) == 0
    first = json.loads(capsys.readouterr().out)
    dumped = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(dumped) == 60 and {r["part"] for r in dumped} == set(OWN_PARTS)
    assert all(r["abstained"] is not None and r["id"] for r in dumped)
    assert any(r["condensed_question"] for r in dumped if r["part"] == "followups")
    own = first["sets"]["own"]
    assert set(own["parts"]) == {*OWN_PARTS, "all"}
    for part in own["parts"].values():
        assert tuple(part["metrics"]) == METRIC_KEYS
        assert part["cpu_s"] >= 0 and part["wall_s"] > 0 and part["load"] is not None
    merged = own["parts"]["all"]["metrics"]
    assert merged["n_questions"] == 60 and merged["followup_accuracy"] is not None
    assert merged["false_answer_rate"] is not None and merged["hits@5"] is not None
    assert first["use_dates"] and first["answerer"].startswith("extractive")

    assert main(["--data-dir", str(tmp_path), "--sets", "own", "-q"]) == 0
    printed = capsys.readouterr().out
    assert f"`{own['collection']}`" in printed and f"({own['passages']} passages" in printed
    header = next(line for line in printed.splitlines() if line.startswith("| part"))
    assert all(column in header for column in COLUMNS)
    assert (tmp_path / "answer-sets" / "own" / "followups.jsonl").is_file()

    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(first), encoding="utf-8")
    assert main(["--tables-from", str(saved)]) == 0
    assert header in capsys.readouterr().out


def test_answer_eval_refuses_an_unknown_set(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--data-dir", str(tmp_path), "--sets", "own,nope"])
