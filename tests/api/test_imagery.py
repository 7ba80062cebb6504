"""A job's imagery comes from its own source, whatever its kind (folder, MBTiles, PMTiles, a loopback tile server, a
GeoTIFF), only inside its region and at its zooms, and never from a file outside its folder."""

from __future__ import annotations

import io
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.db import session_scope
from core.jobs import create_job
from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource, RasterSource, UrlSource
from core.sources.layouts import Layout
from core.tiles import Tile
from testkit.archives import pmtiles_from_mbtiles, write_mbtiles
from testkit.rasters import mosaic
from tests.api.support import BASE, SIDE, ZOOM, Region, tile_png
from tests.tile_server import serving


def region_tiles() -> list[Tile]:
    return [Tile(ZOOM, BASE[0] + dx, BASE[1] + dy, f"{ZOOM}/{BASE[0] + dx}/{BASE[1] + dy}.png")
            for dx in range(SIDE) for dy in range(SIDE)]


def add_job(url: str, region: Region, source: dict[str, object]) -> int:
    with session_scope(url) as session:
        job = create_job(session, model_hash=region.model_hash, source=source,
                         region={"zooms": [ZOOM], "bbox": region.bbox.as_list(), "geojson": None})
        return job.id


def pixel(answer_content: bytes) -> tuple[int, ...]:
    return tuple(np.asarray(Image.open(io.BytesIO(answer_content)).convert("RGB"))[128, 128])


def test_folder_imagery_is_the_tiles_own_file(sqlite_region: Region, client: TestClient) -> None:
    x, y = BASE[0] + 2, BASE[1] + 5
    answer = client.get(f"/imagery/{sqlite_region.job_id}/{ZOOM}/{x}/{y}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.content == tile_png(x, y)
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_imagery_outside_the_jobs_region_or_zoom_is_empty_and_missing_in_its_source_is_404(
        sqlite_region: Region, client: TestClient) -> None:
    job = sqlite_region.job_id
    for outside in (f"{ZOOM}/{BASE[0] + SIDE + 5}/{BASE[1]}", f"{ZOOM}/{BASE[0] + SIDE}/{BASE[1]}",  # the next one
                    f"{ZOOM - 1}/{BASE[0] // 2}/{BASE[1] // 2}"):
        answer = client.get(f"/imagery/{job}/{outside}")
        assert answer.status_code == 204 and answer.content == b"", outside  # nothing to draw there: no error
    (sqlite_region.root / str(ZOOM) / str(BASE[0]) / f"{BASE[1]}.png").unlink()
    missing = client.get(f"/imagery/{job}/{ZOOM}/{BASE[0]}/{BASE[1]}")
    assert missing.status_code == 404 and "no tile file" in missing.json()["detail"]
    assert client.get(f"/imagery/999/{ZOOM}/{BASE[0]}/{BASE[1]}").status_code == 404


def test_a_folder_swapped_for_a_symlink_out_of_the_source_is_never_read(sqlite_region: Region, client: TestClient,
                                                                        tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / str(BASE[0] + 1)
    secret.mkdir(parents=True)
    (secret / f"{BASE[1]}.png").write_bytes(tile_png(1, 2))
    column = sqlite_region.root / str(ZOOM) / str(BASE[0] + 1)
    for file in column.iterdir():
        file.unlink()
    column.rmdir()
    os.symlink(secret, column)
    answer = client.get(f"/imagery/{sqlite_region.job_id}/{ZOOM}/{BASE[0] + 1}/{BASE[1]}")
    assert answer.status_code == 404 and "outside its root" in answer.json()["detail"]


@pytest.mark.parametrize("kind", ["mbtiles", "pmtiles"])
def test_archive_imagery(sqlite_region: Region, sqlite_url: str, client: TestClient, tmp_path: Path,
                         kind: str) -> None:
    archive = write_mbtiles(tmp_path / "city.mbtiles", [(*t.xyz(), tile_png(t.x or 0, t.y or 0))
                                                         for t in region_tiles()], image_format="png")
    if kind == "pmtiles":
        archive = pmtiles_from_mbtiles(tmp_path / "city.pmtiles", archive)
    source = (MBTilesSource if kind == "mbtiles" else PMTilesSource).at(archive, settings=load_settings())
    job = add_job(sqlite_url, sqlite_region, source.to_record())
    x, y = BASE[0] + 3, BASE[1] + 1
    answer = client.get(f"/imagery/{job}/{ZOOM}/{x}/{y}")
    assert answer.status_code == 200 and answer.content == tile_png(x, y)


def test_tile_server_imagery_is_fetched_through_the_job_only_inside_its_region(
        sqlite_region: Region, sqlite_url: str, client: TestClient) -> None:
    for tile in region_tiles():  # the loopback server serves z/x/y.jpg files
        (sqlite_region.root / str(tile.path)).with_suffix(".jpg").write_bytes(tile_png(tile.x or 0, tile.y or 0))
    with serving(sqlite_region.root) as server:
        job = add_job(sqlite_url, sqlite_region, UrlSource.at(server.template, settings=load_settings()).to_record())
        x, y = BASE[0] + 4, BASE[1] + 6
        answer = client.get(f"/imagery/{job}/{ZOOM}/{x}/{y}")
        assert answer.status_code == 200 and answer.content == tile_png(x, y)
        assert client.get(f"/imagery/{job}/{ZOOM}/{BASE[0] - 50}/{y}").status_code == 204
        assert f"{ZOOM}/{BASE[0] - 50}/{y}" not in server.requests  # the server was never asked
        server.fault(f"{ZOOM}/{x}/{y + 1}", "404")
        absent = client.get(f"/imagery/{job}/{ZOOM}/{x}/{y + 1}")
        assert absent.status_code == 404


def test_geotiff_imagery_is_cut_and_sent_as_png(sqlite_region: Region, sqlite_url: str, client: TestClient,
                                               tmp_path: Path) -> None:
    pictures = {}
    for tile in region_tiles():
        picture = tmp_path / "pictures" / f"{tile.x}-{tile.y}.png"
        picture.parent.mkdir(exist_ok=True)
        picture.write_bytes(tile_png(tile.x or 0, tile.y or 0))
        pictures[tile] = picture
    raster = mosaic(tmp_path / "city.tif", pictures)
    job = add_job(sqlite_url, sqlite_region, RasterSource.at(raster, settings=load_settings()).to_record())
    x, y = BASE[0] + 5, BASE[1] + 2
    answer = client.get(f"/imagery/{job}/{ZOOM}/{x}/{y}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert pixel(answer.content) == (x % 256, y % 256, 77)


def test_a_plain_folder_of_images_has_no_map_imagery(sqlite_region: Region, sqlite_url: str,
                                                     client: TestClient) -> None:
    from core.sources import FolderSource

    plain = FolderSource("plain", str(sqlite_region.root), Layout.parse("plain")).to_record()
    job = add_job(sqlite_url, sqlite_region, plain)
    assert client.get(f"/imagery/{job}/{ZOOM}/{BASE[0]}/{BASE[1]}").status_code == 404


def test_a_tile_server_that_is_down_is_503_with_retry_after(sqlite_region: Region, sqlite_url: str,
                                                            client: TestClient) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{free.getsockname()[1]}/{{z}}/{{x}}/{{y}}.jpg"  # nothing listens there
    job = add_job(sqlite_url, sqlite_region, UrlSource.at(dead, settings=load_settings()).to_record())
    answer = client.get(f"/imagery/{job}/{ZOOM}/{BASE[0]}/{BASE[1]}")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert answer.json()["detail"].startswith(f"job {job}'s source cannot be read now: tile server unreachable")


def test_imagery_follows_redirects_within_the_servers_host_and_never_serves_another_hosts_bytes(
        sqlite_region: Region, sqlite_url: str, client: TestClient, tmp_path: Path) -> None:
    for tile in region_tiles():
        (sqlite_region.root / str(tile.path)).with_suffix(".jpg").write_bytes(tile_png(tile.x or 0, tile.y or 0))
    elsewhere = tmp_path / "elsewhere" / f"{ZOOM}/{BASE[0]}/{BASE[1]}.jpg"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(tile_png(1, 2))
    with serving(sqlite_region.root) as server, serving(tmp_path / "elsewhere") as other:
        job = add_job(sqlite_url, sqlite_region, UrlSource.at(server.template, settings=load_settings()).to_record())
        x, y = BASE[0] + 1, BASE[1] + 1
        server.fault(f"{ZOOM}/{x}/{y}", f"redirect:/tiles/{ZOOM}/{x}/{y}.jpg?moved=1")
        moved = client.get(f"/imagery/{job}/{ZOOM}/{x}/{y}")
        assert moved.status_code == 200 and moved.content == tile_png(x, y)
        server.fault(f"{ZOOM}/{BASE[0]}/{BASE[1]}", f"redirect:{other.template.format(z=ZOOM, x=BASE[0], y=BASE[1])}")
        refused = client.get(f"/imagery/{job}/{ZOOM}/{BASE[0]}/{BASE[1]}")
        assert refused.status_code == 404 and "redirected to another host" in refused.json()["detail"]
        assert sum(other.requests.values()) == 0  # the other host was never asked for its bytes


def test_imagery_never_sends_tileclass_settings_to_a_tile_server(
        sqlite_region: Region, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import get_settings
    from tests.api.conftest import client_for

    secret = "the-servers-own-api-token-0123"
    monkeypatch.setenv("TILECLASS_API_TOKEN", secret)
    monkeypatch.setenv("TILECLASS_SOURCE_ENV", '["TILECLASS_API_TOKEN"]')  # listed, and still refused
    get_settings.cache_clear()
    with serving(sqlite_region.root) as server:
        # A job recorded with such a template (by an older version, or forged): this server never resolves it.
        leaky = {"kind": "url", "name": "leaky", "template": server.template + "?t={env:TILECLASS_API_TOKEN}"}
        job = add_job(sqlite_url, sqlite_region, leaky)
        answer = client_for().get(f"/imagery/{job}/{ZOOM}/{BASE[0]}/{BASE[1]}")
        assert answer.status_code == 404 and "{env:TILECLASS_API_TOKEN} is refused" in answer.json()["detail"]
        assert server.requests == {} and secret not in answer.text
