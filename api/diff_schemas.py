"""The documents of ``/api/diffs``: two jobs' diff as ``tileclass diff --json`` prints it (``core.diff.DiffReport``),
and the changed tiles in a box for the map page's compare mode (``core.diff.ChangedTile``)."""

from __future__ import annotations

from pydantic import Field

from api.schemas import Document, Number


class DiffJob(Document):
    job: int
    model: str
    zooms: list[int]
    uncertain_below: Number | None = Field(description="The job's --uncertain-below: its uncertain answers.")
    grouping: str | None = Field(description="The class grouping its classes are compared by (?groups=).")


class DiffPart(Document):
    tiles: int
    area_km2: Number = Field(description="On the WGS84 ellipsoid.")


class Transition(Document):
    from_: str = Field(alias="from", description="Job A's class (or group).")
    to: str = Field(description="Job B's class (or group).")
    tiles: int = Field(description="Tiles whose change (or sameness) is confident.")
    area_km2: Number
    uncertain_tiles: int = Field(description="Tiles where either answer is uncertain or either tile partial.")
    uncertain_km2: Number


class DiffReport(Document):
    """The tiles both jobs classified, compared (``tileclass diff A B --json``)."""

    job_a: DiffJob
    job_b: DiffJob
    compared_tiles: int
    only_in_a: int
    only_in_b: int
    unchanged: DiffPart
    changed: DiffPart = Field(description="Confident changes.")
    uncertain_change: DiffPart = Field(description="Changes where either answer is uncertain or either tile partial.")
    transitions: list[Transition] = Field(description="Every (from, to) pair found, the unchanged ones included.")


class ChangedTile(Document):
    z: int
    x: int
    y: int
    from_: str = Field(alias="from")
    to: str
    confidence_a: Number
    confidence_b: Number
    uncertain: bool = Field(description="An uncertain change: either answer uncertain or either tile partial.")
    bounds: list[Number] = Field(description="west, south, east, north (WGS84 degrees)")


class DiffChanges(Document):
    """The changed tiles in a box, in (z, x, y) order."""

    job_a: int
    job_b: int
    zoom: int
    tiles: list[ChangedTile]
    truncated: bool = Field(description="More changed tiles lie in the box than ?limit= allows.")
