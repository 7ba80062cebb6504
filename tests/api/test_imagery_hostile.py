"""``/imagery`` from hostile archives: a non-BLOB MBTiles row and a gzip-bomb PMTiles tile are a clean 404 naming the
reason (never a 500 with a traceback, never a response of the bomb's size), and the tiles beside them still read."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pmtiles.tile import Compression, zxy_to_tileid

from core.settings import load_settings
from core.sources import MBTilesSource, PMTilesSource
from core.sources.archive import MAX_TILE_BYTES
from testkit.archives import directory, gzip_bomb, hand_made_pmtiles, write_mbtiles
from tests.api.support import BASE, ZOOM, Region, tile_png
from tests.api.test_imagery import add_job

GOOD, BAD = (ZOOM, BASE[0], BASE[1]), (ZOOM, BASE[0] + 1, BASE[1])


@pytest.mark.parametrize(("stored", "kind"), [("a text row", "TEXT"), (10**12, "INTEGER")])
def test_a_non_blob_mbtiles_row_is_a_404_with_its_reason(sqlite_region: Region, sqlite_url: str, client: TestClient,
                                                         tmp_path: Path, stored: object, kind: str) -> None:
    archive = write_mbtiles(tmp_path / "rows.mbtiles", [(*GOOD, tile_png(*GOOD[1:])), (*BAD, stored)],
                            image_format="png")
    job = add_job(sqlite_url, sqlite_region, MBTilesSource.at(archive, settings=load_settings()).to_record())
    answer = client.get(f"/imagery/{job}/{ZOOM}/{BAD[1]}/{BAD[2]}")
    assert answer.status_code == 404
    assert answer.json()["detail"].endswith(f"tile_data is {kind}, not a BLOB of image bytes")
    assert client.get(f"/imagery/{job}/{ZOOM}/{GOOD[1]}/{GOOD[2]}").content == tile_png(*GOOD[1:])


def test_a_gzip_bomb_pmtiles_tile_is_a_404_without_being_inflated(sqlite_region: Region, sqlite_url: str,
                                                                  client: TestClient, tmp_path: Path) -> None:
    stored = sorted([(zxy_to_tileid(*GOOD), gzip.compress(tile_png(*GOOD[1:]))),
                     (zxy_to_tileid(*BAD), gzip_bomb(256 << 20))])
    entries, offset = [], 0
    for tile_id, data in stored:
        entries.append((tile_id, offset, len(data), 1))
        offset += len(data)
    archive = hand_made_pmtiles(tmp_path / "bomb.pmtiles", root=directory(*entries), tile_compression=Compression.GZIP,
                                tile_data=b"".join(data for _, data in stored))
    job = add_job(sqlite_url, sqlite_region, PMTilesSource.at(archive, settings=load_settings()).to_record())
    answer = client.get(f"/imagery/{job}/{ZOOM}/{BAD[1]}/{BAD[2]}")
    assert answer.status_code == 404
    assert answer.json()["detail"].endswith(f"tile too large: inflates to more than {MAX_TILE_BYTES} bytes")
    assert client.get(f"/imagery/{job}/{ZOOM}/{GOOD[1]}/{GOOD[2]}").content == tile_png(*GOOD[1:])
