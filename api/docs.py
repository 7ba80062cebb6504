"""The API's documentation page (``/docs``): Swagger UI over ``/openapi.json``, served from the vendored copy in
``api/static`` (``scripts/vendor_static.sh``) rather than FastAPI's default CDN, so it works with no internet."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

SWAGGER_UI = "swagger-ui-dist-5.36.0"
router = APIRouter()


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="tileclass API",
                               swagger_js_url=f"/static/{SWAGGER_UI}/swagger-ui-bundle.js",
                               swagger_css_url=f"/static/{SWAGGER_UI}/swagger-ui.css",
                               swagger_favicon_url="/static/favicon.svg")
