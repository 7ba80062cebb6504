"""``tileclass dataset export`` through the CLI on real tile files and a real database: which tiles (corrected ones
under their correction, confident predictions), ``--per-class`` picking the same tiles every time, the manifest,
images read from every kind of source, ``--out`` rules, the bad inputs; and the whole loop at a tiny size:
export, train the next model, ``models`` lists both."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from core.db import session_scope
from core.jobs import create_job
from core.results import record_results
from core.settings import get_settings
from core.sources import FolderSource, MBTilesSource, PMTilesSource, RasterSource, UrlSource
from core.sources.layouts import Layout
from core.tiles import Tile
from testkit.archives import mbtiles_from_tree, pmtiles_from_mbtiles
from testkit.rasters import mosaic
from tests.factories import add_model, scored
from tests.producer.conftest import cli
from tests.tile_server import serving
from tests.worker.support import tile_tree

pytestmark = pytest.mark.integration

# (label, confidence) of each of the eight tiles; tiles 2 and 5 are then corrected to River and Forest.
PREDICTED = [("Forest", 0.95), ("Forest", 0.92), ("Forest", 0.5), ("River", 0.99), ("River", 0.6),
             ("Residential", 0.97), ("Residential", 0.91), ("Residential", 0.3)]


def use(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TILECLASS_DATABASE_URL", url)
    monkeypatch.setenv("TILECLASS_MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()


def classified_job(source: dict[str, object], tiles: list[Tile], predicted: list[tuple[str, float]]) -> int:
    """A job over ``source`` whose results are ``predicted`` for ``tiles``."""
    with session_scope() as session:
        model = add_model(session)
        job = create_job(session, model_hash=model, source=source).id
        record_results(session, model_hash=model, job_id=job, source_name=str(source["name"]),
                       results=[scored(*tile.xyz(), label, confidence, path=tile.path)
                                for tile, (label, confidence) in zip(tiles, predicted, strict=True)])
    return job


@pytest.fixture
def folder_job(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[int, list[Tile], Path]:
    use(database_url, monkeypatch, tmp_path)
    folder = tmp_path / "tiles"
    tiles = tile_tree(folder, len(PREDICTED))
    source = FolderSource.at(folder, layout=Layout.parse(None), settings=get_settings()).to_record()
    job = classified_job(source, tiles, PREDICTED)
    for index, label in ((2, "river"), (5, "Forest")):
        assert cli("correct", str(tiles[index]), label, "--author", "ana").exit_code == 0
    return job, tiles, folder


def manifest(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_corrected_tiles_and_confident_predictions_become_an_image_folder(
        folder_job: tuple[int, list[Tile], Path], tmp_path: Path) -> None:
    job, tiles, folder = folder_job
    out = tmp_path / "next"
    result = cli("dataset", "export", "--job", job, "--out", out)
    assert result.exit_code == 0, result.output
    assert "wrote 6 images of job" in result.stdout and f"tileclass train {out}" in result.stdout

    def name(index: int) -> str:
        z, x, y = tiles[index].xyz()
        return f"{z}-{x}-{y}.jpg"

    found = {path.parent.name: sorted(p.name for p in path.parent.iterdir()) for path in out.glob("*/*.jpg")}
    assert found == {"Forest": sorted([name(0), name(1), name(5)]), "River": sorted([name(2), name(3)]),
                     "Residential": [name(6)]}
    assert (out / "River" / name(2)).read_bytes() == (folder / str(tiles[2].path)).read_bytes()  # byte for byte
    rows = {row["file"]: row for row in manifest(out)}
    corrected = rows[f"River/{name(2)}"]
    assert (corrected["origin"], corrected["predicted_label"], corrected["author"], corrected["path"]) == (
        "corrected", "Forest", "ana", tiles[2].path)
    assert (rows[f"Forest/{name(0)}"]["origin"], rows[f"Forest/{name(0)}"]["confidence"]) == ("predicted", "0.95")
    summary = json.loads((out / "dataset.json").read_text())
    assert (summary["job"], summary["images"], summary["corrected"], summary["predicted"]) == (job, 6, 2, 4)
    assert summary["classes"] == {"Forest": 3, "Residential": 1, "River": 2}
    assert summary["source"]["kind"] == "folder" and summary["min_confidence"] == 0.9


def test_per_class_picks_the_same_tiles_every_time_and_a_previous_export_is_replaced(
        folder_job: tuple[int, list[Tile], Path], tmp_path: Path) -> None:
    job, tiles, folder = folder_job
    out = tmp_path / "capped"
    first = cli("dataset", "export", "--job", job, "--out", out, "--per-class", 1, "--min-confidence", 0.5, "--json")
    assert first.exit_code == 0, first.output
    picked = sorted(row["file"] for row in manifest(out))
    # corrected tiles first (5 for Forest, 2 for River), then the most confident prediction (6 for Residential)
    assert picked == sorted(f"{label}/{'-'.join(map(str, tiles[i].xyz()))}.jpg"
                            for label, i in (("Forest", 5), ("River", 2), ("Residential", 5 + 1)))
    assert json.loads(first.stdout)["per_class"] == 1

    (folder / str(tiles[6].path)).unlink()  # its file is gone: left out with its reason, the rest exported
    again = cli("dataset", "export", "--job", job, "--out", out, "--per-class", 1, "--min-confidence", 0.5)
    assert again.exit_code == 0, again.output
    assert "left out 1 tiles that could not be read (no such file: 1)" in again.output
    assert sorted(row["file"] for row in manifest(out)) == picked[:1] + picked[2:]  # the previous export replaced
    assert not (out / "Residential").exists()
    assert json.loads((out / "dataset.json").read_text())["left_out"] == {"no such file": 1}


def test_out_folders_and_bad_inputs_are_refused_in_one_line(folder_job: tuple[int, list[Tile], Path],
                                                            tmp_path: Path) -> None:
    job, _, _ = folder_job

    def refused(*args: object, says: str) -> None:
        result = cli("dataset", "export", *map(str, args))
        assert result.exit_code == 2, result.output
        assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output

    stranger = tmp_path / "photos"
    stranger.mkdir()
    (stranger / "holiday.jpg").write_bytes(b"x")
    refused("--job", job, "--out", stranger, says="is not empty and is not a previous 'tileclass dataset export'")
    assert (stranger / "holiday.jpg").exists()
    previous = tmp_path / "previous"
    assert cli("dataset", "export", "--job", job, "--out", previous).exit_code == 0
    (previous / "Forest" / "mine.png").write_bytes(b"x")
    refused("--job", job, "--out", previous, says="holds 1 file it did not write (e.g. Forest/mine.png)")
    refused("--job", 99, "--out", tmp_path / "new", says="job 99 does not exist")
    refused("--job", job, "--out", tmp_path / "new", "--min-confidence", 1.5, says="--min-confidence must be within")
    refused("--job", job, "--out", tmp_path / "new", "--per-class", 0, says="--per-class must be 1 or more")
    refused("--job", job, "--out", tmp_path / "no" / "such", says="does not exist")
    with session_scope() as session:
        training = create_job(session, kind="train").id  # type: ignore[arg-type]
    refused("--job", training, "--out", tmp_path / "new", says="only a classify job's tiles can be exported")
    with session_scope() as session:
        model = add_model(session)
        source = FolderSource.at(tmp_path / "photos", layout=Layout.parse(None), settings=get_settings())
        unsure = create_job(session, model_hash=model, source=source.to_record()).id
        record_results(session, model_hash=model, job_id=unsure, source_name=source.name,
                       results=[scored(17, 1, 1, "Forest", 0.4)])
    refused("--job", unsure, "--out", tmp_path / "new", says="nothing to export: no tile of job")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.partial-*"))


def test_images_are_read_from_every_kind_of_source(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    use(sqlite_url, monkeypatch, tmp_path)
    folder = tmp_path / "tiles"
    tiles = tile_tree(folder, 3)
    predicted = [("Forest", 0.95)] * 3
    mbtiles = mbtiles_from_tree(tmp_path / "region.mbtiles", folder, tiles)
    settings = get_settings()
    archives = {"mbtiles": MBTilesSource.at(mbtiles, settings=settings),
                "pmtiles": PMTilesSource.at(pmtiles_from_mbtiles(tmp_path / "region.pmtiles", mbtiles),
                                            settings=settings)}
    coordinates = [Tile(*tile.xyz()) for tile in tiles]  # archives, servers and rasters read by coordinates
    for kind, source in archives.items():
        job = classified_job(source.to_record(), coordinates, predicted)
        assert cli("dataset", "export", "--job", job, "--out", tmp_path / kind).exit_code == 0
        assert [p.read_bytes() for p in sorted((tmp_path / kind / "Forest").iterdir())] == [
            (folder / str(tile.path)).read_bytes() for tile in tiles]
    with serving(folder) as server:
        job = classified_job(UrlSource.at(server.template, settings=settings).to_record(), coordinates, predicted)
        result = cli("dataset", "export", "--job", job, "--out", tmp_path / "url")
        assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "url" / "Forest").glob("*.jpg"))) == 3
    raster = mosaic(tmp_path / "region.tif", {tile: folder / str(tile.path) for tile in tiles})
    job = classified_job(RasterSource.at(raster, settings=settings).to_record(), coordinates, predicted)
    result = cli("dataset", "export", "--job", job, "--out", tmp_path / "raster")
    assert result.exit_code == 0, result.output
    cut = sorted((tmp_path / "raster" / "Forest").iterdir())
    assert [p.suffix for p in cut] == [".png"] * 3  # a raster's cut tile is written as PNG
    with Image.open(cut[0]) as image:
        assert image.size == (256, 256)


@pytest.mark.slow
def test_the_loop_export_train_and_models_lists_both(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """Export a corrected job, train the next model on it for one tiny epoch, and see both in ``models``."""
    from core.models.registry import register_checkpoint
    from tests.worker.support import CLASSES, EUROSAT, tiny_checkpoint

    use(sqlite_url, monkeypatch, tmp_path)
    folder, tiles, predicted = tmp_path / "tiles", [], []
    for index in range(24):  # real EuroSAT images of the model's three classes, as z17 tiles
        label = CLASSES[index % 3]
        tile = Tile(17, 70000 + index, 42000, f"17/{70000 + index}/42000.jpg")
        (folder / str(tile.path)).parent.mkdir(parents=True)
        (folder / str(tile.path)).write_bytes((EUROSAT / label / f"{label}_{index + 1}.jpg").read_bytes())
        tiles.append(tile)
        predicted.append((label if index % 6 else CLASSES[(index + 1) % 3], 0.95))  # every sixth one is wrong
    with session_scope() as session:
        first = register_checkpoint(session, checkpoint=tiny_checkpoint(tmp_path / "v1"), settings=get_settings())
        source = FolderSource.at(folder, layout=Layout.parse(None), settings=get_settings()).to_record()
        job = create_job(session, model_hash=first.hash, source=source).id
        record_results(session, model_hash=first.hash, job_id=job, source_name=str(source["name"]),
                       results=[scored(*t.xyz(), label, confidence, classes=CLASSES, path=t.path)
                                for t, (label, confidence) in zip(tiles, predicted, strict=True)])
    for index in range(0, 24, 6):  # a person fixes the wrong ones
        assert cli("correct", str(tiles[index]), CLASSES[index % 3]).exit_code == 0

    data = tmp_path / "v2-data"
    exported = cli("dataset", "export", "--job", job, "--out", data)
    assert exported.exit_code == 0, exported.output
    assert {p.name: len(list(p.iterdir())) for p in data.iterdir() if p.is_dir()} == {name: 8 for name in CLASSES}
    trained = cli("train", data, "--epochs", 1, "--batch-size", 8, "--image-size", 32, "--workers", 1,
                  "--out", tmp_path / "v2")
    assert trained.exit_code == 0, trained.output
    listed = json.loads(cli("models", "--json").stdout)
    assert len(listed) == 2 and listed[1]["hash"] == first.hash  # the new version first, beside the last one
    assert listed[0]["classes"] == 3 and listed[0]["hash"] != first.hash


def test_file_and_folder_names_are_safe_and_other_formats_become_png() -> None:
    """Unit checks of the writer's naming and conversion (no database)."""
    import io
    from datetime import UTC, datetime

    from core.queries import LabelledTile, TileAnswer
    from producer.dataset import file_stem, folder_name, image_file

    def stem_of(path: str) -> str:
        answer = TileAnswer(Tile(None, None, None, path), "scans", "m", "Forest", 0.9, {}, 1,
                            datetime(2026, 1, 1, tzinfo=UTC))
        return file_stem(LabelledTile(answer, None))

    assert folder_name("Annual Crop") == "Annual Crop" and folder_name("../etc") == "_.._etc"
    assert folder_name(".hidden") == "_.hidden" and folder_name("a/b") == "a_b"
    stem = stem_of("scans/2024/a b.tif")
    assert stem.startswith("a b-") and "/" not in stem and len(stem) == len("a b-") + 10
    assert stem_of("other/a b.tif") != stem  # the same file name in two folders: two names

    gif = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(gif, format="GIF")
    converted = image_file(gif.getvalue(), max_pixels=1 << 24)
    assert isinstance(converted, tuple) and converted[1] == "png" and converted[0].startswith(b"\x89PNG")
    assert image_file(b"not an image", max_pixels=1 << 24) == "not a readable image"
    assert image_file(gif.getvalue(), max_pixels=16) == "image too large (8x8 pixels)"


def test_a_symlinked_out_is_followed_and_no_staging_folder_outlives_the_command(
        folder_job: tuple[int, list[Tile], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 32, item 17: a link to a folder (empty, a previous export, or one not made yet) gets the export, and
    stays a link to it; a link loop, and a swap that fails, are one line each, leaving no ``.partial`` folder."""
    job, _, _ = folder_job
    disk, links = tmp_path / "disk", tmp_path / "links"
    disk.mkdir()
    links.mkdir()
    (disk / "empty").mkdir()
    for name, target in (("empty", disk / "empty"), ("later", disk / "later")):
        (links / name).symlink_to(target)
        for _ in range(2):  # the second time, over the previous export
            result = cli("dataset", "export", "--job", job, "--out", links / name)
            assert result.exit_code == 0, result.output
            assert (links / name).is_symlink() and (links / name).resolve() == target
            assert len(manifest(target)) == 6 and (target / "dataset.json").is_file()

    (links / "loop").symlink_to(links / "loop")
    looped = cli("dataset", "export", "--job", job, "--out", links / "loop")
    assert looped.exit_code == 2 and len(looped.output.strip().splitlines()) == 1, looped.output
    assert "cannot follow --out" in looped.output

    import producer.dataset_folder

    def full_disk(source: object, target: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(producer.dataset_folder.os, "rename", full_disk)
    failed = cli("dataset", "export", "--job", job, "--out", links / "fresh", "--json")  # --json: no progress bar
    assert failed.exit_code == 2 and len(failed.output.strip().splitlines()) == 1, failed.output
    assert f"cannot put the export in place at {str(tmp_path / 'links' / 'fresh')!r}: No space left" in failed.output
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no staging or previous folder anywhere
