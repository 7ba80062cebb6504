"""bench/ is a package: its modules are the benchmarks, run from the repository root as ``python -m bench.NAME``,
and what they share sits apart in ``bench/lib``; the builders they share with the tests are ``testkit``. No module
sets ``sys.path`` by hand, none imports the tests, and none is named like one of the project's packages (as
bench/worker.py was, hiding the worker package from a script run beside it)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

BENCH = REPO_ROOT / "bench"
PROJECT_PACKAGES = {"core", "model", "producer", "worker", "api", "bench", "testkit", "tests"}


def modules(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


def entry_points() -> list[str]:
    return sorted(path.stem for path in BENCH.glob("*.py") if path.name != "__init__.py")


def runs_as_main(path: Path) -> bool:
    return "if __name__ == \"__main__\":" in path.read_text()


def test_bench_and_its_helpers_are_packages_with_the_entry_points_apart() -> None:
    assert (BENCH / "__init__.py").is_file() and (BENCH / "lib" / "__init__.py").is_file()
    assert (REPO_ROOT / "testkit" / "__init__.py").is_file()
    assert [name for name in entry_points() if not runs_as_main(BENCH / f"{name}.py")] == []
    assert [path.name for path in modules(BENCH / "lib") if runs_as_main(path)] == []
    # The GPU check's scripts stay where the README and the GPU issue name them.
    assert (BENCH / "gpu_prepare.sh").is_file() and (BENCH / "gpu_check.sh").is_file()


def test_no_bench_module_sets_sys_path_imports_the_tests_or_shadows_a_package() -> None:
    offenders = []
    for path in modules(BENCH, REPO_ROOT / "testkit"):
        where = path.relative_to(REPO_ROOT)
        if path.stem in PROJECT_PACKAGES - {"bench"}:
            offenders.append(f"{where}: named like a package")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                offenders.append(f"{where}:{node.lineno}: sys.path")
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{where}:{node.lineno}: imports {name}" for name in names if name.split(".")[0] == "tests"]
    assert offenders == []


def test_every_benchmark_runs_as_a_module_from_the_repository_root() -> None:
    """``python -m bench.NAME --help`` for each one, in one process, with no PYTHONPATH: the root that ``-m`` puts
    on sys.path is all they need."""
    code = ("import contextlib, io, json, runpy, sys\nanswers = {}\n"
            f"for name in {entry_points()!r}:\n"
            "    sys.argv = [name, '--help']\n    out = io.StringIO()\n"
            "    with contextlib.redirect_stdout(out):\n"
            "        try:\n            runpy.run_module(f'bench.{name}', run_name='__main__')\n"
            "        except SystemExit as exit:\n            answers[name] = (exit.code, out.getvalue())\n"
            "print(json.dumps(answers))\n")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(answers) == entry_points()
    assert {name: code for name, (code, _) in answers.items() if code not in (0, None)} == {}
    assert all(text.startswith("usage: ") for _, text in answers.values()), answers
    assert "worker_speed" in answers and "worker" not in answers
