"""Job ids beyond what ``jobs.id`` holds (int4 on PostgreSQL): every command that takes one prints one line and exits
non-zero, as on SQLite, instead of PostgreSQL's ``NumericValueOutOfRange`` traceback (issue 32, item 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.producer.conftest import cli, deploy

pytestmark = pytest.mark.integration


def commands(job: str, out: Path) -> list[list[str]]:
    return [
        ["status", job], ["query", "bbox", "--job", job, "--bbox", "-9.5,38.8,-9.4,38.9", "--zoom", "16"],
        ["failures", job], ["resume", job], ["retry", job], ["cancel", job], ["summary", job],
        ["render", job, "--out", str(out / "map.png")], ["export", job, "--format", "csv", "--out", str(out / "x.csv")],
        ["dataset", "export", "--job", job, "--out", str(out / "dataset")],
    ]


@pytest.mark.parametrize("job", [2**31, 2**63])
def test_commands_taking_a_job_id_refuse_ids_beyond_the_column_in_one_line(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, job: int) -> None:
    deploy(monkeypatch, postgres_url, "filesystem://")
    line = f"Error: job {job} does not exist: job ids are 1..2147483647"
    answers = {}
    for args in commands(str(job), tmp_path):
        result = cli(*args)
        answers[" ".join(args[:2])] = (result.exit_code, result.output.strip(), type(result.exception).__name__)
    assert answers == {" ".join(args[:2]): (2, line, "SystemExit") for args in commands(str(job), tmp_path)}
    assert not (tmp_path / "dataset").exists() and not (tmp_path / "map.png").exists()
