"""A job's coverage bound and uncertainty threshold (issue 27, parts 2 and 4), from ``tileclass enqueue`` through the
real worker batch function (``worker.batches.run_batch``, the tiny model on the CPU) to every place that shows them:
``query tile``/``point``/``bbox``, ``status``, ``summary``, ``export``, ``dataset export``, the JSON API and the
overlay tiles (PNG and MVT), on SQLite and PostgreSQL.

The tree holds two opaque 256 px tiles of the same imagery and a fringe tile: one 8 px column of imagery, transparent
elsewhere (what ``gdal2tiles`` makes at a raster's edge), whose coverage is 8 / 256 = 0.03125. The tiny model's
probabilities are near uniform over its three classes, so ``--uncertain-below 0.9`` flags every answer and ``0``
none; the two opaque tiles, holding the same pixels, get the same label and confidence.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from api.overlay_png import overlay_png
from core.celery_app import connected_app
from core.db import session_scope
from core.messages import ClassifyBatch
from core.models.info import ModelInfo
from core.queries.overlay import OverlayRequest, overlay_grid
from core.schema import Job
from core.settings import get_settings, load_settings
from core.tiles import Tile
from producer.cli import app
from tests.api.conftest import client_for
from tests.conftest import EUROSAT
from tests.producer.conftest import consume
from tests.worker.support import tiny_checkpoint
from worker import batches, runtime

pytestmark = pytest.mark.integration

ZOOM, ROW = 16, 25106
OPAQUE = (Tile(ZOOM, 31106, ROW), Tile(ZOOM, 31107, ROW))
FRINGE = Tile(ZOOM, 31108, ROW)
FRINGE_COVERAGE = 8 / 256
PARENT = Tile(ZOOM - 1, 31106 >> 1, ROW >> 1)  # its 2 x 2 blocks: the two opaque tiles side by side in the top row


def imagery() -> Image.Image:
    with Image.open(EUROSAT / "Forest" / "Forest_1002.jpg") as image:
        return image.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC)


def fringe_tile() -> Image.Image:
    """A 256 px tile holding one 8 px column of imagery at its left edge, transparent elsewhere."""
    tile = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    tile.paste(imagery().crop((0, 0, 8, 256)), (0, 0))
    return tile


def write_tile(root: Path, tile: Tile, image: Image.Image | bytes) -> None:
    path = root / f"{tile.z}/{tile.x}/{tile.y}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        image.save(path)


@dataclass
class Site:
    """A deployment on one database: the embedded broker, a CPU worker's settings, the tiny model, a tile tree."""

    checkpoint: Path
    tree: Path

    def cli(self, *args: object) -> Result:
        return CliRunner().invoke(app, [str(arg) for arg in args])

    def enqueue(self, *options: object, tree: Path | None = None) -> int:
        result = self.cli("enqueue", tree or self.tree, "--model", self.checkpoint, "--zoom", ZOOM, "--json",
                          *options)
        assert result.exit_code == 0, result.stdout + result.stderr
        return int(json.loads(result.stdout)["job_id"])

    def work(self) -> list[dict[str, Any]]:
        """Run every waiting batch through the worker's own batch function, as a worker process would."""
        messages = consume(connected_app(load_settings()))
        return [batches.run_batch(ClassifyBatch.from_message(message), get_settings()) for message in messages]

    def lose_messages(self) -> int:
        """What a broker that forgot its queue does (a Redis restarted without its append-only file)."""
        return len(consume(connected_app(load_settings())))

    def json(self, *args: object) -> Any:
        result = self.cli(*args)
        assert result.exit_code == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    def job(self, job_id: int) -> Job:
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job


@pytest.fixture
def site(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    for name, value in {"DATABASE_URL": database_url, "BROKER_URL": "filesystem://", "DEVICE": "cpu",
                        "WORKER_COMPILE": "false", "WORKER_THREADS": "1", "WORKER_BATCH_SIZE": "4",
                        "MODEL_DIR": str(tmp_path / "models")}.items():
        monkeypatch.setenv(f"TILECLASS_{name}", value)
    get_settings.cache_clear()
    runtime.reset()
    tree = tmp_path / "tree"
    for tile in OPAQUE:
        write_tile(tree, tile, imagery())
    write_tile(tree, FRINGE, fringe_tile())
    yield Site(tiny_checkpoint(tmp_path / "trained"), tree)
    runtime.reset()


def tile_document(site: Site, tile: Tile) -> dict[str, Any]:
    return site.json("query", "tile", f"{tile.z}/{tile.x}/{tile.y}", "--json")


def test_the_fringe_tile_is_empty_under_the_default_bound_and_classified_with_its_coverage_at_0(site: Site) -> None:
    default = site.enqueue()
    assert site.work() == [{"classified": 2, "failed": 0, "empty": 1}]
    assert site.job(default).min_coverage == 0.5  # the setting's value, settled at enqueue and kept with the job
    assert tile_document(site, FRINGE)["reason"] == "partial: 3% data"
    shown = site.cli("query", "tile", f"{ZOOM}/{FRINGE.x}/{FRINGE.y}")
    assert (shown.exit_code, shown.stdout.splitlines()[0]) == (0, f"{FRINGE}: empty (partial: 3% data)")

    everything = site.enqueue("--min-coverage", "0", "--force")
    assert everything != default and site.job(everything).min_coverage == 0
    assert site.work() == [{"classified": 3, "failed": 0, "empty": 0}]
    document = tile_document(site, FRINGE)
    assert (document["classified"], document["coverage"], document["job"]) == (True, FRINGE_COVERAGE, everything)
    assert tile_document(site, OPAQUE[0])["coverage"] == 1.0
    text = site.cli("query", "tile", f"{ZOOM}/{FRINGE.x}/{FRINGE.y}").stdout.splitlines()
    assert text[1].endswith(" · coverage 3.1%"), text
    lon, lat = _center(FRINGE)
    point = site.json("query", "point", "--lon", lon, "--lat", lat, "--zoom", ZOOM, "--json")
    assert (point["tile"], point["coverage"]) == (str(FRINGE), FRINGE_COVERAGE)
    with client_for() as client:
        assert client.get(f"/api/tiles/{ZOOM}/{FRINGE.x}/{FRINGE.y}").json()["coverage"] == FRINGE_COVERAGE
        answer = client.get("/api/point", params={"lon": lon, "lat": lat, "zoom": ZOOM}).json()
        assert (answer["tile"], answer["coverage"]) == (str(FRINGE), FRINGE_COVERAGE)
        bbox = _bbox()
        rows = list(csv.DictReader(io.StringIO(client.get("/api/bbox", params={
            "bbox": bbox, "zoom": ZOOM, "format": "csv"}).text)))
        assert {(row["x"], row["coverage"]) for row in rows} == {
            (str(OPAQUE[0].x), "1.0"), (str(OPAQUE[1].x), "1.0"), (str(FRINGE.x), str(FRINGE_COVERAGE))}
        features = client.get("/api/bbox", params={"bbox": bbox, "zoom": ZOOM}).json()["features"]
        assert {f["properties"]["x"]: f["properties"]["coverage"] for f in features}[FRINGE.x] == FRINGE_COVERAGE
    _exports_show_coverage(site, everything)


def _center(tile: Tile) -> tuple[float, float]:
    west, south, east, north = tile.bounds()
    return (west + east) / 2, (south + north) / 2


def _bbox() -> str:
    """A box inside the three tiles of the tree."""
    west, south, _, north = OPAQUE[0].bounds()
    east = FRINGE.bounds()[2]
    inset = (north - south) / 10
    return f"{west + inset},{south + inset},{east - inset},{north - inset}"


def _exports_show_coverage(site: Site, job_id: int) -> None:
    """``query bbox`` (JSON, CSV, GeoJSON), ``tileclass export`` (CSV, GeoJSON) and ``dataset export``'s manifest."""
    listed = site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--format", "json")
    assert {row["x"]: row["coverage"] for row in listed}[FRINGE.x] == FRINGE_COVERAGE
    table = list(csv.DictReader(io.StringIO(site.cli("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--format",
                                                      "csv").stdout)))
    assert {row["x"]: row["coverage"] for row in table}[str(FRINGE.x)] == str(FRINGE_COVERAGE)
    features = site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--format", "geojson")["features"]
    assert {f["properties"]["x"]: f["properties"]["coverage"] for f in features}[FRINGE.x] == FRINGE_COVERAGE
    for fmt in ("csv", "geojson"):
        out = site.tree.parent / f"job.{fmt}"
        result = site.cli("export", job_id, "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.stdout + result.stderr
        if fmt == "csv":
            coverage = {row["x"]: row["coverage"] for row in csv.DictReader(out.open())}[str(FRINGE.x)]
            assert coverage == str(FRINGE_COVERAGE)
        else:
            exported = json.loads(out.read_text())["features"]
            assert {f["properties"]["x"]: f["properties"]["coverage"] for f in exported}[FRINGE.x] == FRINGE_COVERAGE
    folder = site.tree.parent / "dataset"
    result = site.cli("dataset", "export", "--job", job_id, "--out", folder, "--min-confidence", "0")
    assert result.exit_code == 0, result.stdout + result.stderr
    manifest = {row["x"]: row for row in csv.DictReader((folder / "manifest.csv").open())}
    assert manifest[str(FRINGE.x)]["coverage"] == str(FRINGE_COVERAGE)
    assert manifest[str(OPAQUE[0].x)]["uncertain"] == "false"


def test_answers_below_the_jobs_uncertainty_threshold_are_flagged_counted_and_filtered(site: Site) -> None:
    calm = site.enqueue("--min-coverage", "0", "--uncertain-below", "0")
    site.work()
    assert site.json("status", calm, "--json")["uncertain"] == 0
    assert site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--uncertain", "--format", "json") == []
    unsure = site.enqueue("--min-coverage", "0", "--uncertain-below", "0.9", "--force")
    assert site.work() == [{"classified": 3, "failed": 0, "empty": 0}]
    status = site.json("status", unsure, "--json")
    assert (status["classified"], status["uncertain"], status["uncertain_below"]) == (3, 3, 0.9)
    table = site.cli("status", unsure)
    assert "3 (3 uncertain)" in table.stdout
    summary = site.json("summary", unsure, "--json")
    assert (summary["classified"], summary["uncertain"]) == (3, 3)
    assert sum(c["uncertain"] for c in summary["classes"]) == 3
    assert all(c["uncertain"] == c["count"] for c in summary["classes"])
    assert "of which 3 uncertain" in site.cli("summary", unsure).stdout
    document = tile_document(site, OPAQUE[0])
    assert document["uncertain"] is True and document["confidence"] < 0.9 and len(document["top"]) == 3
    assert "uncertain)" in site.cli("query", "tile", f"{ZOOM}/{FRINGE.x}/{FRINGE.y}").stdout.splitlines()[0]
    flagged = site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--uncertain", "--format", "json")
    assert sorted(row["x"] for row in flagged) == [OPAQUE[0].x, OPAQUE[1].x, FRINGE.x]
    assert all(row["uncertain"] for row in flagged)
    # --confident / uncertain=false: none of them (every answer of this job is uncertain).
    assert site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--job", str(unsure), "--confident",
                     "--format", "json") == []
    with client_for() as client:
        answer = client.get("/api/bbox", params={"bbox": _bbox(), "zoom": ZOOM, "uncertain": "true",
                                                 "format": "json"}).json()
        assert len(answer) == 3 and all(row["uncertain"] for row in answer)
        assert client.get("/api/bbox", params={"bbox": _bbox(), "zoom": ZOOM, "uncertain": "false", "job": unsure,
                                               "format": "json"}).json() == []
        assert client.get("/api/summary", params={"job": unsure}).json()["uncertain"] == 3

    # Classified again with the threshold at 0 (a new job): nothing is uncertain any more, nothing is listed.
    site.enqueue("--min-coverage", "0", "--uncertain-below", "0", "--force")
    site.work()
    assert site.json("query", "bbox", f"--bbox={_bbox()}", "--zoom", ZOOM, "--uncertain", "--format", "json") == []
    with client_for() as client:
        assert client.get("/api/bbox", params={"bbox": _bbox(), "zoom": ZOOM, "uncertain": "true",
                                               "format": "json"}).json() == []
        # --min-confidence stays what it was: a filter on the confidence alone.
        assert len(client.get("/api/bbox", params={"bbox": _bbox(), "zoom": ZOOM, "min_confidence": 0.0,
                                                   "format": "json"}).json()) == 3


def _overlay_pixels(client: Any, tile: Tile, model: str) -> np.ndarray:
    response = client.get(f"/overlay/{model}/{tile.z}/{tile.x}/{tile.y}.png")
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))


def test_the_overlay_draws_an_uncertain_answer_hatched_and_the_vector_tile_flags_it(site: Site,
                                                                                   tmp_path: Path) -> None:
    # The two opaque tiles hold the same pixels: the same label and confidence; one job flags its answer, the
    # other does not.
    left, right = tmp_path / "left", tmp_path / "right"
    write_tile(left, OPAQUE[0], imagery())
    write_tile(right, OPAQUE[1], imagery())
    site.enqueue("--uncertain-below", "0.9", tree=left)
    site.enqueue("--uncertain-below", "0", tree=right)
    site.work()
    unsure, sure = (tile_document(site, tile) for tile in OPAQUE)
    assert (unsure["label"], unsure["confidence"], unsure["uncertain"]) == (sure["label"], sure["confidence"], True)
    assert sure["uncertain"] is False
    model = sure["model"]
    with client_for() as client:
        hatched, solid = (_overlay_pixels(client, tile, model) for tile in OPAQUE)
        blocks = _overlay_pixels(client, PARENT, model)
        vector = mapbox_vector_tile.decode(client.get(f"/overlay/{model}/{PARENT.z}/{PARENT.x}/{PARENT.y}.mvt")
                                           .content)
    # The confident answer is its class colour, opaque; the uncertain one the same colour with transparent stripes.
    assert (solid[..., 3] == 255).all() and len(np.unique(solid.reshape(-1, 4), axis=0)) == 1
    opaque = hatched[..., 3] == 255
    assert 0.5 < opaque.mean() < 0.8 and (hatched[opaque][:, :3] == solid[0, 0, :3]).all()
    assert (hatched[~opaque][:, 3] == 0).all()
    # One zoom out, the two answers are side by side in the top row: the left block hatched, the right one solid.
    assert (blocks[:128, 128:, 3] == 255).all() and 0.5 < (blocks[:128, :128, 3] == 255).mean() < 0.8
    assert (blocks[128:, :, 3] == 0).all()
    properties = {f["properties"]["x"]: f["properties"] for f in vector["results"]["features"]}
    assert (properties[OPAQUE[0].x]["uncertain"], properties[OPAQUE[1].x]["uncertain"]) == (True, False)


def test_far_out_an_uncertain_answer_counts_half_in_a_pixels_opacity() -> None:
    """Nine zooms out a pixel stands for 4 result tiles: 4 confident answers are opaque, 4 uncertain ones half."""
    model = ModelInfo("m" * 64, None, "resnet18", ("Forest", "River"), 64, "/m.pt", {},
                      datetime(2026, 1, 1, tzinfo=UTC))
    wanted = OverlayRequest(model, 17, Tile(8, 0, 0))
    grid = overlay_grid([(0, 0, "Forest", 4, 0), (1, 0, "Forest", 4, 4), (2, 0, "River", 3, 1)], request=wanted)
    assert grid.alpha is not None and grid.alpha[0, :3].tolist() == [255, 128, 159]  # 3 - 1/2 of 4: 159
    pixels = np.asarray(Image.open(io.BytesIO(overlay_png(grid))).convert("RGBA"))
    assert pixels[0, :3, 3].tolist() == [255, 128, 159] and (pixels[0, 0, :3] == pixels[0, 1, :3]).all()


def test_resume_and_retry_keep_the_jobs_bounds(site: Site) -> None:
    job = site.enqueue("--min-coverage", "0", "--uncertain-below", "0.9")
    assert site.lose_messages() == 1
    result = site.cli("resume", job)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert site.work() == [{"classified": 3, "failed": 0, "empty": 0}]  # the fringe too: the job's bound is 0
    fringe = tile_document(site, FRINGE)
    assert (fringe["job"], fringe["coverage"], fringe["uncertain"]) == (job, FRINGE_COVERAGE, True)
    assert site.json("status", job, "--json")["uncertain"] == 3

    # A fringe tile that could not be read fails; once fixed, the retry classifies it under the job's bounds.
    broken, edge = site.tree.parent / "broken", Tile(ZOOM, FRINGE.x + 1, ROW)
    write_tile(broken, edge, b"\x89PNG\r\n\x1a\n truncated")
    second = site.enqueue("--min-coverage", "0", "--uncertain-below", "0.9", tree=broken)
    assert site.work() == [{"classified": 0, "failed": 1, "empty": 0}]
    write_tile(broken, edge, fringe_tile())
    result = site.cli("retry", second)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert site.work() == [{"classified": 1, "failed": 0, "empty": 0}]
    fringe = tile_document(site, edge)
    assert (fringe["job"], fringe["coverage"], fringe["uncertain"]) == (second, FRINGE_COVERAGE, True)
    status = site.json("status", second, "--json")
    assert (status["state"], status["classified"], status["failed"], status["uncertain"]) == ("completed", 1, 0, 1)
    assert (status["min_coverage"], status["uncertain_below"]) == (0, 0.9)


def test_the_same_command_resumes_its_job_and_other_bounds_make_a_new_one(site: Site) -> None:
    first = site.enqueue("--min-coverage", "0.25")
    again = site.json("enqueue", site.tree, "--model", site.checkpoint, "--zoom", ZOOM, "--min-coverage", "0.25",
                      "--json")
    assert (again["job_id"], again["resumed"]) == (first, True)
    other = site.enqueue("--min-coverage", "0.3")
    flagged = site.enqueue("--min-coverage", "0.3", "--uncertain-below", "0.5")
    assert len({first, other, flagged}) == 3
    assert [(site.job(j).min_coverage, site.job(j).uncertain_below) for j in (first, other, flagged)] == [
        (0.25, None), (0.3, None), (0.3, 0.5)]


def test_a_models_own_uncertainty_threshold_is_the_default(site: Site) -> None:
    sidecar = site.checkpoint.with_suffix(".json")
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"uncertain_below": 0.9}))
    job = site.enqueue("--min-coverage", "0")
    assert site.job(job).uncertain_below == 0.9
    site.work()
    assert site.json("status", job, "--json")["uncertain"] == 3
    overridden = site.enqueue("--min-coverage", "0", "--uncertain-below", "0.1", "--force")
    assert site.job(overridden).uncertain_below == 0.1
    shown = site.json("models", "show", site.job(job).model_hash, "--json")
    assert shown["metrics"]["uncertain_below"] == 0.9


@pytest.mark.parametrize(("option", "value"), [("--min-coverage", "1.5"), ("--min-coverage", "-0.1"),
                                               ("--uncertain-below", "2"), ("--uncertain-below", "nan")])
def test_a_bound_outside_0_to_1_is_one_line(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(app, ["enqueue", str(tmp_path), "--model", "model.pt", option, value])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"Error: {option} must be a number from 0 to 1 (got {value})"]
