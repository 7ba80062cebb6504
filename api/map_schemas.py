"""The documents only the API gives, for the map page and map clients: a job's layers and an overlay's TileJSON.

Built from these models directly (``api.job_layers``, ``api.routes.overlay``), on the same ``Document`` as the
documents of ``api.schemas``.
"""

from __future__ import annotations

from pydantic import Field

from api.schemas import ClassCount, Document, Number


class Basemap(Document):
    url: str = Field(description="Its XYZ URL template (TILECLASS_BASEMAP_URL).")
    attribution: str


class GroupLayer(Document):
    group: str
    classes: list[str] = Field(description="The model's classes in the group.")
    colour: str = Field(description="The group's colour on the map (?groups=NAME), #rrggbb.")


class GroupingLayer(Document):
    name: str = Field(description="As 'tileclass groups add' named it: the overlay's ?groups=NAME.")
    groups: list[GroupLayer] = Field(description="In the grouping's order, 'other' last.")


class JobLayers(Document):
    """What the map page needs to show a job."""

    job: int
    kind: str
    source: str | None
    zoom: int | None = Field(description="The finest zoom the job asked for, else the finest its results are at.")
    bounds: list[Number] | None = Field(description="west, south, east, north (WGS84 degrees)")
    model: str | None
    classes: list[ClassCount] = Field(description="In the model's order, with their counts and map colours.")
    classified: int
    failed: int
    empty: int
    imagery: str = Field(description="URL template of the job's imagery tiles.")
    overlay: str | None = Field(description="URL template of its overlay tiles.")
    tilejson: str | None
    basemap: Basemap | None = Field(description="The map's background layer, when one is configured.")
    groupings: list[GroupingLayer] = Field(default_factory=list, description="The class groupings of the job's "
                                           "model ('tileclass groups add'), for the legend's view by group.")


class VectorLayer(Document):
    id: str
    minzoom: int
    maxzoom: int
    fields: dict[str, str]


class TileJSON(Document):
    """TileJSON 3.0.0 (github.com/mapbox/tilejson-spec) of a model's overlay."""

    tilejson: str
    name: str
    version: str
    scheme: str
    description: str
    attribution: str
    tiles: list[str]
    minzoom: int
    maxzoom: int
    vector_layers: list[VectorLayer] | None = None
    bounds: list[Number] | None = None
    center: list[Number] | None = None
