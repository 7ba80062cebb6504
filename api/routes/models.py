"""``/api/models``: the registered models, as ``tileclass models --json`` and ``models show --json`` give them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SessionDep
from api.schemas import ModelDetail, ModelSummary
from core.models.lookups import find_model, list_models

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=list[ModelSummary])
def models(session: SessionDep) -> list[dict[str, Any]]:
    """The registered models, newest first, with their result counts."""
    return [row.as_dict() for row in list_models(session)]


@router.get("/{model}", response_model=ModelDetail)
def model(model: str, session: SessionDep) -> dict[str, Any]:
    """One model (name, hash or unique hash prefix): classes, training config and metrics."""
    return find_model(session, ref=model, count_results=True).as_dict(full=True)
