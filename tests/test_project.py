"""Invariants of the project: import direction, documented settings, a fast `--help`."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT
from ui.settings import Settings

LAYERS = {"index": set(), "rag": {"index"}, "ui": {"rag", "index"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_data_flows_one_way_ui_rag_index() -> None:
    for layer, allowed in LAYERS.items():
        for path in (ROOT / layer).rglob("*.py"):
            used = _imports(path) & set(LAYERS)
            assert used <= allowed | {layer}, f"{path.relative_to(ROOT)} imports {used}"


def test_index_and_rag_never_read_the_environment() -> None:
    for layer in ("index", "rag"):
        for path in (ROOT / layer).rglob("*.py"):
            text = path.read_text()
            assert "os.environ" not in text and "getenv" not in text, path


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`RAG_{name.upper()}`" in readme, f"RAG_{name.upper()} missing from README"
        assert field.description, f"{name} has no description"
