"""``core.vectorize``: a job's tiles merged into polygons, in blocks of the tile grid (issue 29, part 1).

A drawn region of known shapes (``PICTURE``) checks each rule: a ring with a hole (and an island in the hole), two
tiles touching only at a corner (not merged), a block of tiles cut by block edges, an uncertain tile. A random map
read in small blocks checks the whole against the tiles: per class the union of the polygons is the union of the
tiles, no two polygons of one class share an edge, and there are as many as the map has 4-connected regions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import mercantile
import pytest
import shapely

from core.db import session_scope
from core.jobs import create_job
from core.queries import select_results
from core.results import record_results
from core.tile_area import tile_area_km2
from core.vectorize import TilePolygon, VectorizeOptions, vectorize_job
from tests.factories import CLASSES, add_model, scored

Z, X0, Y0 = 16, 33000, 21000
# F Forest, R River, H Residential, u an uncertain Forest (confidence under the job's bound), . no result.
PICTURE = """
FFFFF.R.
F...F..R
F.R.F...
F...F.HH
FFFFF.HH
.....uHH
"""
CODES = {"F": "Forest", "R": "River", "H": "Residential", "u": "Forest"}
UNCERTAIN_BELOW = 0.5


def drawn(picture: str) -> Iterator[tuple[int, int, str]]:
    for row, line in enumerate(picture.strip().splitlines()):
        for column, char in enumerate(line):
            if char != ".":
                yield X0 + column, Y0 + row, char


def confidence_of(x: int, y: int, char: str) -> float:
    return 0.3 if char == "u" else 0.6 + 0.01 * ((x * 7 + y * 3) % 30)


def store(url: str, tiles: list[tuple[int, int, str]]) -> int:
    with session_scope(url) as session:
        digest = add_model(session, "vectorize")
        job = create_job(session, model_hash=digest).id
        results = [scored(Z, x, y, CODES.get(char, char), confidence_of(x, y, char)) for x, y, char in tiles]
        record_results(session, model_hash=digest, job_id=job, source_name="tiles", results=results,
                       uncertain_below=UNCERTAIN_BELOW)
    return job


def polygons(url: str, job: int, **options: object) -> list[TilePolygon]:
    with session_scope(url, read_only=True) as session:
        selection = select_results(session, job_id=job)
        return list(vectorize_job(session, selection=selection, options=VectorizeOptions(**options)))  # type: ignore[arg-type]


def tiles_union(tiles: list[tuple[int, int]]) -> shapely.Geometry:
    return shapely.union_all([shapely.box(*mercantile.bounds(x, y, Z)) for x, y in tiles])


def area_m2(tiles: list[tuple[int, int]]) -> float:
    return sum(tile_area_km2(Z, x, y) * 1e6 for x, y in tiles)


@pytest.fixture
def picture_job(sqlite_url: str) -> int:
    return store(sqlite_url, list(drawn(PICTURE)))


@pytest.mark.parametrize("block", [1024, 4, 3, 2])
def test_the_drawn_shapes_come_out_whatever_the_blocks(sqlite_url: str, picture_job: int, block: int) -> None:
    check_picture(polygons(sqlite_url, picture_job, block=block))


def test_the_drawn_shapes_on_postgresql(postgres_url: str) -> None:
    check_picture(polygons(postgres_url, store(postgres_url, list(drawn(PICTURE))), block=3))


def check_picture(found: list[TilePolygon]) -> None:
    by_label: dict[str, list[TilePolygon]] = {}
    for polygon in found:
        by_label.setdefault(polygon.label, []).append(polygon)
    assert sorted(by_label) == ["Forest", "Residential", "River"]  # the uncertain Forest tile is left out

    (ring,) = by_label["Forest"]
    ring_tiles = [(x, y) for x, y, char in drawn(PICTURE) if char == "F"]
    assert ring.geometry.geom_type == "Polygon" and len(ring.geometry.interiors) == 1
    assert ring.tile_count == 16 and shapely.equals(ring.geometry, tiles_union(ring_tiles))
    assert ring.area_m2 == pytest.approx(area_m2(ring_tiles), rel=1e-12)
    confidences = [confidence_of(x, y, "F") for x, y in ring_tiles]
    assert ring.mean_confidence == pytest.approx(sum(confidences) / 16, rel=1e-6)
    assert ring.min_confidence == pytest.approx(min(confidences), rel=1e-6)

    # The island in the ring's hole, and two River tiles touching at a corner only: three polygons of one tile.
    assert sorted(p.tile_count for p in by_label["River"]) == [1, 1, 1]
    (block_of_houses,) = by_label["Residential"]
    houses = [(x, y) for x, y, char in drawn(PICTURE) if char == "H"]
    assert block_of_houses.tile_count == 6 and shapely.equals(block_of_houses.geometry, tiles_union(houses))
    assert all(p.geometry.is_valid and p.geometry.exterior.is_ccw for p in found)


def test_keep_uncertain_makes_a_class_of_its_own(sqlite_url: str, picture_job: int) -> None:
    found = polygons(sqlite_url, picture_job, keep_uncertain=True, block=3)
    (uncertain,) = [p for p in found if p.label == "uncertain"]
    assert uncertain.tile_count == 1 and uncertain.min_confidence == pytest.approx(0.3)
    assert shapely.equals(uncertain.geometry, tiles_union([(X0 + 5, Y0 + 5)]))


def test_min_area_drops_smaller_polygons(sqlite_url: str, picture_job: int) -> None:
    one_tile = area_m2([(X0, Y0 + 5)])
    kept = polygons(sqlite_url, picture_job, min_area_m2=2 * one_tile, block=3)
    assert sorted(p.tile_count for p in kept) == [6, 16]


def test_groups_merge_the_classes_of_one_group(sqlite_url: str, picture_job: int) -> None:
    group = {"Forest": "green", "River": "green", "Residential": "built"}
    found = polygons(sqlite_url, picture_job, group_of=group.__getitem__, block=2)
    # The island joins nothing (the hole around it is empty); the two corner-touching River tiles stay apart.
    assert sorted((p.label, p.tile_count) for p in found) == [
        ("built", 6), ("green", 1), ("green", 1), ("green", 1), ("green", 16)]


def components(cells: dict[tuple[int, int], str]) -> int:
    """How many 4-connected regions of one label ``cells`` holds (a flood fill, to check the library's count)."""
    seen: set[tuple[int, int]] = set()
    regions = 0
    for start in cells:
        if start in seen:
            continue
        regions += 1
        stack = [start]
        seen.add(start)
        while stack:
            x, y = stack.pop()
            for near in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if near not in seen and cells.get(near) == cells[start]:
                    seen.add(near)
                    stack.append(near)
    return regions


@pytest.mark.parametrize("seed", [1, 2])
def test_a_random_map_in_small_blocks_covers_exactly_its_tiles(sqlite_url: str, seed: int) -> None:
    rng = random.Random(seed)
    cells = {(X0 + i, Y0 + j): rng.choice(CLASSES) for i in range(41) for j in range(29) if rng.random() < 0.85}
    job = store(sqlite_url, [(x, y, label) for (x, y), label in cells.items()])
    found = polygons(sqlite_url, job, block=7)
    assert len(found) == components(cells)
    assert sum(p.tile_count for p in found) == len(cells)
    for label in CLASSES:
        mine = [p.geometry for p in found if p.label == label]
        tiles = [tile for tile, cell in cells.items() if cell == label]
        union = shapely.union_all(mine)
        assert shapely.equals(union, tiles_union(tiles)), label
        assert union.area == pytest.approx(sum(p.area for p in mine), rel=1e-9)  # no overlaps
        tree = shapely.STRtree(mine)
        first, second = tree.query(mine, predicate="touches")
        assert not shapely.relate_pattern(tree.geometries[first], tree.geometries[second], "****1****").any()


def test_tiles_a_later_job_classified_again_are_not_this_jobs(sqlite_url: str, picture_job: int) -> None:
    houses = [(x, y) for x, y, char in drawn(PICTURE) if char == "H"]
    with session_scope(sqlite_url) as session:
        digest = add_model(session, "vectorize")
        later = create_job(session, model_hash=digest).id
        record_results(session, model_hash=digest, job_id=later, source_name="tiles",
                       results=[scored(Z, x, y, "Residential") for x, y in houses[:2]])
    (block_of_houses,) = [p for p in polygons(sqlite_url, picture_job, block=3) if p.label == "Residential"]
    assert block_of_houses.tile_count == 4 and shapely.equals(block_of_houses.geometry, tiles_union(houses[2:]))
    (theirs,) = polygons(sqlite_url, later)
    assert theirs.tile_count == 2 and shapely.equals(theirs.geometry, tiles_union(houses[:2]))
