"""The assessment sample on a real database (SQLite and PostgreSQL): who is in the map and in which stratum, the
allocations, reproducible draws, a design fixed at sampling time, reference labels all or nothing."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy.orm import Session

from core.assessment import AssessmentError
from core.assessment.sampling import StratumSize, allocate
from core.assessment.store import (
    ReferenceLabel,
    draw_sample,
    labelled_units,
    record_labels,
    reference_classes,
    sample_design,
    sample_tiles,
)
from core.db import session_scope
from core.errors import NotFoundError
from core.jobs import create_job, get_job
from core.results import Empty, Failure, record_empty, record_failures, record_results
from core.tile_area import tile_area_km2
from core.tiles import Tile
from tests.factories import CLASSES, add_model, classified, scored

Z = 12


def _rows(count: int, *, y0: int) -> list[Tile]:
    """``count`` tiles of zoom ``Z`` in rows from ``y0`` on (different rows: different areas)."""
    return [Tile(Z, 100 + i % 10, y0 + i // 10) for i in range(count)]


@pytest.fixture
def job(database_url: str) -> tuple[str, int]:
    """A job whose map is 40 Forest tiles (8 of them uncertain) near the equator, 25 River tiles far north and 6
    Residential ones, plus 5 empty and 3 failed tiles that are not part of the map."""
    with session_scope(database_url) as session:
        model = add_model(session)
        job_id = create_job(session, model_hash=model, source={"kind": "folder", "name": "tiles"}).id
        forest = [scored(*t.xyz(), "Forest", 0.4 if i < 8 else 0.9) for i, t in enumerate(_rows(40, y0=2040))]
        river = [classified(*t.xyz(), label="River") for t in _rows(25, y0=600)]
        residential = [classified(*t.xyz(), label="Residential") for t in _rows(6, y0=1500)]
        record_results(session, model_hash=model, job_id=job_id, source_name="tiles",
                       results=forest + river + residential, uncertain_below=0.5)
        record_empty(session, model_hash=model, job_id=job_id, source_name="tiles",
                     empty=[Empty(t, "transparent") for t in _rows(5, y0=3000)])
        record_failures(session, model_hash=model, job_id=job_id, source_name="tiles",
                        failures=[Failure(t, "truncated") for t in _rows(3, y0=3100)])
    return database_url, job_id


def _map_class(session: Session, job_id: int) -> dict[tuple[int, int, int], str]:
    from sqlalchemy import select

    from core.schema import TileResult

    return {(z, x, y): label for z, x, y, label in session.execute(
        select(TileResult.z, TileResult.x, TileResult.y, TileResult.label).where(TileResult.job_id == job_id))}


def test_a_per_class_sample_draws_from_each_map_class_and_records_the_design(job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        design = draw_sample(session, job_id, per_class=10, seed=3)
        tiles = sample_tiles(session, job_id)
        mapped = _map_class(session, job_id)
    assert {s.name: (s.tile_count, s.sample_size) for s in design.strata} == {
        "Forest": (40, 10), "River": (25, 10), "Residential": (6, 6)}  # a class smaller than N is taken whole
    # The strata's areas: the sum of their tiles' ellipsoidal areas, tile by tile.
    expected = {"Forest": sum(tile_area_km2(*t.xyz()) for t in _rows(40, y0=2040)),
                "River": sum(tile_area_km2(*t.xyz()) for t in _rows(25, y0=600))}
    for stratum in design.strata:
        if stratum.name in expected:
            assert stratum.mapped_area_km2 == pytest.approx(expected[stratum.name], rel=1e-12)
    assert [t.position for t in tiles] == list(range(1, 27))
    assert Counter(mapped[(t.z, t.x, t.y)] for t in tiles) == {"Forest": 10, "River": 10, "Residential": 6}
    assert all(t.reference is None for t in tiles) and design.unlabelled == 26
    # Only classified tiles: empty and failed ones are not part of the map.
    assert all(t.y < 3000 for t in tiles)
    # The review order mixes the strata: a reviewer cannot tell a tile's map class from its place.
    assert [mapped[(t.z, t.x, t.y)] for t in tiles[:10]] != ["Forest"] * 10
    assert len({mapped[(t.z, t.x, t.y)] for t in tiles[:10]}) > 1


def test_uncertain_tiles_stay_in_their_mapped_class_stratum(job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        draw_sample(session, job_id, per_class=40, seed=1)
        sampled = {(t.z, t.x, t.y) for t in sample_tiles(session, job_id)}
        units = {(u.z, u.x, u.y): u.stratum for u in _units(session, job_id)}
    uncertain = {t.xyz() for t in _rows(8, y0=2040)}
    assert uncertain <= sampled and {units[key] for key in uncertain} == {"Forest"}


def _units(session: Session, job_id: int) -> list[object]:
    from sqlalchemy import select

    from core.schema import Assessment, AssessmentUnit

    assessment = session.scalar(select(Assessment.id).where(Assessment.job_id == job_id))
    return list(session.scalars(select(AssessmentUnit).where(AssessmentUnit.assessment_id == assessment)))


def test_the_same_seed_draws_the_same_sample_and_another_seed_another(database_url: str, job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        draw_sample(session, job_id, per_class=5, seed=11)
        first = sample_tiles(session, job_id)
        again = draw_sample(session, job_id, per_class=5, seed=11)  # the recorded sample, unchanged
        assert sample_tiles(session, job_id) == first and again.seed == 11
        with pytest.raises(AssessmentError, match=r"already has a sample \(per class 5, seed 11; 0 of 15 labelled\)"
                                                  r": --replace"):
            draw_sample(session, job_id, per_class=5, seed=12)
        draw_sample(session, job_id, per_class=5, seed=12, replace=True)
        other = sample_tiles(session, job_id)
        assert record_labels(session, job_id, [ReferenceLabel(Tile(t.z, t.x, t.y), "River") for t in other],
                             author="ana") == 15
        draw_sample(session, job_id, per_class=5, seed=11, replace=True)
        assert sample_tiles(session, job_id) == first  # reproducible from the seed alone, labels discarded
        drawn_at = sample_design(session, job_id).created_at
        draw_sample(session, job_id, per_class=5, seed=11, replace=True)  # drawn anew though asked the same
        assert sample_design(session, job_id).created_at > drawn_at and sample_tiles(session, job_id) == first
    assert {(t.z, t.x, t.y) for t in other} != {(t.z, t.x, t.y) for t in first}


def test_proportional_allocation_follows_the_areas_with_two_per_class_at_least() -> None:
    strata = {"a": StratumSize(1000, 900.0), "b": StratumSize(500, 95.0), "c": StratumSize(50, 5.0)}
    # Shares 90, 9.5 and 0.5: floors 90, 9, 0; the one left goes to the larger remainder (b and c tie at 0.5: by
    # name, b); c is then raised to 2, taken from the largest share, a.
    assert allocate(strata, proportional=100) == {"a": 88, "b": 10, "c": 2}
    assert sum(allocate(strata, proportional=37).values()) == 37
    assert allocate({"a": StratumSize(3, 1.0), "b": StratumSize(1, 9.0)}, proportional=10) == {"a": 3, "b": 1}
    with pytest.raises(AssessmentError, match=r"--proportional must be within 6\.\.30,000 for 3 classes \(got 5\)"):
        allocate(strata, proportional=5)
    with pytest.raises(AssessmentError, match=r"either --per-class N .* or --proportional N"):
        allocate(strata, per_class=5, proportional=50)
    with pytest.raises(AssessmentError, match=r"--per-class must be within 2\.\.10,000 \(got 1\)"):
        allocate(strata, per_class=1)


def test_a_proportional_sample_of_the_job(job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        design = draw_sample(session, job_id, proportional=20, seed=2)
    areas = {s.name: s.mapped_area_km2 for s in design.strata}
    sizes = {s.name: s.sample_size for s in design.strata}
    assert design.sample_size == 20 and design.allocation == "proportional" and min(sizes.values()) >= 2
    assert sizes["Forest"] > sizes["River"]  # Forest's tiles near the equator cover more ground
    assert areas["Forest"] > areas["River"]


def test_labels_are_recorded_all_or_nothing(job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        draw_sample(session, job_id, per_class=3, seed=5)
        tiles = sample_tiles(session, job_id)
        assert reference_classes(session, job_id) == CLASSES
    first, second = (Tile(t.z, t.x, t.y) for t in tiles[:2])
    outside = Tile(Z, 5, 5)
    bad = [
        ([ReferenceLabel(first, "river"), ReferenceLabel(second, "Wetland", "s.csv row 3: ")],
         r"^s\.csv row 3: 'Wetland' is not a class of job \d+'s model: its classes are Forest, River, Residential$"),
        ([ReferenceLabel(first, "River"), ReferenceLabel(outside, "River", "s.csv row 3: ")],
         r"^s\.csv row 3: tile 12/5/5 is not in job \d+'s assessment sample$"),
        ([ReferenceLabel(first, "River", "s.csv row 2: "), ReferenceLabel(first, "River", "s.csv row 9: ")],
         r"^s\.csv row 9: tile .* is labelled twice \(also s\.csv row 2\)$"),
    ]
    for labels, message in bad:
        with session_scope(url) as session, pytest.raises(AssessmentError, match=message):
            record_labels(session, job_id, labels, author="ana")
    with session_scope(url) as session:
        assert sample_design(session, job_id).labelled == 0  # nothing of a bad batch was written
        assert record_labels(session, job_id, [ReferenceLabel(first, " river "), ReferenceLabel(second, "FOREST")],
                             author="ana") == 2
    with session_scope(url) as session:
        assert [t.reference for t in sample_tiles(session, job_id)[:2]] == ["River", "Forest"]  # model's spelling
        assert record_labels(session, job_id, [ReferenceLabel(first, "River")], author="bo") == 0  # unchanged
        assert record_labels(session, job_id, [ReferenceLabel(first, "Residential")], author="bo") == 1
        sample = labelled_units(session, job_id)
    assert sample.unlabelled == len(tiles) - 2
    assert sorted(u.reference for u in sample.units) == ["Forest", "Residential"]
    assert all(u.area == pytest.approx(tile_area_km2(Z, 0, u_y)) for u, u_y in
               zip(sample.units, [tiles[0].y, tiles[1].y], strict=True))


def test_the_design_is_fixed_when_the_sample_is_drawn(job: tuple[str, int]) -> None:
    url, job_id = job
    with session_scope(url) as session:
        before = draw_sample(session, job_id, per_class=4, seed=1)
        model = get_job(session, job_id).model_hash
        assert model is not None
        record_results(session, model_hash=model, job_id=job_id, source_name="tiles",
                       results=[classified(*t.xyz(), label="River") for t in _rows(30, y0=2500)])
    with session_scope(url) as session:
        after = labelled_units(session, job_id)
        assert sample_design(session, job_id).strata == before.strata
    assert after.mapped_areas == {s.name: s.mapped_area_km2 for s in before.strata}


def test_a_job_of_path_only_tiles_cannot_be_sampled(database_url: str) -> None:
    with session_scope(database_url) as session:
        model = add_model(session)
        job_id = create_job(session, model_hash=model, source={"kind": "folder", "name": "scans"}).id
        record_results(session, model_hash=model, job_id=job_id, source_name="scans",
                       results=[classified(None, None, None, path=f"scan-{i}.jpg") for i in range(4)])
        with pytest.raises(AssessmentError, match=rf"^job {job_id}'s tiles are known by their paths only \(no z/x/y\)"):
            draw_sample(session, job_id, per_class=2, seed=0)
        with pytest.raises(NotFoundError, match=rf"job {job_id} has no assessment sample: 'tileclass assess sample"):
            sample_tiles(session, job_id)
