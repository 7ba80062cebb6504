"""The house rules of docs/ARCHITECTURE.md, checked on the code itself: which way imports go, no import circles,
no side effects on import (no file written; no logger, warnings filter or matplotlib backend changed), a model/
that loads neither the database nor the queue, and modules of a readable size. Every check covers all five
packages, api/ included."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

from tests.conftest import REPO_ROOT

PACKAGES = ("core", "model", "producer", "worker", "api")
MAX_LINES = 300
# Beside the packages, what may call their functions: the benchmarks, the scripts and the builders they share.
CALLERS = ("bench", "scripts", "testkit")
# Public functions and methods that nothing in the repository calls by name, kept on purpose: who calls them.
CALLED_FROM_OUTSIDE = {
    "forward": "torch.nn.Module.__call__",
    "predict_batch": "a Python caller of the model library (its one-call API, STYLE.md item 2)",
    "reset": "a process that goes on with other settings after running tasks (the tests)",
    "resume_fetches": "a process that goes on after stop_fetches (the tests)",
    "settings_customise_sources": "pydantic-settings, building Settings",
    "box_area_m2": "a Python caller wanting any lon/lat box's area (the tile form is its special case)",
    "get_field_value": "pydantic-settings' source protocol (core.settings._Grouped reads all at once)",
}


def package_modules() -> list[str]:
    """Every module of the five packages, by its dotted name (migrations excepted: alembic loads them by path)."""
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
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TILECLASS_") and k not in ("MPLBACKEND", "PYTHONWARNINGS")} \
        | {"PYTHONPATH": str(REPO_ROOT)}
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
    assert "api.main" in modules
    result = run_python(f"import importlib\nfor name in {modules!r}:\n    importlib.import_module(name)\n",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# What a process shares with everything in it: logger levels and handlers, warnings filters, matplotlib's backend.
# Printed as JSON by the code below, before and after importing the project's modules.
_GLOBAL_STATE = """
def global_state():
    import logging, sys, warnings
    loggers = {"": logging.getLogger()} | {name: logger for name, logger in logging.root.manager.loggerDict.items()
                                             if isinstance(logger, logging.Logger)}
    backend = sys.modules["matplotlib"].get_backend(auto_select=False) if "matplotlib" in sys.modules else None
    return {"logging": {name: [logger.level, [type(h).__name__ for h in logger.handlers], logger.propagate,
                               logger.disabled] for name, logger in loggers.items()},
            "logging.disable": logging.root.manager.disable,
            "warnings": [[action, getattr(message, "pattern", message), category.__name__,
                          getattr(module, "pattern", module), line]
                         for action, message, category, module, line in warnings.filters],
            "matplotlib": backend}
"""


def test_importing_any_module_changes_no_logger_warnings_filter_or_matplotlib_backend(tmp_path: Path) -> None:
    """Logging, warnings and the plotting backend belong to whoever runs the process (the CLI, a worker, a test):
    a module configures them where it needs them, never on import. Third-party libraries may configure their own
    on import, so they are imported first, in the order the project's modules import them (a first process finds
    it), and only what changes after that counts."""
    modules = package_modules()
    found = run_python(f"import importlib, json, sys\nbefore = set(sys.modules)\nfor name in {modules!r}:\n"
                       "    importlib.import_module(name)\n"
                       f"print(json.dumps([name for name in sys.modules if name not in before "
                       f"and name.split('.')[0] not in {PACKAGES!r}]))\n", cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    libraries = json.loads(found.stdout.splitlines()[-1])
    assert "matplotlib" in libraries and "httpx" in libraries  # what the check is about is among them
    code = (f"import importlib, json, sys\n{_GLOBAL_STATE}\n"
            f"for name in {libraries!r}:\n    try:\n        importlib.import_module(name)\n"
            "    except Exception:\n        pass  # a library's optional part, which its importer skipped likewise\n"
            "before = global_state()\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps([before, global_state()]))\n")
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before, after = json.loads(result.stdout.splitlines()[-1])
    untouched = [0, [], True, False]  # a logger made by getLogger and left alone: level, handlers, propagate, disabled
    changes = {
        "loggers": {name: state for name, state in after["logging"].items()
                    if state != before["logging"].get(name, untouched)},
        "logging.disable": [after["logging.disable"]] if after["logging.disable"] != before["logging.disable"] else [],
        "warnings filters added": [entry for entry in after["warnings"] if entry not in before["warnings"]],
        "warnings filters removed": [entry for entry in before["warnings"] if entry not in after["warnings"]],
        "matplotlib backend": [after["matplotlib"]] if after["matplotlib"] != before["matplotlib"] else []}
    assert {what: change for what, change in changes.items() if change} == {}


def test_the_model_library_loads_neither_the_database_nor_the_queue(tmp_path: Path) -> None:
    code = ("import json, sys\nimport model.predict, model.train, model.checkpoint\n"
            "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] in "
            "('sqlalchemy', 'celery', 'kombu', 'alembic', 'pydantic_settings', 'typer'))))")
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_metrics_means_prometheus() -> None:
    """A module called ``metrics`` is Prometheus's (core/metrics/, its CLI verb, the workers' and the server's); the
    classifier's accuracy and calibration figures are ``model.scores``."""
    assert sorted(name for name in package_modules() if name.split(".")[-1] == "metrics") == [
        "api.routes.metrics", "core.metrics", "producer.commands.metrics", "worker.metrics"]


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """Module-level functions and methods, except dunders and those a decorator registers (routes, commands,
    tasks, validators), which are called through what they are registered with."""
    plain = {"property", "classmethod", "staticmethod", "cache", "functools.cache", "lru_cache"}
    bodies = [tree.body]
    while bodies:
        for node in bodies.pop():
            if isinstance(node, ast.ClassDef):
                bodies.append(node.body)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("__") \
                    and all(ast.unparse(d).split("(")[0] in plain for d in node.decorator_list):
                yield node.name, node.lineno


def _names_used(tree: ast.Module) -> set[str]:
    """Every name the module reads, calls or imports (``a.b.c`` counts as ``c``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.name.split(".")[-1])
    return names


def test_no_public_function_is_called_only_by_tests() -> None:
    """Dead code stays out: every public function and method of the packages is called by name from the packages,
    the benchmarks or the scripts (or is one of CALLED_FROM_OUTSIDE), not only from tests. A name counts wherever
    it is used, for whatever it names, so this can miss dead code but never calls live code dead."""
    used = set((REPO_ROOT / "pyproject.toml").read_text().replace(":", " ").replace(".", " ").split())
    defined: dict[str, list[str]] = {}
    for folder in PACKAGES + CALLERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            used |= _names_used(tree)
            if folder in PACKAGES and "migrations" not in path.parts:
                for name, line in _public_functions(tree):
                    defined.setdefault(name, []).append(f"{path.relative_to(REPO_ROOT)}:{line}")
    assert {name: where for name, where in defined.items() if name not in used and name not in CALLED_FROM_OUTSIDE} \
        == {}


def test_modules_stay_small() -> None:
    sizes = {name: len((REPO_ROOT / Path(*name.split("."))).with_suffix(".py").read_text().splitlines())
             for name in package_modules() if not (REPO_ROOT / Path(*name.split("."))).is_dir()}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
