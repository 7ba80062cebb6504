import subprocess
import sys

from typer.testing import CliRunner

from producer.cli import app


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "db" in result.output


def test_cli_core_and_producer_import_without_torch() -> None:
    code = (
        "import sys, producer.cli, core.settings, core.db, core.schema, core.results, core.messages, core.tiles;"
        "import core.celery_app, core.queries, core.sources;"
        "import pkgutil, importlib, producer;"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(producer.__path__, 'producer.')];"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules);"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_bad_setting_is_one_line_error_without_traceback(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TILECLASS_DEVICE", "tpu")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: TILECLASS_DEVICE: must be one of auto, cpu, cuda or cuda:N (got 'tpu')"
    ]


def test_db_upgrade_creates_the_sqlite_file(tmp_path) -> None:
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tileclass.db").exists()
