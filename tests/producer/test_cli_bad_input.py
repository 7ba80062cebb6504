"""Input that gave a traceback before: each now gets one line on stderr naming the problem, and exit code 2.

The commands run as real subprocesses (``python -m producer``) against a SQLite file, so what is checked is exactly
what a user sees: stdout, stderr and the exit status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.sidecar import sidecar_path
from tests.conftest import REPO_ROOT
from tests.worker.support import tiny_checkpoint

HUGE = "99999999999999999999"


def run(*args: str, env: dict[str, str], block_torch: bool = False) -> tuple[int, str, str]:
    code = "import sys; sys.modules['torch'] = None; " if block_torch else ""
    code += "from producer.cli import main; sys.argv = ['tileclass', *sys.argv[1:]]; main()"
    done = subprocess.run([sys.executable, "-c", f"import sys; {code}", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def one_line_error(result: tuple[int, str, str], *words: str) -> str:
    code, out, err = result
    assert code == 2 and "Traceback" not in err, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TILECLASS_")}
    return clean | {"TILECLASS_DATABASE_URL": sqlite_url, "TILECLASS_MODEL_DIR": str(tmp_path / "models"),
                    "TILECLASS_DATA_DIR": str(tmp_path / "state")}


def test_bad_geojson_gives_one_line(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "tiles" / "3" / "1").mkdir(parents=True)
    documents = {
        "features-number.json": ('{"type": "FeatureCollection", "features": 5}', "'features' must be a list"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "nan.json": ('{"type": "Polygon", "coordinates": [[[NaN, 0], [1, 0], [1, 1], [NaN, 0]]]}', "NaN"),
    }
    for name, (content, words) in documents.items():
        (tmp_path / name).write_text(content)
        one_line_error(run("enqueue", str(tmp_path / "tiles"), "--model", "abcdef", "--geojson",
                           str(tmp_path / name), env=env), words)


def test_huge_job_ids_say_the_job_does_not_exist(env: dict[str, str]) -> None:
    for command in ("status", "cancel", "resume"):
        one_line_error(run(command, HUGE, env=env), f"job {HUGE} does not exist")


def test_a_malformed_tile_roots_setting_gives_one_line(env: dict[str, str]) -> None:
    one_line_error(run("status", env=env | {"TILECLASS_TILE_ROOTS": "{bad"}), "TILECLASS_TILE_ROOTS", "JSON")


def test_an_unreachable_database_is_named_without_its_password(env: dict[str, str]) -> None:
    url = "postgresql+psycopg://tileclass:s3cret-pw@127.0.0.1:1/tiles"
    line = one_line_error(run("status", env=env | {"TILECLASS_DATABASE_URL": url}),
                          "cannot reach the results database at postgresql+psycopg://tileclass:***@127.0.0.1:1/tiles")
    assert "s3cret-pw" not in line


@pytest.mark.parametrize("args", [("train", "data"), ("predict", "model.pt", "tile.png"), ("worker",)])
def test_classifier_commands_without_the_ml_extra_say_what_to_install(env: dict[str, str],
                                                                      args: tuple[str, ...]) -> None:
    one_line_error(run(*args, env=env, block_torch=True), f"'tileclass {args[0]}' needs", "pip install 'tileclass[ml]'")


@pytest.mark.parametrize(("sidecar", "words"), [
    ([1, 2, 3], "expected a JSON object, found a list"),
    ({"arch": "resnet18"}, "unknown format"),
    ("wrong types", "class_names must be a list of strings; image_size must be a positive integer"),
])
def test_a_malformed_sidecar_gives_one_line(env: dict[str, str], tmp_path: Path, sidecar: object, words: str) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "model")
    path = sidecar_path(checkpoint)
    if sidecar == "wrong types":
        sidecar = json.loads(path.read_text()) | {"class_names": "Forest", "image_size": "32"}
    path.write_text(json.dumps(sidecar))
    (tmp_path / "tiles").mkdir()
    one_line_error(run("enqueue", str(tmp_path / "tiles"), "--model", str(checkpoint), env=env), words)


def test_a_dry_run_neither_registers_nor_copies_the_checkpoint(env: dict[str, str], tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "model")
    tiles = tmp_path / "tiles" / "3" / "1"
    tiles.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "tests" / "__init__.py", tiles / "2.png")
    code, out, err = run("enqueue", str(tmp_path / "tiles"), "--model", str(checkpoint), "--dry-run", "--json",
                         env=env)
    assert code == 0, err
    assert json.loads(out)["dry_run"] is True
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())  # nothing copied
    with create_engine(env["TILECLASS_DATABASE_URL"]).connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM models")).scalar() == 0  # nothing registered
