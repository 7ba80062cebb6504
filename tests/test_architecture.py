"""The house rules of docs/ARCHITECTURE.md, checked on the code itself: which way imports go, no import circles,
no side effects on import, a model/ that loads neither the database nor the queue, and modules of a readable size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grimp

from tests.conftest import REPO_ROOT

PACKAGES = ("core", "model", "producer", "worker")
MAX_LINES = 300


def package_modules() -> list[str]:
    """Every module of the four packages, by its dotted name (migrations excepted: alembic loads them by path)."""
    names = []
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).with_suffix("")
            if "migrations" in relative.parts:
                continue
            parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
            names.append(".".join(parts))
    return names


def run_python(code: str, *, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")} | {"PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold() -> None:
    """import-linter's contracts in pyproject.toml: layers producer > worker > model > core, and what each may
    not import."""
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "KEPT" in result.stdout


def test_the_command_line_asks_core_and_never_imports_the_tables() -> None:
    """No producer module imports ``core.schema``, TYPE_CHECKING blocks included (grimp, like import-linter's
    contract in pyproject.toml, counts them): core's functions hand the CLI read shapes."""
    graph = grimp.build_graph(*PACKAGES)
    importers = graph.find_modules_that_directly_import("core.schema")
    assert sorted(name for name in importers if name.split(".")[0] == "producer") == []


def test_no_module_imports_itself_through_a_circle() -> None:
    graph = grimp.build_graph(*PACKAGES)
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                circles.append((importer, *back))
    assert circles == []


def test_importing_any_module_writes_nothing_to_the_working_directory(tmp_path: Path) -> None:
    """Every module, ``worker.app`` included (it builds the Celery app on import, for ``celery -A``), on the
    embedded default: an empty folder stays empty."""
    modules = package_modules()
    assert "worker.app" in modules and "core.celery_app" in modules and "producer.commands.enqueue" in modules
    result = run_python(f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_model_library_loads_neither_the_database_nor_the_queue(tmp_path: Path) -> None:
    code = ("import json, sys\nimport model.predict, model.train, model.checkpoint\n"
            "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in "
            "('sqlalchemy', 'celery', 'kombu', 'alembic', 'pydantic_settings', 'typer'))))")
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_modules_stay_small() -> None:
    sizes = {name: len((REPO_ROOT / Path(*name.split("."))).with_suffix(".py").read_text().splitlines())
             for name in package_modules() if not (REPO_ROOT / Path(*name.split("."))).is_dir()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
