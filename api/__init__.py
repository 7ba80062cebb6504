"""The HTTP server (``tileclass serve``): a web map of the results over their imagery, a JSON API, and overlay tiles
that any GIS loads as an XYZ layer.

It sits on core/ only (no torch, no Celery): routes parse a request, call the same ``core`` functions the command
line calls, through read-only sessions, and shape the answer.

- ``api.main``: ``create_app`` builds the FastAPI app from a ``ServeConfig`` (``api.config``);
- ``api.routes``: one router per resource: jobs, models, tiles and points, regions (bbox and summary), overlay
  tiles, imagery, and the page;
- ``api.auth``: the token every request must carry when one is configured; ``api.errors``: the CLI's one-line
  messages as HTTP 400/404; ``api.overlay_png``: overlay grids as PNG; ``api.docs``: Swagger UI from the vendored
  copy; ``api.server``: uvicorn, with tokens kept out of its access log.
"""
