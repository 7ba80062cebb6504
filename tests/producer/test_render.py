"""The map picture: class colours per tile, hatched failures, reduced resolution for big regions, imagery from
the job's root (label-maker's tiles, named {x}-{y}-{z}.jpg, with EuroSAT pictures), and ``tileclass render`` through
CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from core.db import session_scope
from core.jobs import create_job
from core.palette import PALETTE, class_colour
from core.queries import BBox, MapCell, TileFailure, TileRange
from core.results import Failure, record_failures, record_results
from core.settings import get_settings
from core.tiles import Tile
from producer.render import (
    FAILED,
    HATCH,
    MARGIN,
    NO_RESULT,
    TITLE_HEIGHT,
    MapCanvas,
    fit_layout,
)
from tests.factories import CLASSES, add_model, scored
from tests.labelmaker import Z17, labelmaker_tiles


def invoke(*args: str) -> tuple[int, str, str]:
    from producer.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def block(pixels: np.ndarray, column: int, row: int, px: int, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    left, top = origin[0] + column * px, origin[1] + row * px
    return pixels[top : top + px, left : left + px].reshape(-1, 3)


def colours(pixels: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in np.unique(pixels.reshape(-1, 3), axis=0)}


def test_the_palette_is_fixed_distinct_and_keyed_by_class_position() -> None:
    assert len(set(PALETTE)) == len(PALETTE) == 12
    assert class_colour(0) == (0xCC, 0x66, 0x77) and class_colour(3) == (0x11, 0x77, 0x33)
    assert class_colour(12) == class_colour(0)
    assert NO_RESULT not in PALETTE and FAILED not in PALETTE


def test_each_tile_gets_its_class_colour_and_failures_are_hatched() -> None:
    layout = fit_layout(TileRange(10, 100, 103, 50, 51), max_size=400, max_px=48)
    assert (layout.px, layout.size) == (48, (192, 96))
    canvas = MapCanvas(layout, CLASSES)
    canvas.add_failures([TileFailure(Tile(10, 103, 50, "p"), "r", "truncated", 1)])
    canvas.add_cells([MapCell(Tile(10, 100, 50, "a"), "Forest", "r", 1),
                      MapCell(Tile(10, 101, 50, "b"), "River", "r", 1),
                      MapCell(Tile(10, 102, 50, "c"), "Residential", "r", 1),
                      MapCell(Tile(10, 100, 51, "d"), "Forest", "r", 1)])
    pixels = np.asarray(canvas.draw_map())
    assert colours(block(pixels, 0, 0, 48)) == {class_colour(0)}
    assert colours(block(pixels, 1, 0, 48)) == {class_colour(1)}
    assert colours(block(pixels, 2, 0, 48)) == {class_colour(2)}
    assert colours(block(pixels, 0, 1, 48)) == {class_colour(0)}
    assert colours(block(pixels, 3, 0, 48)) == {FAILED, HATCH}
    assert colours(block(pixels, 1, 1, 48)) == {NO_RESULT}
    assert [text for _, text in canvas.legend()] == [
        "Forest  2  (50.0%)", "River  1  (25.0%)", "Residential  1  (25.0%)", "failed  1", "no result"]


def test_a_region_of_millions_of_tiles_is_drawn_at_max_size() -> None:
    tiles = TileRange(20, 0, 199_999, 0, 99_999)  # 20 billion tiles
    layout = fit_layout(tiles, max_size=500)
    assert layout.size == (500, 250) and layout.px == 1 and layout.scale == pytest.approx(1 / 400)
    canvas = MapCanvas(layout, CLASSES)
    rng = np.random.default_rng(0)
    xs, ys = rng.integers(0, 100_000, 200_000), rng.integers(0, 100_000, 200_000)  # only the western half
    canvas.add_cells(MapCell(Tile(20, int(x), int(y), "p"), "River", "r", None) for x, y in zip(xs, ys, strict=True))
    pixels = np.asarray(canvas.draw_map())
    assert pixels.shape == (250, 500, 3)
    assert colours(pixels[:, 260:]) == {NO_RESULT}
    assert (pixels[:, :250] == class_colour(1)).all(axis=-1).mean() > 0.8
    assert canvas.counts["River"] == 200_000


@pytest.fixture
def cli_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    return sqlite_url


def seed_labelmaker_job(url: str, root_path: str) -> int:
    """A job over label-maker's 8 tiles (a 3x3 block at zoom 17 with one hole): 7 classified, 1 failed."""
    names = sorted(f"{x}-{y}-17.jpg" for x, y in Z17)
    keys = [Tile(int(name[:-4].split("-")[2]), int(name.split("-")[0]), int(name.split("-")[1]), name)
            for name in names]
    source = {"kind": "folder", "name": "labelmaker", "path": root_path, "layout": "xyz:{x}-{y}-{z}.jpg"}
    with session_scope(url) as session:
        digest = add_model(session)
        job = create_job(session, model_hash=digest, source=source).id
        record_results(session, source_name="labelmaker", model_hash=digest, job_id=job, results=[
            scored(k.z, k.x, k.y, CLASSES[i % 3], path=k.path) for i, k in enumerate(keys[:-1])])
        record_failures(session, source_name="labelmaker", model_hash=digest, job_id=job,
                        failures=[Failure(keys[-1], "truncated")])
    return job


def test_render_a_job_over_its_imagery(cli_db: str, tmp_path: Path) -> None:
    job = seed_labelmaker_job(cli_db, str(labelmaker_tiles(tmp_path / "z17-jpg")))
    plain, over = tmp_path / "plain.png", tmp_path / "imagery.png"
    code, out, err = invoke("render", str(job), "--out", str(plain))
    assert code == 0, err
    assert out == (f"wrote {plain}: map 144x144 px of zoom 17, x 62092..62094, y 50162..50164 (7 classified, "
                   "1 failed, 0 empty)\n")
    code, out, err = invoke("render", str(job), "--out", str(over), "--imagery", "--max-size", "600")
    assert code == 0, err
    assert f"wrote {over}: map 600x600 px of zoom 17" in out
    plain_pixels, over_pixels = (np.asarray(Image.open(path).convert("RGB")) for path in (plain, over))
    origin = (MARGIN, TITLE_HEIGHT)
    # 62092-50163 is the first tile (column 0, row 1): Forest, drawn flat alone and textured over its image.
    assert colours(block(plain_pixels, 0, 1, 48, origin)) == {class_colour(0)}
    textured = block(over_pixels, 0, 1, 200, origin).astype(float)
    assert textured.std(axis=0).mean() > 5
    assert np.abs(textured.mean(axis=0) - class_colour(0)).max() > 10  # the image shows through the colour
    assert colours(block(over_pixels, 0, 0, 200, origin)) == {NO_RESULT}  # 62092-50162 has no tile at all
    assert colours(block(over_pixels, 2, 2, 200, origin)) == {FAILED, HATCH}  # the failed tile, 62094-50164
    assert plain_pixels.shape[1] > MARGIN + 144 + 100  # the legend sits to the right of the map


def test_render_without_a_readable_root_draws_plain_colours(cli_db: str, tmp_path: Path) -> None:
    job = seed_labelmaker_job(cli_db, str(tmp_path / "unmounted"))
    code, _, _ = invoke("render", str(job), "--out", str(tmp_path / "map.png"), "--imagery", "--max-size", "300")
    assert code == 0
    pixels = np.asarray(Image.open(tmp_path / "map.png").convert("RGB"))
    assert colours(block(pixels, 0, 1, 100, (MARGIN, TITLE_HEIGHT))) == {class_colour(0)}


def test_render_a_western_bbox_at_reduced_resolution(cli_db: str, tmp_path: Path) -> None:
    region = BBox.parse("-9.50,38.80,-9.40,38.85")
    tiles = region.tiles(17)
    with session_scope(cli_db) as session:
        digest = add_model(session)
        record_results(session, source_name="root", model_hash=digest, job_id=None, results=[
            scored(17, x, y, "River" if x < tiles.min_x + tiles.width // 2 else "Forest")
            for x in range(tiles.min_x, tiles.max_x + 1) for y in range(tiles.min_y, tiles.max_y + 1)])
    out = tmp_path / "region.png"
    code, stdout, err = invoke("render", "--bbox=-9.50,38.80,-9.40,38.85", "--zoom", "17", "--max-size", "20",
                               "--out", str(out))
    assert code == 0, err
    assert tiles.width > 20 and f"map 20x{int(np.ceil(tiles.height * 20 / tiles.width))} px" in stdout
    pixels = np.asarray(Image.open(out).convert("RGB"))
    map_pixels = pixels[TITLE_HEIGHT : TITLE_HEIGHT + 10, MARGIN : MARGIN + 20]
    assert colours(map_pixels[:, :9]) == {class_colour(1)} and colours(map_pixels[:, 11:]) == {class_colour(0)}


@pytest.mark.parametrize(("args", "message"), [
    (["render", "--out", "m.png"], "Error: name a job or a region (--bbox W,S,E,N with --zoom Z)"),
    (["render", "1", "--out", "m.png"], "Error: nothing to draw for job 1, model "),
    (["render", "1", "--out", "m.jpg"], "Error: --out must be a .png file in an existing folder"),
    (["render", "1", "--out", "m.png", "--max-size", "4"], "Error: --max-size must be within 16..32768 pixels"),
    (["render", "--bbox", "-9.4,38.8,-9.5,38.9", "--zoom", "12", "--out", "m.png"],
     "Error: bbox [-9.4, 38.8, -9.5, 38.9] is empty or inverted"),
    (["render", "--bbox", "-9.5,38.8,-9.4,38.9", "--zoom", "12", "--out", "m.png"],
     "Error: nothing to draw for bbox -9.5,38.8,-9.4,38.9, zoom 12, no model: no model has results there"),
])
def test_render_bad_input(cli_db: str, args: list[str], message: str) -> None:
    with session_scope(cli_db) as session:
        create_job(session, model_hash=add_model(session))
    code, out, err = invoke(*args)
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(message)
