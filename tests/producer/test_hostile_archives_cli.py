"""``tileclass enqueue X --zoom 16 --dry-run`` on hostile archives, in a real process of its own: each is a one-line
error within seconds, never a traceback, a bare "Aborted." or a listing that runs for ever."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from core.sources.mbtiles import QUERY_SECONDS
from testkit.archives import directory, endless_mbtiles, gzip_bomb, hand_made_pmtiles, write_mbtiles
from tests.producer.conftest import Deployment, tileclass

pytestmark = pytest.mark.integration

HANG = 90  # seconds: far beyond any answer here (the slowest waits QUERY_SECONDS), far below "for ever"


def null_row(path: Path) -> Path:
    write_mbtiles(path, [(16, 1, 1, b"jpeg"), (16, 1, 2, b"jpeg")])
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE tiles SET tile_row = NULL WHERE tile_row = 65533")
    return path


HOSTILE: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    "null tile_row": ("x.mbtiles", null_row, "has a tile at zoom 16 with tile_column 1 and tile_row None"),
    "recursive view": ("x.mbtiles", endless_mbtiles, f"a query of its tiles ran past {QUERY_SECONDS:.0f} s"),
    "run of 2**40": ("x.pmtiles", lambda p: hand_made_pmtiles(p, root=directory((0, 0, 3, 2**40)), tile_data=b"png"),
                     "a run length of 1099511627776, more than the spec's 4294967295"),
    "root_offset 10**12": ("x.pmtiles", lambda p: hand_made_pmtiles(p, root=directory((0, 0, 3, 1)),
                                                                    tile_data=b"png", root_offset=10**12),
                           "is shorter than its header says: its root directory ends at byte 1000000000"),
    "header only": ("x.pmtiles", lambda p: hand_made_pmtiles(p, root=b"", root_length=40),
                    "is shorter than its header says: its root directory ends at byte 167, the file has 127 bytes"),
    "gzip bomb directory": ("x.pmtiles", lambda p: hand_made_pmtiles(p, root=gzip_bomb(300 << 20)),
                            "has a damaged root directory (directory inflates to more than 4194304 bytes"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_archive_is_a_one_line_error_within_seconds(embedded: Deployment, tmp_path: Path,
                                                             case: str) -> None:
    name, build, message = HOSTILE[case]
    archive = build(tmp_path / name)
    process = tileclass("enqueue", archive, "--model", embedded.model, "--zoom", "16", "--dry-run",
                        deployment=embedded, cwd=tmp_path)
    try:
        _, stderr = process.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{case}: enqueue --dry-run still running after {HANG} s")
    assert process.returncode == 2, stderr
    assert message in stderr and "Traceback" not in stderr and "Aborted" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
