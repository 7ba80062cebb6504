"""Empty tiles (nothing to classify there) through the worker's recording and every read command, on a SQLite file
with the embedded broker: neither classified nor failed, counted by status and summary, answered by query tile,
left out of bbox queries and exports unless --include-empty, drawn by render, and not enqueued again."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from core.db import session_scope
from core.messages import ClassifyBatch
from core.results import Classified, Empty, Failure
from core.schema import EmptyTile, FailedTile, TileResult
from core.tiles import Tile
from tests.factories import CLASSES
from tests.producer.conftest import Deployment, cli, consume, make_tree, xyz

pytestmark = pytest.mark.integration

Z, XS, YS = 12, range(2000, 2004), range(1500, 1503)  # 12 tiles: 6 classified, 3 failed... then 3 empty


def run_job(deployment: Deployment, root: Path) -> tuple[int, list[Tile]]:
    """Enqueue a 4 x 3 tree and record it as a worker would: 6 classified, 3 failed, 3 empty (the last column)."""
    from worker.recording import BatchOutcome, record_outcome

    make_tree(root, xyz(Z, XS, YS))
    result = cli("enqueue", root, "--model", deployment.model, "--json")
    assert result.exit_code == 0, result.output
    job_id = int(json.loads(result.stdout)["job_id"])
    (message,) = consume(deployment.app())
    batch = ClassifyBatch.from_message(message)
    tiles = sorted(batch.tiles)
    outcome = BatchOutcome(
        [Classified(t, "Forest", 0.9, dict.fromkeys(CLASSES, 0.3)) for t in tiles[:6]],
        [Failure(t, "truncated image") for t in tiles[6:9]],
        [Empty(t, "entirely transparent") for t in tiles[9:]])
    record_outcome(batch, outcome, model_registered=True)
    return job_id, tiles


def test_empty_tiles_are_counted_answered_exported_drawn_and_not_enqueued_again(
        embedded: Deployment, tmp_path: Path) -> None:
    job_id, tiles = run_job(embedded, tmp_path / "tiles")
    empty = tiles[9:]
    with session_scope() as session:
        for table, count in ((TileResult, 6), (FailedTile, 3), (EmptyTile, 3)):
            assert session.scalar(select(func.count()).select_from(table)) == count

    status = json.loads(cli("status", str(job_id), "--json").stdout)
    assert {k: status[k] for k in ("state", "classified", "failed", "empty", "pending")} == {
        "state": "completed", "classified": 6, "failed": 3, "empty": 3, "pending": 0}
    summary = json.loads(cli("summary", str(job_id), "--json").stdout)
    assert summary["empty"] == {"count": 3, "reasons": [{"reason": "entirely transparent", "count": 3}]}
    assert summary["classified"] == 6

    answer = cli("query", "tile", str(empty[0]), "--json")
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.stdout) | {"found_at": None} == {
        "classified": False, "empty": True, "reason": "entirely transparent", "tile": str(empty[0]),
        "z": Z, "x": empty[0].x, "y": empty[0].y, "root": status["root"], "path": empty[0].path, "label": None,
        "confidence": None, "model": embedded.model, "job": job_id, "found_at": None,
        "corrections": []}
    text = cli("query", "tile", str(empty[0]))
    assert text.exit_code == 0 and text.stdout.startswith(f"{empty[0]}: empty (entirely transparent)")
    assert cli("query", "tile", str(tiles[6])).exit_code == 1  # failed: not classified, not empty

    region = ["query", "bbox", "--bbox", "-180,-85,180,85", "--zoom", str(Z), "--format"]
    plain = json.loads(cli(*region, "json").stdout)
    assert len(plain) == 6 and all(row["label"] == "Forest" for row in plain)
    both = json.loads(cli(*region, "json", "--include-empty").stdout)
    assert [(row["x"], row["y"]) for row in both] == sorted((t.x, t.y) for t in tiles[:6] + empty)  # merged in order
    assert [row["tile"] for row in both if row.get("empty")] == [str(t) for t in empty]
    rows = list(csv.DictReader(io.StringIO(cli(*region, "csv", "--include-empty").stdout)))
    assert [row["empty"] for row in rows].count("true") == 3
    assert all(row["label"] == "" and row["p_Forest"] == "" for row in rows if row["empty"] == "true")
    features = json.loads(cli(*region, "geojson", "--include-empty").stdout)["features"]
    assert sum(1 for f in features if f["properties"].get("empty")) == 3

    out = tmp_path / "job.geojson"
    assert cli("export", str(job_id), "--format", "geojson", "--out", str(out)).exit_code == 0
    assert len(json.loads(out.read_text())["features"]) == 6
    assert cli("export", str(job_id), "--format", "geojson", "--out", str(out), "--include-empty").exit_code == 0
    assert len(json.loads(out.read_text())["features"]) == 9

    picture = tmp_path / "map.png"
    drawn = cli("render", str(job_id), "--out", str(picture))
    assert drawn.exit_code == 0, drawn.output
    assert "(6 classified, 3 failed, 3 empty)" in drawn.stdout
    with Image.open(picture) as image:
        assert (0xB8, 0xC4, 0xCC) in {colour for _, colour in image.convert("RGB").getcolors(1 << 16)}

    again = json.loads(cli("enqueue", tmp_path / "tiles", "--model", embedded.model, "--dry-run", "--json").stdout)
    assert (again["found"], again["skipped"], again["enqueued"]) == (12, 9, 3)  # only the failed ones are left


def test_a_result_replaces_an_empty_record_and_an_empty_record_never_hides_a_result(
        embedded: Deployment, tmp_path: Path) -> None:
    from worker.recording import BatchOutcome, record_outcome

    job_id, tiles = run_job(embedded, tmp_path / "tiles")
    root = json.loads(cli("status", str(job_id), "--json").stdout)["root"]
    batch = ClassifyBatch(job_id, 0, embedded.model, root, tiles)
    # The imagery appeared for one empty tile; another delivery still finds a classified tile empty.
    record_outcome(batch, BatchOutcome([Classified(tiles[9], "River", 0.8, dict.fromkeys(CLASSES, 0.3))],
                                       [], [Empty(tiles[0], "no tile at the server (404)")]),
                   model_registered=True)
    with session_scope() as session:
        empties = {(r.x, r.y) for r in session.scalars(select(EmptyTile))}
        labels = {(r.x, r.y): r.label for r in session.scalars(select(TileResult))}
    assert empties == {(t.x, t.y) for t in tiles[10:]}
    assert labels[(tiles[9].x, tiles[9].y)] == "River" and labels[(tiles[0].x, tiles[0].y)] == "Forest"
