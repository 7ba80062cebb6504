"""``POST /api/corrections``: a person's label for a tile, recorded by the same code as ``tileclass correct
Z/X/Y CLASS`` (``core.corrections.correct_tile``: the label checked against the model's classes, the author and
time kept beside the model's result, which never changes).

A write: the token gate lets it through only with the write token as a bearer header, or the map page's cookie with
its ``X-CSRF-Token`` (``api.auth``). The body's author is who the request says it is (the page's reviewer field);
the token, not the author, is what is checked.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from core.corrections import correct_tile, correction_model
from core.db import session_scope
from core.errors import TileclassError
from core.queries import tile_result
from core.tiles import Tile

router = APIRouter(prefix="/api/corrections", tags=["corrections"])


class CorrectionRequest(BaseModel):
    """One tile's right class."""

    tile: str = Field(max_length=64, description="The tile, z/x/y (e.g. 17/70420/42997).")
    label: str = Field(max_length=128, description="Its right class: one of the model's classes (any case).")
    model: str | None = Field(None, max_length=64, description="The model whose classes the label is one of (name, "
                                                               "hash or 6+ character prefix). Default: the newest "
                                                               "registered model, as 'tileclass correct'.")
    author: str = Field("web", max_length=255, description="Who made the correction.")

    @field_validator("tile", "label", "model", "author")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\0" in value:  # no name holds one, and PostgreSQL's text refuses it
            raise ValueError("NUL bytes are not allowed")
        return value


class CorrectionRecorded(BaseModel):
    """What was recorded: the fields of ``tileclass correct Z/X/Y CLASS --json``."""

    tile: str
    label: str = Field(description="The label in the model's spelling.")
    recorded: int = Field(description="1, or 0 when the tile's newest correction already said so.")
    model: str
    author: str
    predicted: str | None = Field(description="The model's own label for the tile, which is kept.")


@router.post("")
def correct(body: CorrectionRequest) -> CorrectionRecorded:
    """Record a person's label for one tile beside the model's result (400 naming the model's classes when the
    label is not one of them)."""
    if not body.author.strip():
        raise TileclassError("author must not be empty")
    tile = Tile.parse(body.tile)
    with session_scope() as session:
        model = correction_model(session, ref=body.model)
        label, done = correct_tile(session, model=model, tile=tile, label=body.label, author=body.author)
        predicted = tile_result(session, tile=tile, model_hash=model.hash)
        return CorrectionRecorded(tile=str(tile), label=label, recorded=done.recorded, model=model.hash,
                                  author=done.author, predicted=predicted.label if predicted else None)
