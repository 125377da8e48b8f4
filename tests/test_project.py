"""Invariants of the project: import direction, documented settings, a fast `--help`."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT
from ui.settings import Settings

LAYERS = {"index": set(), "rag": {"index"}, "ui": {"rag", "index"}}


def _modules(path: Path) -> set[str]:
    """Every module ``path`` imports, in full (``index.store``), wherever the import is."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)}


def test_data_flows_one_way_ui_rag_index() -> None:
    for layer, allowed in LAYERS.items():
        for path in (ROOT / layer).rglob("*.py"):
            used = _imports(path) & set(LAYERS)
            assert used <= allowed | {layer}, f"{path.relative_to(ROOT)} imports {used}"


# The application layer and the composition root: the only ui modules that may import
# `index`, and `rag` beyond the result contract. ui.service owns every use case; ui.errors
# names the lower layers' errors for the front ends; ui.wiring, ui.settings and ui.llama build
# components (and their option types) from settings; ui.evaluation, ui.outcomes and
# ui.backfill (the second ingest stage run in the background) are parts of the service kept
# in modules of their own.
APPLICATION = {"service.py", "errors.py", "wiring.py", "settings.py", "llama.py",
               "evaluation.py", "outcomes.py", "backfill.py"}
CONTRACT = {"rag.result"}  # the result contract every front end renders


def test_front_ends_reach_the_lower_layers_only_through_the_service() -> None:
    """The CLI, the HTTP API, the OpenAI endpoint and the chat (and what they share) import
    no `index` module and, from `rag`, only the result contract."""
    front_ends = sorted(p for p in (ROOT / "ui").glob("*.py") if p.name not in APPLICATION)
    assert {"cli.py", "api.py", "openai_api.py", "chat.py"} <= {p.name for p in front_ends}
    for path in front_ends:
        lower = {m for m in _modules(path) if m.split(".")[0] in ("index", "rag")}
        assert lower <= CONTRACT, f"ui/{path.name} imports {sorted(lower - CONTRACT)}"


def test_one_filter_type_translated_once_in_index() -> None:
    """Filters is defined once, in index/filters.py; the dates' YYYYMMDD form is computed
    by one function; no second filter type or translation exists."""
    defined: dict[str, list[str]] = {}
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef | ast.FunctionDef):
                    defined.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert defined["Filters"] == ["index/filters.py"]
    assert defined["day_number"] == ["index/filters.py"]
    assert "to_where" in defined and defined["to_where"] == ["index/filters.py"]
    assert not [n for n in defined if n.lower().endswith("filter") and n != "Filters"]
    for layer in LAYERS:  # no hand-made YYYYMMDD conversions elsewhere
        for path in (ROOT / layer).rglob("*.py"):
            if path.name != "filters.py":
                assert '.replace("-", "")' not in path.read_text(), path


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


# Imported only when the in-process model is configured; installed only with its extra.
OPTIONAL = {"xllamacpp": ("local", "xllamacpp")}


def _requirement_name(requirement: str) -> str:
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_declared_dependency() -> None:
    """An older pip that ignores an extra (lxml[html_clean]) must still install all we
    import: each third-party module the app imports is named in pyproject itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    extras = {extra: {_requirement_name(r) for r in reqs}
              for extra, reqs in project["optional-dependencies"].items()}
    owners = importlib.metadata.packages_distributions()
    modules = set().union(*(_imports(p) for layer in LAYERS
                            for p in (ROOT / layer).rglob("*.py")))
    for module in sorted(modules - set(LAYERS) - set(sys.stdlib_module_names)):
        names = {_requirement_name(d) for d in owners.get(module, [])}
        if module in OPTIONAL and not names:  # its extra is not installed here
            extra, package = OPTIONAL[module]
            assert package in extras[extra], f"{module}: {package} not in the {extra} extra"
            continue
        assert names, f"{module} is imported but no installed package provides it"
        wanted = extras[OPTIONAL[module][0]] if module in OPTIONAL else declared
        assert names & wanted, f"{module} (from {sorted(names)}) is not in pyproject"
    assert "lxml-html-clean" in declared  # trafilatura's HTML cleaner, found only at run time


def test_every_bench_script_still_imports() -> None:
    """Benchmarks are not type-checked with the app; a module they use that moved or went
    away must still fail here, not on the day someone measures."""
    import importlib

    for path in sorted((ROOT / "bench").glob("*.py")):
        if path.name != "__init__.py":
            importlib.import_module(f"bench.{path.stem}")
