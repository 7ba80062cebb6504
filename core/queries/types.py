"""What queries return: stored results, failures, the selection a region or job query reads, summaries."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from core.bbox import BBox, TileRange
from core.db import aware
from core.models.info import ModelInfo
from core.palette import class_colour, hex_colour
from core.schema import EmptyTile, FailedTile, TileResult
from core.tiles import Tile


@dataclass(frozen=True, slots=True)
class TileAnswer:
    """One stored result of one tile (``tile.path`` names it in its source when it has no coordinates), with the
    share of its pixels that held data (``coverage``; None for a result from before coverage was measured) and
    whether it is ``uncertain`` (less confident than its job's ``uncertain_below``)."""

    tile: Tile
    source_name: str
    model_hash: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    job_id: int | None
    classified_at: datetime
    coverage: float | None = None
    uncertain: bool = False

    @property
    def path(self) -> str | None:
        return self.tile.path

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, most probable first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: (-item[1], item[0]))
        return [(label, float(p)) for label, p in ranked[: max(k, 0)]]

    def as_dict(self, *, top_k: int = 0) -> dict[str, Any]:
        tile = self.tile
        data: dict[str, Any] = {
            "tile": str(tile) if tile.has_coordinates else None, "z": tile.z, "x": tile.x, "y": tile.y,
            "root": self.source_name, "path": tile.path, "label": self.label, "confidence": self.confidence,
            "uncertain": self.uncertain, "coverage": self.coverage, "model": self.model_hash, "job": self.job_id,
            "classified_at": self.classified_at.isoformat(),
        }
        if top_k:
            data["top"] = [{"label": label, "probability": p} for label, p in self.top(top_k)]
        return data


@dataclass(frozen=True, slots=True)
class EmptyAnswer:
    """A tile found empty (nothing to classify: no tile at the source, entirely transparent or nodata)."""

    tile: Tile
    source_name: str
    model_hash: str
    reason: str
    job_id: int | None
    found_at: datetime

    def as_dict(self, *, top_k: int = 0) -> dict[str, Any]:
        tile = self.tile
        return {"tile": str(tile) if tile.has_coordinates else None, "z": tile.z, "x": tile.x, "y": tile.y,
                "root": self.source_name, "path": tile.path, "label": None, "confidence": None, "empty": True,
                "reason": self.reason, "model": self.model_hash, "job": self.job_id,
                "found_at": self.found_at.isoformat()}


Answer = TileAnswer | EmptyAnswer
EMPTY_COLUMNS = (EmptyTile.z, EmptyTile.x, EmptyTile.y, EmptyTile.path, EmptyTile.source_name, EmptyTile.model_hash,
                 EmptyTile.reason, EmptyTile.job_id, EmptyTile.found_at)


def empty_from_row(row: Any) -> EmptyAnswer:
    """An ``EmptyAnswer`` from a row of ``EMPTY_COLUMNS``."""
    z, x, y, path, source_name, model_hash, reason, job_id, found_at = row
    return EmptyAnswer(Tile(z, x, y, path), source_name, model_hash, reason, job_id, aware(found_at))


RESULT_COLUMNS = (TileResult.z, TileResult.x, TileResult.y, TileResult.path, TileResult.source_name,
                  TileResult.model_hash, TileResult.label, TileResult.confidence, TileResult.probabilities,
                  TileResult.job_id, TileResult.classified_at, TileResult.coverage, TileResult.uncertain)


def answer_from_row(row: Any) -> TileAnswer:
    """A ``TileAnswer`` from a row of ``RESULT_COLUMNS``."""
    z, x, y, path, source_name, model_hash, label, confidence, probabilities, job_id, classified_at, coverage, \
        uncertain = row
    return TileAnswer(Tile(z, x, y, path), source_name, model_hash, label, float(confidence), dict(probabilities),
                      job_id, aware(classified_at), None if coverage is None else float(coverage), bool(uncertain))


@dataclass(frozen=True, slots=True)
class MapCell:
    """What a map needs of one result with coordinates: the tile, its label, where its image lies."""

    tile: Tile
    label: str
    source_name: str
    job_id: int | None


@dataclass(frozen=True, slots=True)
class TileFailure:
    """A tile that could not be classified: why, how often it was tried, and when it last failed."""

    tile: Tile
    source_name: str
    reason: str
    attempts: int
    failed_at: datetime | None = None
    job_id: int | None = None
    model_hash: str | None = None

    def as_dict(self) -> dict[str, Any]:
        tile = self.tile
        return {"tile": str(tile) if tile.has_coordinates else None, "z": tile.z, "x": tile.x, "y": tile.y,
                "root": self.source_name, "path": tile.path, "reason": self.reason, "attempts": self.attempts,
                "failed_at": self.failed_at.isoformat() if self.failed_at is not None else None,
                "job": self.job_id, "model": self.model_hash}


FAILURE_COLUMNS = (FailedTile.z, FailedTile.x, FailedTile.y, FailedTile.path, FailedTile.source_name, FailedTile.reason,
                   FailedTile.attempts, FailedTile.failed_at, FailedTile.job_id, FailedTile.model_hash)


def failure_from_row(row: Any) -> TileFailure:
    """A ``TileFailure`` from a row of ``FAILURE_COLUMNS``."""
    z, x, y, path, source_name, reason, attempts, failed_at, job_id, model_hash = row
    return TileFailure(Tile(z, x, y, path), source_name, reason, int(attempts), aware(failed_at), job_id, model_hash)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which results a region or job query reads; build it with ``select_results``."""

    model: ModelInfo | None
    job_id: int | None = None
    tiles: TileRange | None = None
    bbox: BBox | None = None
    labels: tuple[str, ...] = ()
    min_confidence: float | None = None
    uncertain: bool | None = None  # True: only the uncertain answers; False: none of them; None: all

    @property
    def model_hash(self) -> str | None:
        """The selected model's sha256, None when no model has results here."""
        return self.model.hash if self.model else None

    def describe(self) -> str:
        parts = [f"job {self.job_id}"] if self.job_id is not None else []
        if self.uncertain is not None:
            parts.append("uncertain answers" if self.uncertain else "confident answers")
        if self.bbox is not None:
            parts.append(f"bbox {self.bbox}")
        if self.tiles is not None:
            parts.append(f"zoom {self.tiles.zoom}")
        parts.append(f"model {self.model.hash[:12]}" if self.model else "no model")
        return ", ".join(parts)

    def at(self, tiles: TileRange) -> Selection:
        """The same selection narrowed to ``tiles``."""
        return replace(self, tiles=tiles)


@dataclass(frozen=True, slots=True)
class ClassCount:
    label: str
    count: int
    share: float  # of the classified tiles
    uncertain: int = 0  # of ``count``: less confident than their job's ``uncertain_below``
    area_km2: float | None = None  # the tiles' ground area (core.tile_area); None for tiles known only by a path


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
    empty: int = 0
    empty_reasons: list[tuple[str, int]] = field(default_factory=list)
    uncertain: int = 0  # of ``classified``

    def as_dict(self) -> dict[str, Any]:
        sel = self.selection
        return {
            "job": sel.job_id, "bbox": str(sel.bbox) if sel.bbox else None,
            "zoom": sel.tiles.zoom if sel.tiles else None, "model": sel.model.hash if sel.model else None,
            "classified": self.classified, "uncertain": self.uncertain,
            "classes": [{"label": c.label, "count": c.count, "share": c.share, "uncertain": c.uncertain,
                         "area_km2": c.area_km2, "colour": hex_colour(class_colour(i))}
                        for i, c in enumerate(self.classes)],
            "failed": {"count": self.failed,
                       "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons]},
            "empty": {"count": self.empty, "reasons": [{"reason": r, "count": n} for r, n in self.empty_reasons]},
            "models": [{"hash": m.hash, "tiles": m.tiles, "created_at": m.created_at.isoformat(),
                        "selected": m.selected} for m in self.models],
        }
