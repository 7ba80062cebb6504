"""``tileclass enqueue`` against real brokers (Redis and the embedded one) and a real results database."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mercantile
import pytest
import redis
from sqlalchemy import select

from core.celery_app import queued_messages
from core.db import session_scope
from core.messages import CLASSIFY_QUEUE
from core.schema import Job, JobBatch
from core.settings import load_settings
from core.sources.roots import safe_join, source_name_for
from tests.labelmaker import labelmaker_tiles
from tests.producer.conftest import Deployment, classify, cli, consume, deploy, make_tree, tiles_in, xyz

pytestmark = pytest.mark.integration


def enqueue_json(*args: object) -> dict:
    result = cli("enqueue", *map(str, args), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_batches_sit_in_redis_as_compact_json_with_relative_paths(on_redis: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    expected = make_tree(root, xyz(10, range(500, 503), range(300, 304)) + xyz(11, (1000, 1001), range(600, 603)))
    make_tree(root, ["10/500/notes.txt", "README.md"])
    summary = enqueue_json(root, "--model", on_redis.model[:10], "--batch-size", 5)
    source_name = source_name_for(root, load_settings())
    source = {"kind": "folder", "name": source_name, "path": str(root.resolve()), "layout": "xyz:{z}/{x}/{y}.{ext}"}
    everything = {"zooms": None, "bbox": None, "geojson": None}
    assert summary == summary | {
        "job_id": 1, "resumed": False, "state": "queued", "found": 18, "enqueued": 18, "skipped": 0, "batches": 5,
        "per_zoom": {"10": 12, "11": 6}, "root": source_name, "root_path": str(root.resolve()),
        "layout": "xyz:{z}/{x}/{y}.{ext}", "source": source, "region": everything, "model": on_redis.model,
    }
    raw = redis.Redis.from_url(on_redis.broker_url).lrange(CLASSIFY_QUEUE, 0, -1)
    assert len(raw) == 5
    bodies = []
    for envelope in map(json.loads, raw):
        assert envelope["content-type"] == "application/json"
        body = base64.b64decode(envelope["body"])
        bodies.append(json.loads(body)[1]["batch"])
        assert len(body) < 300 + 50 * len(bodies[-1]["tiles"])  # coordinates and short paths, nothing else
    assert sorted(b["seq"] for b in bodies) == [0, 1, 2, 3, 4]
    for batch in bodies:
        assert (batch["format"], batch["job_id"], batch["model_hash"], batch["source"]) == (
            2, 1, on_redis.model, source_name)
        assert 1 <= len(batch["tiles"]) <= 5 and len({row[0] for row in batch["tiles"]}) == 1  # one zoom a batch
        for z, x, y, path in batch["tiles"]:
            assert path == f"{z}/{x}/{y}.png" and safe_join(root, path).is_file()
    assert sorted(row[3] for row in tiles_in(bodies)) == sorted(expected)
    with session_scope() as session:
        job = session.get(Job, 1)
        assert job is not None
        assert (job.source, job.model_hash) == (source, on_redis.model)
        assert (job.total_tiles, job.total_batches, job.skipped_tiles, job.state) == (18, 5, 0, "queued")
        assert job.region == everything and job.resume_after == [11, 1001]
        assert (job.seq_recorded, job.seq_reserved) == (5, 256)
        assert sorted(session.scalars(select(JobBatch.tiles).where(JobBatch.job_id == 1))) == [1, 2, 5, 5, 5]


def test_embedded_broker_carries_the_same_batches(embedded: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(4, range(3), range(3), "jpg"))
    summary = enqueue_json(root, "--model", embedded.model, "--batch-size", 4)
    assert (summary["job_id"], summary["enqueued"], summary["batches"]) == (1, 9, 3)
    batches = consume(embedded.app())
    assert sorted(tiles_in(batches)) == sorted((4, x, y, f"4/{x}/{y}.jpg") for x in range(3) for y in range(3))


def test_labelmaker_tiles_with_a_template_and_negative_bbox(embedded: Deployment, tmp_path: Path) -> None:
    labelmaker = labelmaker_tiles(tmp_path / "z17-jpg")
    inside = (-9.4560, 38.8470, -9.4510, 38.8513)
    expected = {(t.x, t.y) for t in mercantile.tiles(*inside, zooms=[17])}
    for bbox_args in (["--bbox", ",".join(map(str, inside))], ["--bbox=" + ",".join(map(str, inside))]):
        summary = enqueue_json(labelmaker, "--model", embedded.model, "--layout", "{x}-{y}-{z}.jpg", *bbox_args,
                               "--dry-run")
        assert summary["dry_run"] and summary["job_id"] is None
        names = {p.name for p in labelmaker.iterdir()}
        assert summary["found"] == len(names & {f"{x}-{y}-17.jpg" for x, y in expected})
    summary = enqueue_json(labelmaker, "--model", embedded.model, "--layout", "{x}-{y}-{z}.jpg", "--zoom", "17")
    assert summary["enqueued"] == 8
    rows = tiles_in(consume(embedded.app()))
    assert sorted(rows) == sorted((17, int(p.stem.split("-")[0]), int(p.stem.split("-")[1]), p.name)
                                  for p in labelmaker.iterdir())


def test_tms_tree_is_enqueued_in_xyz_coordinates(embedded: Deployment, tmp_path: Path) -> None:
    make_tree(tmp_path / "tms", ["3/2/0.png", "3/2/7.png"])
    enqueue_json(tmp_path / "tms", "--model", embedded.model, "--scheme", "tms")
    assert sorted(tiles_in(consume(embedded.app()))) == [(3, 2, 0, "3/2/7.png"), (3, 2, 7, "3/2/0.png")]


def test_geojson_region(embedded: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(5, range(16, 20), range(10, 14)))
    west, boundary_lat, boundary_lon, north = mercantile.bounds(16, 10, 5)  # the block x 16..17, y 10..11
    width, height = boundary_lon - west, north - boundary_lat
    # Corners in tiles (16, 10), (17, 10) and (16, 11); the long side passes well north-west of (17, 11).
    triangle = [[west + 0.01, north - 0.01], [boundary_lon + width / 4, north - 0.01],
                [west + 0.01, boundary_lat - height / 4]]
    (tmp_path / "area.json").write_text(json.dumps({"type": "Polygon", "coordinates": [[*triangle, triangle[0]]]}))
    summary = enqueue_json(root, "--model", embedded.model, "--geojson", tmp_path / "area.json")
    got = {(x, y) for _, x, y, _ in tiles_in(consume(embedded.app()))}
    assert got == {(16, 10), (17, 10), (16, 11)}  # the triangle misses the fourth tile of its box
    assert summary["region"]["geojson"]["path"] == str((tmp_path / "area.json").resolve())


def test_plain_folders_are_enqueued_by_path(embedded: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "scans"
    make_tree(root, ["a.jpg", "sub/b.png", "sub/readme.txt"])
    summary = enqueue_json(root, "--model", embedded.model, "--layout", "plain")
    assert summary["layout"] == "plain" and summary["per_zoom"] == {"none": 2}
    batches = consume(embedded.app())
    assert sorted(tiles_in(batches)) == [(None, None, None, "a.jpg"), (None, None, None, "sub/b.png")]
    classify(batches)
    again = enqueue_json(root, "--model", embedded.model, "--layout", "plain")  # job 1 is complete: a new job
    assert (again["job_id"], again["enqueued"], again["skipped"]) == (None, 0, 2)


def test_dry_run_counts_per_zoom_and_enqueues_nothing(embedded: Deployment, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    make_tree(root, xyz(10, range(4), range(5)) + xyz(12, range(2), range(3)) + ["3/8/0.png"])
    result = cli("enqueue", root, "--model", embedded.model, "--batch-size", 6, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["10", "20", "4"] in lines and ["12", "6", "1"] in lines and ["total", "26", "5"] in lines
    assert "left out 1 (coordinates out of range for their zoom), e.g. 3/8" in result.output
    assert queued_messages(CLASSIFY_QUEUE, embedded.app()) == 0
    with session_scope() as session:
        assert session.scalars(select(Job)).first() is None


def test_rerun_continues_the_same_job_and_skips_classified_tiles(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deployment = deploy(monkeypatch, database_url, "filesystem://")
    root = tmp_path / "tiles"
    make_tree(root, xyz(10, range(5), range(4)) + xyz(11, range(2), range(2)))
    first = enqueue_json(root, "--model", deployment.model, "--batch-size", 4, "--zoom", "10-11")
    assert (first["job_id"], first["enqueued"], first["batches"]) == (1, 24, 6)
    batches = consume(deployment.app())
    classify(batches[:3])  # three of six batches done
    again = enqueue_json(root, "--model", deployment.model, "--batch-size", 4, "--zoom", "10-11")
    assert (again["job_id"], again["resumed"], again["enqueued"]) == (1, True, 0)  # fully enqueued already
    other = enqueue_json(root, "--model", deployment.model, "--zoom", "10")  # another region: a new job
    done = {row[:3] for row in tiles_in(batches[:3]) if row[0] == 10}
    assert (other["job_id"], other["skipped"], other["enqueued"]) == (2, len(done), 20 - len(done))
    assert not done & {row[:3] for row in tiles_in(consume(deployment.app()))}
    forced = enqueue_json(root, "--model", deployment.model, "--zoom", "10", "--force")
    assert (forced["job_id"], forced["skipped"], forced["enqueued"]) == (3, 0, 20)


def test_empty_tree_enqueues_nothing_and_fails_in_one_line(embedded: Deployment, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for dry_run in ([], ["--dry-run"]):
        result = cli("enqueue", tmp_path / "empty", "--model", embedded.model, *dry_run)
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (
            f"Error: no tiles named like '{{z}}/{{x}}/{{y}}.{{ext}}' (xyz) found in {tmp_path / 'empty'}: nothing "
            "enqueued; --layout names another layout, e.g. '{z}-{x}-{y}.jpg' or 'plain'")
    assert queued_messages(CLASSIFY_QUEUE, embedded.app()) == 0
    outside = cli("enqueue", tmp_path / "empty", "--model", embedded.model, "--zoom", "3", "--json")
    assert (outside.exit_code, json.loads(outside.stdout)["found"]) == (2, 0)  # the summary, then the one line
    assert outside.stderr.strip() == (
        f"Error: no tiles named like '{{z}}/{{x}}/{{y}}.{{ext}}' (xyz) found in {tmp_path / 'empty'} within "
        "--zoom/--bbox/--geojson: nothing enqueued; --layout names another layout, e.g. '{z}-{x}-{y}.jpg' or 'plain'")


@pytest.mark.parametrize("inside", ["16", "16/34000"])
def test_a_zoom_folder_given_for_the_tree_names_the_tree_and_fails(embedded: Deployment, tmp_path: Path,
                                                                    inside: str) -> None:
    make_tree(tmp_path / "tiles", xyz(16, range(34000, 34016), [22000]))
    for dry_run in ([], ["--dry-run"]):
        result = cli("enqueue", tmp_path / "tiles" / inside, "--model", embedded.model, *dry_run)
        assert result.exit_code == 2, result.output
        folder = "zoom 16" if inside == "16" else "zoom 16, x 34000"
        assert result.output.splitlines()[-1] == (
            f"Error: no tiles found in {tmp_path / 'tiles' / inside}: it looks like the folder of {folder} in a "
            f"'{{z}}/{{x}}/{{y}}.{{ext}}' tree, not the tree's root; give the root instead: tileclass enqueue "
            f"{tmp_path / 'tiles'} ...")
    assert queued_messages(CLASSIFY_QUEUE, embedded.app()) == 0
    assert enqueue_json(tmp_path / "tiles", "--model", embedded.model)["enqueued"] == 16  # the root it named


def test_a_rerun_whose_tiles_all_have_results_exits_0(embedded: Deployment, tmp_path: Path) -> None:
    make_tree(tmp_path / "tiles", xyz(9, range(3), range(2)))
    first = enqueue_json(tmp_path / "tiles", "--model", embedded.model)
    classify(consume(embedded.app()))
    result = cli("enqueue", tmp_path / "tiles", "--model", embedded.model)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"All 6 tiles found already have a result for model {embedded.model[:12]}: "
                                     "nothing enqueued (--force classifies them again).")
    assert (first["enqueued"], queued_messages(CLASSIFY_QUEUE, embedded.app())) == (6, 0)


@pytest.mark.parametrize(("args", "problem"), [
    (["{missing}"], "does not exist"),
    (["{file}"], "is a file of a kind tileclass does not read: SOURCE is a folder"),
    (["{root}", "--bbox", "10,0,5,1"], "west (10.0) must be less than east (5.0)"),
    (["{root}", "--bbox", "0,0,1,89"], "outside lon -180..180, lat -85.0511..85.0511"),
    (["{root}", "--bbox", "0,0,1"], "expected W,S,E,N"),
    (["{root}", "--zoom", "25"], "zoom 25 is out of range: zoom must be 0..24"),
    (["{root}", "--zoom", "abc"], "invalid zoom 'abc'"),
    (["{root}", "--geojson", "{missing}"], "cannot read GeoJSON"),
    (["{root}", "--geojson", "{point}"], "a Polygon or MultiPolygon is needed"),
    (["{root}", "--layout", "{z}/{x}.png"], "exactly once"),
    (["{root}", "--layout", "plain", "--zoom", "3"], "need a layout with coordinates"),
    (["{root}", "--scheme", "google"], "choose one of xyz, tms"),
    (["{root}", "--batch-size", "0"], "--batch-size must be 1..10000"),
    (["{root}", "--max-queued", "0"], "--max-queued must be at least 1"),
    (["{root}", "--model", "feedface99"], "is not a checkpoint file, a model name or a registered model hash"),
])
def test_bad_input_is_one_line_and_exit_2(embedded: Deployment, tmp_path: Path, args: list[str], problem: str) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "file.png").write_bytes(b"")
    (tmp_path / "point.json").write_text('{"type": "Point", "coordinates": [0, 0]}')
    paths = {"missing": tmp_path / "missing", "file": tmp_path / "file.png", "root": tmp_path / "root",
             "point": tmp_path / "point.json"}
    filled = [str(paths[a[1:-1]]) if a[1:-1] in paths else a for a in args]
    if "--model" not in filled:
        filled += ["--model", embedded.model]
    result = cli("enqueue", *filled)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and problem in lines[0], result.output


@pytest.mark.slow
def test_unreachable_broker_is_one_line_and_leaves_no_job(embedded: Deployment, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings

    make_tree(tmp_path / "tiles", xyz(3, (1,), (1,)))
    monkeypatch.setenv("TILECLASS_BROKER_URL", "redis://:secret@127.0.0.1:1/0")
    get_settings.cache_clear()
    result = cli("enqueue", tmp_path / "tiles", "--model", embedded.model)
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error: cannot reach the broker at redis://:**@127.0.0.1:1/0")
    assert len(result.output.strip().splitlines()) == 1 and "secret" not in result.output
    with session_scope() as session:
        assert session.scalars(select(Job)).first() is None
