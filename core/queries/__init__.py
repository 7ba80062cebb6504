"""Read the results: one tile, the tile under a point, a region or a job, their summary, and streams for export.

- ``core.queries.types``: what queries return (``TileAnswer``, ``MapCell``, ``TileFailure``, ``Selection``,
  ``Summary``).
- ``core.queries.lookups``: one tile or point (``tile_result``, ``point_result``, ``empty_result``).
- ``core.queries.selections``: which model answers a region or job (``select_results``) and the streams over it.
- ``core.queries.summaries``: counts per class, failures and models (``summarize``).
- ``core.queries.failures``: a job's failed tiles (``iter_job_failures``), for ``failures``, ``retry`` and the API.
- ``core.queries.corrections``: the labels people gave tiles (``tile_corrections``), a job's tiles with the label
  to train on (``iter_job_labels``).
- ``core.queries.reports``: the one document of a tile that the CLI and the HTTP API both give (``report_tile``).
- ``core.queries.extent``: where a model's results are, and the hint for a tile that has none (``results_extent``).

Every function takes a session and keyword arguments; everything is re-exported here, so
``from core.queries import BBox, query_bbox, select_results, summarize, tile_result`` works.
"""

from core.bbox import BBox, TileRange
from core.queries.corrections import (
    CorrectionAnswer,
    LabelledTile,
    count_job_labels,
    iter_job_labels,
    tile_corrections,
)
from core.queries.extent import ResultsExtent, ZoomExtent, results_extent
from core.queries.failures import count_job_failures, iter_job_failures
from core.queries.lookups import empty_result, point_result, tile_result, tile_statement
from core.queries.reports import TileReport, report_tile
from core.queries.selections import (
    count_selected,
    extents,
    iter_answers,
    iter_cells,
    iter_empty,
    iter_failures,
    iter_results,
    latest_model_in,
    query_bbox,
    results_statement,
    select_results,
)
from core.queries.summaries import summarize
from core.queries.types import (
    Answer,
    ClassCount,
    EmptyAnswer,
    MapCell,
    ModelCount,
    Selection,
    Summary,
    TileAnswer,
    TileFailure,
)

__all__ = [
    "Answer",
    "BBox",
    "ClassCount",
    "CorrectionAnswer",
    "EmptyAnswer",
    "LabelledTile",
    "MapCell",
    "ModelCount",
    "ResultsExtent",
    "Selection",
    "Summary",
    "TileAnswer",
    "TileFailure",
    "TileRange",
    "TileReport",
    "ZoomExtent",
    "count_job_failures",
    "count_job_labels",
    "count_selected",
    "empty_result",
    "extents",
    "iter_answers",
    "iter_cells",
    "iter_empty",
    "iter_failures",
    "iter_job_failures",
    "iter_job_labels",
    "iter_results",
    "latest_model_in",
    "point_result",
    "query_bbox",
    "report_tile",
    "results_extent",
    "results_statement",
    "select_results",
    "summarize",
    "tile_corrections",
    "tile_result",
    "tile_statement",
]
