"""Read the results: one tile, the tile under a point, a region or a job, their summary, and streams for export.

Which model answers:

- a tile or a point: the most recently registered model (``Model.created_at``, then the row's ``classified_at``)
  that has a result for that tile, unless ``model_hash`` names one;
- a region (bbox + zoom): one model for the whole region, so that a list or a map never mixes two class lists —
  the most recently registered model with any result there, unless a model or a job names one;
- a job: the rows whose ``job_id`` is that job. There is one row per (model, tile), so a tile that a later job
  classified again with the same model belongs to that later job, not to this one.

How the indexes serve them: a tile with a model is an equality lookup on ``uq_tile_results_model_zxy``
``(model_hash, z, x, y)``; a tile without one uses ``ix_tile_results_zxy`` and orders the few models' rows; a
region is ``model_hash = ? AND z = ? AND x BETWEEN ? AND ? AND y BETWEEN ? AND ?``, a range scan of
``uq_tile_results_model_zxy`` that reads rows in (x, y) order; a job uses ``ix_tile_results_job``.
Streams (``iter_results``, ``iter_cells``, ``iter_failures``) use ``yield_per``: a server-side cursor on
PostgreSQL, a stepped cursor on SQLite, so millions of rows never sit in memory together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Select, bindparam, exists, false, func, select
from sqlalchemy.orm import Session

from core.errors import NotFoundError, TileclassError, TileError
from core.jobs import get_job
from core.region import parse_bbox, tile_range
from core.registry import find_registered
from core.schema import FailedTile, Model, TileResult
from core.tiles import Tile, check_zoom

YIELD_PER = 2000


@dataclass(frozen=True, slots=True)
class TileRange:
    """The tiles ``min_x..max_x`` by ``min_y..max_y`` (inclusive) of one zoom."""

    zoom: int
    min_x: int
    max_x: int
    min_y: int
    max_y: int

    @property
    def width(self) -> int:
        return self.max_x - self.min_x + 1

    @property
    def height(self) -> int:
        return self.max_y - self.min_y + 1

    @property
    def count(self) -> int:
        return self.width * self.height

    def __str__(self) -> str:
        return f"zoom {self.zoom}, x {self.min_x}..{self.max_x}, y {self.min_y}..{self.max_y}"


@dataclass(frozen=True, slots=True)
class BBox:
    """A WGS84 bounding box that does not cross the antimeridian (checked as ``tileclass enqueue`` checks it)."""

    west: float
    south: float
    east: float
    north: float

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse ``"W,S,E,N"`` in degrees."""
        return cls(*parse_bbox(text))

    def tiles(self, zoom: int) -> TileRange:
        """The tiles of ``zoom`` that the box overlaps, as ``mercantile.tiles`` lists them."""
        check_zoom(zoom)
        bounds = (self.west, self.south, self.east, self.north)
        # At the map's edges (lon 180, lat ±85.0511) mercantile can step one tile outside; keep to the grid.
        x0, x1, y0, y1 = (min(max(v, 0), 2**zoom - 1) for v in tile_range(bounds, zoom))
        return TileRange(zoom, x0, x1, y0, y1)

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in (self.west, self.south, self.east, self.north))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model, as queries need it."""

    hash: str
    arch: str
    class_names: tuple[str, ...]
    created_at: datetime

    @classmethod
    def of(cls, model: Model) -> ModelInfo:
        return cls(model.hash, model.arch, tuple(model.class_names), _aware(model.created_at))


@dataclass(frozen=True, slots=True)
class TileAnswer:
    """One stored result. ``tile`` is None for a tile without coordinates (then ``path`` names it)."""

    tile: Tile | None
    root_name: str
    path: str
    model_hash: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    job_id: int | None
    classified_at: datetime

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, most probable first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: (-item[1], item[0]))
        return [(label, float(p)) for label, p in ranked[: max(k, 0)]]

    def as_dict(self, *, top_k: int = 0) -> dict[str, Any]:
        z, x, y = self.tile if self.tile is not None else (None, None, None)
        data: dict[str, Any] = {
            "tile": str(self.tile) if self.tile is not None else None, "z": z, "x": x, "y": y,
            "root": self.root_name, "path": self.path, "label": self.label, "confidence": self.confidence,
            "model": self.model_hash, "job": self.job_id, "classified_at": self.classified_at.isoformat(),
        }
        if top_k:
            data["top"] = [{"label": label, "probability": p} for label, p in self.top(top_k)]
        return data


class Cell(NamedTuple):
    """What a map needs of one result: where it is, its label, and where its image lies."""

    x: int
    y: int
    label: str
    root_name: str
    path: str
    job_id: int | None


class FailureRow(NamedTuple):
    z: int | None
    x: int | None
    y: int | None
    root_name: str
    path: str
    reason: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Selection:
    """Which results a region or job query reads; build it with ``select_results``."""

    model: ModelInfo | None
    job_id: int | None = None
    tiles: TileRange | None = None
    bbox: BBox | None = None
    labels: tuple[str, ...] = ()
    min_confidence: float | None = None

    def describe(self) -> str:
        parts = [f"job {self.job_id}"] if self.job_id is not None else []
        if self.bbox is not None:
            parts.append(f"bbox {self.bbox}")
        if self.tiles is not None:
            parts.append(f"zoom {self.tiles.zoom}")
        parts.append(f"model {self.model.hash[:12]}" if self.model else "no model")
        return ", ".join(parts)

    def at(self, tiles: TileRange) -> Selection:
        """The same selection narrowed to ``tiles``."""
        return replace(self, tiles=tiles)


_COLUMNS = (TileResult.z, TileResult.x, TileResult.y, TileResult.root_name, TileResult.path, TileResult.model_hash,
            TileResult.label, TileResult.confidence, TileResult.probabilities, TileResult.job_id,
            TileResult.classified_at)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _answer(row: Any) -> TileAnswer:
    z, x, y, root_name, path, model_hash, label, confidence, probabilities, job_id, classified_at = row
    tile = Tile(z, x, y) if z is not None else None
    return TileAnswer(tile, root_name, path, model_hash, label, float(confidence), dict(probabilities), job_id,
                      _aware(classified_at))


def find_model(session: Session, *, ref: str) -> ModelInfo:
    """A registered model by its hash or a unique prefix of at least 6 characters."""
    return ModelInfo.of(find_registered(session, ref=ref))


# Built once: composing a statement costs more than running a point lookup, so lookups only bind values.
_TILE_AT = (TileResult.z == bindparam("z"), TileResult.x == bindparam("x"), TileResult.y == bindparam("y"))
_LATEST_AT_TILE = (select(*_COLUMNS).join(Model, Model.hash == TileResult.model_hash).where(*_TILE_AT)
                   .order_by(Model.created_at.desc(), TileResult.classified_at.desc()).limit(1))
_MODEL_AT_TILE = select(*_COLUMNS).where(TileResult.model_hash == bindparam("model_hash"), *_TILE_AT).limit(1)


def _tile_lookup(tile: Tile, model_hash: str | None) -> tuple[Select[*tuple[Any, ...]], dict[str, Any]]:
    values: dict[str, Any] = {"z": tile.z, "x": tile.x, "y": tile.y}
    if model_hash is None:
        return _LATEST_AT_TILE, values
    return _MODEL_AT_TILE, values | {"model_hash": model_hash}


def tile_statement(tile: Tile, *, model_hash: str | None = None) -> Select[*tuple[Any, ...]]:
    """The lookup of one tile's result, values bound: that model's, or the latest registered model's."""
    stmt, values = _tile_lookup(tile, model_hash)
    return stmt.params(values)


def tile_result(session: Session, *, tile: Tile, model_hash: str | None = None) -> TileAnswer | None:
    """The result for ``tile`` (see the module docstring for which model), or None if it is not classified."""
    stmt, values = _tile_lookup(tile, model_hash)
    row = session.execute(stmt, values).first()
    return _answer(row) if row is not None else None


def point_result(session: Session, *, lon: float, lat: float, zoom: int,
                 model_hash: str | None = None) -> TileAnswer | None:
    """The result for the tile of ``zoom`` under a WGS84 point, or None."""
    return tile_result(session, tile=Tile.at_point(lon, lat, zoom), model_hash=model_hash)


def latest_model_in(session: Session, *, tiles: TileRange) -> ModelInfo | None:
    """The most recently registered model with at least one result in ``tiles``."""
    has_result = exists().where(TileResult.model_hash == Model.hash, *_range(tiles))
    model = session.scalars(select(Model).where(has_result).order_by(Model.created_at.desc()).limit(1)).first()
    return ModelInfo.of(model) if model is not None else None


def select_results(
    session: Session,
    *,
    job_id: int | None = None,
    bbox: BBox | None = None,
    zoom: int | None = None,
    model_ref: str | None = None,
    labels: Sequence[str] = (),
    min_confidence: float | None = None,
) -> Selection:
    """Check a region/job query's inputs against the database and settle which model answers it."""
    if job_id is None and bbox is None:
        raise TileclassError("name a job or a region (--bbox W,S,E,N with --zoom Z)")
    if bbox is not None and zoom is None:
        raise TileError("--bbox needs --zoom: the zoom whose tiles to read (0..24)")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise TileclassError(f"--min-confidence must be within 0..1 (got {min_confidence})")
    tiles = None
    if zoom is not None:
        tiles = bbox.tiles(zoom) if bbox is not None else TileRange(zoom, 0, 2**check_zoom(zoom) - 1, 0, 2**zoom - 1)
    model = find_model(session, ref=model_ref) if model_ref else None
    if job_id is not None:
        model = _job_model(session, job_id=job_id, named=model)
    elif model is None and tiles is not None:
        model = latest_model_in(session, tiles=tiles)
    _check_labels(session, labels=labels, model=model)
    return Selection(model, job_id, tiles, bbox, tuple(dict.fromkeys(labels)), min_confidence)


def _job_model(session: Session, *, job_id: int, named: ModelInfo | None) -> ModelInfo | None:
    job = get_job(session, job_id)
    digest = job.model_hash or session.scalar(
        select(TileResult.model_hash).where(TileResult.job_id == job_id).limit(1)
    )
    if named is not None and digest is not None and named.hash != digest:
        raise TileclassError(f"job {job_id} was classified by model {digest[:12]}, not {named.hash[:12]}")
    if digest is None:
        return named
    model = session.get(Model, digest)
    return ModelInfo.of(model) if model is not None else None


def _check_labels(session: Session, *, labels: Sequence[str], model: ModelInfo | None) -> None:
    if model is not None:
        known, owner = list(model.class_names), f"model {model.hash[:12]}"
    else:
        known = sorted({name for names in session.scalars(select(Model.class_names)) for name in names})
        owner = "any registered model"
    for label in labels:
        if label not in known:
            raise NotFoundError(f"unknown label {label!r} for {owner}: labels are {', '.join(known) or 'none'}")


def _range(tiles: TileRange) -> list[ColumnElement[bool]]:
    return [TileResult.z == tiles.zoom, TileResult.x.between(tiles.min_x, tiles.max_x),
            TileResult.y.between(tiles.min_y, tiles.max_y)]


def _where(selection: Selection, *, by_model: bool = True) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if by_model:
        conditions.append(TileResult.model_hash == selection.model.hash if selection.model else false())
    if selection.job_id is not None:
        conditions.append(TileResult.job_id == selection.job_id)
    if selection.tiles is not None:
        conditions += _range(selection.tiles)
    if selection.labels:
        conditions.append(TileResult.label.in_(selection.labels))
    if selection.min_confidence is not None:
        conditions.append(TileResult.confidence >= selection.min_confidence)
    return conditions


def results_statement(selection: Selection, *, limit: int | None = None) -> Select[*tuple[Any, ...]]:
    """The rows of a selection; a region's come in (x, y) order, straight from the index."""
    stmt = select(*_COLUMNS).where(*_where(selection))
    if selection.tiles is not None:
        stmt = stmt.order_by(TileResult.z, TileResult.x, TileResult.y)
    return stmt.limit(limit) if limit is not None else stmt


def iter_results(session: Session, *, selection: Selection, limit: int | None = None,
                 yield_per: int = YIELD_PER) -> Iterator[TileAnswer]:
    """Stream a selection's results, ``yield_per`` rows at a time."""
    stmt = results_statement(selection, limit=limit).execution_options(yield_per=yield_per)
    for row in session.execute(stmt):
        yield _answer(row)


def query_bbox(session: Session, *, bbox: BBox, zoom: int, model_ref: str | None = None, job_id: int | None = None,
               labels: Sequence[str] = (), min_confidence: float | None = None,
               limit: int | None = None) -> list[TileAnswer]:
    """Every result in a bbox at one zoom, filtered; a list, for scripts (stream big regions with iter_results)."""
    selection = select_results(session, job_id=job_id, bbox=bbox, zoom=zoom, model_ref=model_ref, labels=labels,
                               min_confidence=min_confidence)
    return list(iter_results(session, selection=selection, limit=limit))


def iter_cells(session: Session, *, selection: Selection, yield_per: int = YIELD_PER) -> Iterator[Cell]:
    """Stream what a map needs of each result with coordinates (no probabilities are decoded)."""
    stmt = select(TileResult.x, TileResult.y, TileResult.label, TileResult.root_name, TileResult.path,
                  TileResult.job_id).where(*_where(selection), TileResult.z.is_not(None))
    for x, y, label, root_name, path, job_id in session.execute(stmt.execution_options(yield_per=yield_per)):
        assert x is not None and y is not None  # rows with z have x and y
        yield Cell(x, y, label, root_name, path, job_id)


def _failure_where(selection: Selection) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        FailedTile.model_hash == selection.model.hash if selection.model else false()
    ]
    if selection.job_id is not None:
        conditions.append(FailedTile.job_id == selection.job_id)
    if selection.tiles is not None:
        tiles = selection.tiles
        conditions += [FailedTile.z == tiles.zoom, FailedTile.x.between(tiles.min_x, tiles.max_x),
                       FailedTile.y.between(tiles.min_y, tiles.max_y)]
    return conditions


def iter_failures(session: Session, *, selection: Selection, yield_per: int = YIELD_PER) -> Iterator[FailureRow]:
    """Stream the selection's failed tiles (label and confidence filters do not apply to them)."""
    stmt = select(FailedTile.z, FailedTile.x, FailedTile.y, FailedTile.root_name, FailedTile.path,
                  FailedTile.reason, FailedTile.attempts).where(*_failure_where(selection))
    for row in session.execute(stmt.execution_options(yield_per=yield_per)):
        yield FailureRow(*row)


def count_selected(session: Session, *, selection: Selection) -> int:
    """How many results a selection holds (for progress bars)."""
    return int(session.scalar(select(func.count()).select_from(TileResult).where(*_where(selection))) or 0)


def extents(session: Session, *, selection: Selection) -> list[tuple[TileRange, int]]:
    """Per zoom, the tile range that a selection's results and failures span, and how many tiles they are."""
    spans: dict[int, tuple[TileRange, int]] = {}
    for table, where in ((TileResult, _where(selection)), (FailedTile, _failure_where(selection))):
        stmt = (select(table.z, func.min(table.x), func.max(table.x), func.min(table.y), func.max(table.y),
                       func.count()).where(*where, table.z.is_not(None)).group_by(table.z))
        for row in session.execute(stmt):
            # Grouped over rows with coordinates, so none of these is NULL.
            z, min_x, max_x, min_y, max_y, count = cast(tuple[int, int, int, int, int, int], tuple(row))
            found = TileRange(z, min_x, max_x, min_y, max_y)
            if z in spans:
                seen, before = spans[z]
                found = TileRange(z, min(seen.min_x, min_x), max(seen.max_x, max_x), min(seen.min_y, min_y),
                                  max(seen.max_y, max_y))
                count += before
            spans[z] = (found, count)
    return [spans[z] for z in sorted(spans)]


@dataclass(frozen=True, slots=True)
class ClassCount:
    label: str
    count: int
    share: float  # of the classified tiles


@dataclass(frozen=True, slots=True)
class ModelCount:
    hash: str
    tiles: int
    created_at: datetime
    selected: bool


@dataclass(frozen=True)
class Summary:
    """Counts and shares per class, failures with their commonest reasons, and the models that have results."""

    selection: Selection
    classified: int
    classes: list[ClassCount]
    failed: int
    top_reasons: list[tuple[str, int]]
    models: list[ModelCount] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        sel = self.selection
        return {
            "job": sel.job_id, "bbox": str(sel.bbox) if sel.bbox else None,
            "zoom": sel.tiles.zoom if sel.tiles else None, "model": sel.model.hash if sel.model else None,
            "classified": self.classified,
            "classes": [{"label": c.label, "count": c.count, "share": c.share} for c in self.classes],
            "failed": {"count": self.failed,
                       "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons]},
            "models": [{"hash": m.hash, "tiles": m.tiles, "created_at": m.created_at.isoformat(),
                        "selected": m.selected} for m in self.models],
        }


def summarize(session: Session, *, selection: Selection, reasons: int = 5) -> Summary:
    """Count a selection's results per class (every class of its model, in the model's order) and its failures."""
    counts = dict(session.execute(
        select(TileResult.label, func.count()).where(*_where(selection)).group_by(TileResult.label)
    ).all())
    total = sum(counts.values())
    order = list(selection.model.class_names) if selection.model else []
    order += sorted(set(counts) - set(order))
    classes = [ClassCount(label, counts.get(label, 0), counts.get(label, 0) / total if total else 0.0)
               for label in order]
    failure_where = _failure_where(selection)
    failed = int(session.scalar(select(func.count()).select_from(FailedTile).where(*failure_where)) or 0)
    top = session.execute(
        select(FailedTile.reason, func.count().label("n")).where(*failure_where)
        .group_by(FailedTile.reason).order_by(func.count().desc(), FailedTile.reason).limit(reasons)
    ).all()
    models = session.execute(
        select(Model.hash, func.count(), Model.created_at).select_from(TileResult)
        .join(Model, Model.hash == TileResult.model_hash)
        .where(*_where(selection, by_model=False)).group_by(Model.hash, Model.created_at)
        .order_by(Model.created_at.desc())
    ).all()
    chosen = selection.model.hash if selection.model else None
    return Summary(selection, total, classes, failed, [(r, int(n)) for r, n in top],
                   [ModelCount(h, int(n), _aware(c), h == chosen) for h, n, c in models])
